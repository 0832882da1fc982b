// On-disk layout of an emulated zoned image (all little-endian):
//
//   [0, 4096)            header (128 bytes used, CRC-32 at 124 over bytes 0..123)
//   [4096, 4096+32·N)    zone table: N entries of 32 bytes (CRC-32 at 28 over bytes 0..27)
//   [dataOffset, +cap)   data, 1 MiB aligned, sparse until written
//
// A zone entry holds the write pointer and the end of real data (both absolute sectors) and
// the fault flags. Open conditions are not stored: after a restart open zones are CLOSED
// (or EMPTY), as on a drive after power loss. Each entry lies inside one 512-byte sector,
// so updating it is atomic against a crash.
//
// Header byte 112 (added after version 1 shipped, in bytes that were always zero and that
// older builds ignore) records how the data area was preallocated at create time: 0 off
// (sparse), 1 falloc, 2 full. It tells a zone reset whether to free the zone's space or keep
// it reserved. Images written before it existed read as 0 (off), which is what they are.
import { ZbdError } from '../errors.js';
import { makeGeometry, type ZoneGeometry } from '../zoned/geometry.js';
import { crc32 } from './crc32.js';
import type { PersistedZoneState } from '../zoned/zone-table.js';

export const IMAGE_MAGIC = 'VUZBDIMG';
export const IMAGE_VERSION = 1;
export const HEADER_BLOCK = 4096;
export const HEADER_USED = 128;
export const ZONE_ENTRY_SIZE = 32;
export const DATA_ALIGN = 1 << 20;
const PREALLOCATION_OFFSET = 112;

/**
 * How the data area's space is reserved, with qemu-img's meanings: off = sparse (space is
 * taken as zones are written, and freed by a reset); falloc = fallocate'd up front; full =
 * zeroes written up front. With falloc/full a reset keeps the space reserved.
 */
export type Preallocation = 'off' | 'falloc' | 'full';
export const PREALLOCATIONS: readonly Preallocation[] = ['off', 'falloc', 'full'];

export interface ImageHeader {
  geometry: ZoneGeometry;
  /** Values as requested at create time (before limit normalisation), for the report. */
  zoneTableOffset: number;
  dataOffset: number;
  uuid: Uint8Array;
  profile: string;
  preallocation: Preallocation;
  /** Total image file size implied by the header. */
  fileSize: number;
}

export function imageLayout(geo: ZoneGeometry): { zoneTableOffset: number; dataOffset: number; fileSize: number } {
  const zoneTableOffset = HEADER_BLOCK;
  const tableEnd = zoneTableOffset + geo.nrZones * ZONE_ENTRY_SIZE;
  const dataOffset = Math.ceil(tableEnd / DATA_ALIGN) * DATA_ALIGN;
  return { zoneTableOffset, dataOffset, fileSize: dataOffset + geo.capacitySectors * 512 };
}

export function encodeHeader(h: ImageHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_BLOCK);
  const dv = new DataView(buf.buffer);
  const g = h.geometry;
  buf.set(new TextEncoder().encode(IMAGE_MAGIC), 0);
  dv.setUint32(8, IMAGE_VERSION, true);
  dv.setUint32(12, HEADER_USED, true);
  dv.setBigUint64(16, BigInt(g.capacitySectors), true);
  dv.setUint32(24, g.zoneSectors, true);
  dv.setUint32(28, g.zoneCapacitySectors, true);
  dv.setUint32(32, g.nrZones, true);
  dv.setUint32(36, g.conventionalZones, true);
  dv.setUint32(40, g.blockSize, true);
  dv.setUint32(44, g.maxOpenZones, true);
  dv.setUint32(48, g.maxActiveZones, true);
  dv.setUint32(52, g.maxAppendSectors, true);
  dv.setBigUint64(56, BigInt(h.zoneTableOffset), true);
  dv.setUint32(64, ZONE_ENTRY_SIZE, true);
  dv.setUint32(68, 0, true); // feature flags: none defined in version 1
  dv.setBigUint64(72, BigInt(h.dataOffset), true);
  buf.set(h.uuid.subarray(0, 16), 80);
  buf.set(new TextEncoder().encode(h.profile).subarray(0, 15), 96);
  buf[PREALLOCATION_OFFSET] = PREALLOCATIONS.indexOf(h.preallocation);
  dv.setUint32(124, crc32(buf, 0, 124), true);
  return buf;
}

/** Read a u64 that must be an exact JS number. */
function u64(dv: DataView, off: number, field: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZbdError('EIMAGE', `header ${field} ${v} is too large`, { field, value: v.toString() });
  return Number(v);
}

/**
 * Decode and validate a header. Every field is checked before any is used for arithmetic
 * or allocation. `fileSize` is the actual size of the file, checked against the layout.
 * With `allowBadChecksum` a checksum mismatch is reported through `checksumOk` instead of
 * thrown (for `check --repair`).
 */
export function decodeHeader(buf: Uint8Array, fileSize: number, allowBadChecksum = false): { header: ImageHeader; checksumOk: boolean } {
  if (buf.byteLength < HEADER_USED || fileSize < HEADER_BLOCK) {
    throw new ZbdError('EIMAGE', `file of ${fileSize} bytes is too small to be an image`, fileSize);
  }
  const magic = new TextDecoder().decode(buf.subarray(0, 8));
  if (magic !== IMAGE_MAGIC) throw new ZbdError('EIMAGE', `bad magic ${JSON.stringify(magic)} (expected ${IMAGE_MAGIC}): not a vhost-user-zbd image`, magic);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== IMAGE_VERSION) throw new ZbdError('EIMAGE', `image version ${version} is not supported (this build reads version ${IMAGE_VERSION})`, version);
  const used = dv.getUint32(12, true);
  if (used !== HEADER_USED) throw new ZbdError('EIMAGE', `header length ${used} is invalid (expected ${HEADER_USED})`, used);
  const stored = dv.getUint32(124, true);
  const actual = crc32(buf, 0, 124);
  const checksumOk = stored === actual;
  if (!checksumOk && !allowBadChecksum) {
    throw new ZbdError('EIMAGE', `header checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)})`, { stored, actual });
  }
  const capacitySectors = u64(dv, 16, 'capacity');
  const nrZones = dv.getUint32(32, true);
  let geometry: ZoneGeometry;
  try {
    geometry = makeGeometry({
      capacitySectors,
      zoneSectors: dv.getUint32(24, true),
      zoneCapacitySectors: dv.getUint32(28, true),
      conventionalZones: dv.getUint32(36, true),
      blockSize: dv.getUint32(40, true),
      maxOpenZones: dv.getUint32(44, true),
      maxActiveZones: dv.getUint32(48, true),
      maxAppendSectors: dv.getUint32(52, true),
    });
  } catch (err) {
    if (err instanceof ZbdError) throw new ZbdError('EIMAGE', `header: ${err.message}`, err.value, { cause: err });
    throw err;
  }
  if (nrZones !== geometry.nrZones) {
    throw new ZbdError('EIMAGE', `header zone count ${nrZones} does not match capacity ${capacitySectors} / zone size ${geometry.zoneSectors} (= ${geometry.nrZones})`, nrZones);
  }
  const zoneTableOffset = u64(dv, 56, 'zone table offset');
  const entrySize = dv.getUint32(64, true);
  const features = dv.getUint32(68, true);
  const dataOffset = u64(dv, 72, 'data offset');
  const layout = imageLayout(geometry);
  if (entrySize !== ZONE_ENTRY_SIZE) throw new ZbdError('EIMAGE', `zone entry size ${entrySize} is invalid (expected ${ZONE_ENTRY_SIZE})`, entrySize);
  if (features !== 0) throw new ZbdError('EIMAGE', `unknown feature flags 0x${features.toString(16)}`, features);
  if (zoneTableOffset !== layout.zoneTableOffset) throw new ZbdError('EIMAGE', `zone table offset ${zoneTableOffset} is invalid (expected ${layout.zoneTableOffset})`, zoneTableOffset);
  if (dataOffset !== layout.dataOffset) throw new ZbdError('EIMAGE', `data offset ${dataOffset} is invalid (expected ${layout.dataOffset})`, dataOffset);
  const uuid = buf.slice(80, 96);
  const profileBytes = buf.subarray(96, 112);
  const nul = profileBytes.indexOf(0);
  const profile = new TextDecoder().decode(profileBytes.subarray(0, nul < 0 ? 15 : nul));
  const prealloc = buf[PREALLOCATION_OFFSET];
  const preallocation = PREALLOCATIONS[prealloc];
  if (preallocation === undefined) throw new ZbdError('EIMAGE', `header preallocation mode ${prealloc} is unknown (0 off, 1 falloc, 2 full)`, prealloc);
  return { header: { geometry, zoneTableOffset, dataOffset, uuid, profile, preallocation, fileSize: layout.fileSize }, checksumOk };
}

export function encodeZoneEntry(e: PersistedZoneState, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, ZONE_ENTRY_SIZE);
  dv.setBigUint64(0, BigInt(e.wp), true);
  dv.setBigUint64(8, BigInt(e.dataEnd), true);
  dv.setUint32(16, e.flags, true);
  dv.setUint32(20, 0, true);
  dv.setUint32(24, 0, true);
  dv.setUint32(28, crc32(out, 0, 28), true);
}

/** Little-endian u32 at buf[off]. */
function u32le(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16)) + buf[off + 3] * 0x1000000;
}

/** Little-endian u64 at buf[off] as a number, or -1 when it is beyond 2^53 (no BigInt: a table has a million entries). */
function u64le(buf: Uint8Array, off: number): number {
  const hi = u32le(buf, off + 4);
  return hi > 0x1fffff ? -1 : hi * 0x100000000 + u32le(buf, off);
}

/**
 * Decode one entry; null when its checksum does not match (torn or corrupted). With `out`
 * the entry is decoded into it (a scan of a million entries then allocates nothing).
 */
export function decodeZoneEntry(buf: Uint8Array, off: number, out?: PersistedZoneState): PersistedZoneState | null {
  if (u32le(buf, off + 28) !== crc32(buf, off, off + 28)) return null;
  // Out-of-range values stay representable as -1 so the engine's validation names them.
  const e = out ?? { wp: 0, dataEnd: 0, flags: 0 };
  e.wp = u64le(buf, off);
  e.dataEnd = u64le(buf, off + 8);
  e.flags = u32le(buf, off + 16);
  return e;
}
