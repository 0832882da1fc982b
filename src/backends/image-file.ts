// The image file of the persistent emulation (header, zone table, data): create, inspect,
// repair, lock and open it. Its data moves through FileStorage (file-storage.ts).
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { makeGeometry, type GeometryInput, type ZoneGeometry } from '../zoned/geometry.js';
import { ZoneEngine } from '../zoned/zone-engine.js';
import type { PersistedZoneState } from '../zoned/zone-table.js';
import { ZoneType } from '../zoned/types.js';
import * as native from '../native/index.js';
import { EmulatedBackend } from './emulated-backend.js';
import {
  HEADER_BLOCK, ZONE_ENTRY_SIZE, decodeHeader, decodeZoneEntry, encodeHeader, encodeZoneEntry,
  imageLayout, type ImageHeader, type Preallocation,
} from './image-format.js';
import { errnoNameOf, formatBytes, hostFileError, onHostFile } from './host-file-error.js';
import { filesystemOf, lockHolder, probeMaxFileSize, processFileSizeLimit } from './host-filesystem.js';
import { fileIoFor } from './file-io.js';
import { FileStorage } from './file-storage.js';
import { imageSerial } from './serial.js';
import { readAllSync, writeAllSync } from './transfer-all.js';

export type ImageProfile = 'smr' | 'zns';

export interface CreateImageOptions extends Partial<GeometryInput> {
  capacitySectors: number;
  zoneSectors: number;
  profile?: ImageProfile;
  /** How the data area's space is reserved (default off: sparse). */
  preallocation?: Preallocation;
  /** Overwrite an existing file (refused while another process holds it). */
  force?: boolean;
}

/** Profile defaults, overridden by explicit values. */
export function applyProfile(o: CreateImageOptions): GeometryInput {
  const p = o.profile;
  const zns = p === 'zns';
  return {
    capacitySectors: o.capacitySectors,
    zoneSectors: o.zoneSectors,
    // ZNS SSDs expose less writable space than the zone size; SMR drives do not.
    zoneCapacitySectors: o.zoneCapacitySectors ?? (zns ? o.zoneSectors - o.zoneSectors / 32 : o.zoneSectors),
    conventionalZones: o.conventionalZones ?? (zns ? 0 : p === 'smr' ? Math.max(1, Math.floor(Math.ceil(o.capacitySectors / o.zoneSectors) / 100)) : 0),
    blockSize: o.blockSize ?? 4096,
    maxOpenZones: o.maxOpenZones ?? (zns ? 14 : p === 'smr' ? 128 : 0),
    maxActiveZones: o.maxActiveZones ?? (zns ? 14 : 0),
    maxAppendSectors: o.maxAppendSectors,
  };
}

/** An fs-style error for a condition we detect ourselves (a directory where a file belongs). */
function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code, syscall });
}

/**
 * The file a create writes: `file` itself, or what a symbolic link at `file` points to (so
 * the link survives and the image lands where it leads, as an open(O_CREAT) would).
 */
function createTarget(file: string): string {
  let target = file;
  for (let hops = 0; ; hops++) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(target);
    } catch (err) {
      if (errnoNameOf(err) === 'ENOENT') return target; // a missing directory is named when the file is opened
      throw hostFileError(err, 'create', file);
    }
    if (st.isDirectory()) throw hostFileError(errnoError('EISDIR', 'open'), 'create', file);
    if (!st.isSymbolicLink()) return target;
    if (hops >= 40) throw hostFileError(errnoError('ELOOP', 'open'), 'create', file);
    target = path.resolve(path.dirname(target), fs.readlinkSync(target));
  }
}

/** The largest --size (a whole number of zones) whose image fits in a file of `limit` bytes. */
function largestSizeWithin(h: ImageHeader, limit: number): number {
  const zoneBytes = h.geometry.zoneSectors * 512;
  return Math.max(0, Math.floor((limit - h.dataOffset) / zoneBytes) * zoneBytes);
}

/** What EFBIG on `file` means: which limit (filesystem or ulimit), how large, and the largest image that fits. */
function tooLargeError(fd: number, h: ImageHeader, file: string, cause: unknown): ZbdError {
  const limit = probeMaxFileSize(fd, h.dataOffset);
  const ulimit = processFileSizeLimit();
  const fsf = filesystemOf(path.dirname(path.resolve(file)));
  const byUlimit = limit >= ulimit;
  const maxSize = largestSizeWithin(h, limit);
  const who = byUlimit
    ? `the process's file-size limit (ulimit -f) is ${ulimit} bytes (${formatBytes(ulimit)})`
    : `${fsf?.name ?? 'the filesystem'} here holds files of at most ${limit} bytes (${formatBytes(limit)})`;
  return new ZbdError('EHOST',
    `cannot create ${file}: the image needs a file of ${h.fileSize} bytes (${formatBytes(h.fileSize)}: --size plus ${formatBytes(h.dataOffset)} of header and zone table), but ${who} (EFBIG)`,
    { file, errno: 'EFBIG', syscall: 'ftruncate', limit, limitBy: byUlimit ? 'ulimit' : 'filesystem', filesystem: fsf?.name, maxSizeBytes: maxSize },
    { cause });
}

/** Bytes written per call by --preallocation full. */
const ZERO_FILL_CHUNK = 8 << 20;

/** Give the new image its full size, reserving the data area's space as `h.preallocation` says. */
function sizeDataArea(fd: number, h: ImageHeader, file: string): void {
  try {
    fs.ftruncateSync(fd, h.fileSize); // sparse: data costs nothing until written
  } catch (err) {
    if (errnoNameOf(err) === 'EFBIG') throw tooLargeError(fd, h, file, err);
    throw err;
  }
  if (h.preallocation === 'off') return;
  const dataBytes = h.fileSize - h.dataOffset;
  const fsf = filesystemOf(path.dirname(path.resolve(file)));
  try {
    if (h.preallocation === 'falloc') {
      native.fallocate(fd, 0, h.dataOffset, dataBytes);
    } else {
      const zeroes = new Uint8Array(Math.min(ZERO_FILL_CHUNK, dataBytes));
      for (let off = h.dataOffset; off < h.fileSize; off += zeroes.byteLength) {
        writeAllSync(fd, zeroes.subarray(0, Math.min(zeroes.byteLength, h.fileSize - off)), off);
      }
    }
  } catch (err) {
    const errno = errnoNameOf(err);
    if (errno === 'ENOSPC' || errno === 'EDQUOT') {
      throw new ZbdError('EHOST', `cannot create ${file}: --preallocation ${h.preallocation} needs ${dataBytes} bytes (${formatBytes(dataBytes)}) ` +
        `but ${errno === 'EDQUOT' ? 'the disk quota does not allow it' : `the filesystem${fsf ? ` (${fsf.name}) had ${fsf.freeBytes} bytes (${formatBytes(fsf.freeBytes)}) free` : ' has less free'}`} (${errno})`,
      { file, errno, syscall: h.preallocation === 'falloc' ? 'fallocate' : 'write', neededBytes: dataBytes, freeBytes: fsf?.freeBytes }, { cause: err });
    }
    if (errno === 'EOPNOTSUPP') {
      throw new ZbdError('EHOST', `cannot create ${file}: ${fsf?.name ?? 'this filesystem'} does not support fallocate (EOPNOTSUPP)`,
        { file, errno, syscall: 'fallocate', preallocation: h.preallocation }, { cause: err });
    }
    throw err;
  }
}

/**
 * Create an image atomically: written under a temporary name next to it, then renamed into
 * place. Whatever fails, nothing is left behind, and host errors name the user's path.
 */
export function createImage(file: string, opts: CreateImageOptions): ImageHeader {
  const geometry = makeGeometry(applyProfile(opts));
  const target = createTarget(file);
  if (fs.existsSync(target)) {
    if (!opts.force) throw new ZbdError('EIMAGEEXIST', `${file} already exists (use --force to overwrite)`, file);
    const fd = onHostFile('open', file, () => fs.openSync(target, 'r'));
    try {
      if (!native.flock(fd, true, true)) throw lockedError(file, fd);
    } finally { fs.closeSync(fd); }
  }
  const layout = imageLayout(geometry);
  const header: ImageHeader = {
    geometry, ...layout, uuid: randomBytes(16), profile: opts.profile ?? 'custom', preallocation: opts.preallocation ?? 'off',
  };
  const tmp = path.join(path.dirname(path.resolve(target)), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = onHostFile('create', file, () => fs.openSync(tmp, 'wx', 0o644));
  let open = true;
  try {
    writeAllSync(fd, encodeHeader(header), 0);
    // The table in pieces: a million zones' table is 32 MB.
    const engine = new ZoneEngine(geometry);
    const chunk = new Uint8Array(Math.min(TABLE_CHUNK_ENTRIES, geometry.nrZones) * ZONE_ENTRY_SIZE);
    for (let first = 0; first < geometry.nrZones; first += TABLE_CHUNK_ENTRIES) {
      const n = Math.min(TABLE_CHUNK_ENTRIES, geometry.nrZones - first);
      for (let i = 0; i < n; i++) {
        encodeZoneEntry(engine.persistedState(first + i), chunk.subarray(i * ZONE_ENTRY_SIZE, (i + 1) * ZONE_ENTRY_SIZE));
      }
      writeAllSync(fd, chunk.subarray(0, n * ZONE_ENTRY_SIZE), header.zoneTableOffset + first * ZONE_ENTRY_SIZE);
    }
    sizeDataArea(fd, header, file);
    fs.fsyncSync(fd);
    open = false;
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
  } catch (err) {
    if (open) try { fs.closeSync(fd); } catch { /* nothing more to do with it */ }
    fs.rmSync(tmp, { force: true });
    throw err instanceof ZbdError && !errnoNameOf(err) ? err : hostFileError(err, 'create', file);
  }
  return header;
}

/** A problem found in an image: `zone` is -1 for the header/file. */
export interface ImageProblem {
  zone: number;
  message: string;
  repair?: string;
  /** The zone's entry as read (null: unreadable); undefined for image-wide problems. */
  entry?: PersistedZoneState | null;
}

/** How much of the image file holds real blocks (st_blocks), against what it could hold. */
export interface ImageAllocation {
  /** Bytes of the file backed by allocated blocks. */
  allocatedBytes: number;
  /** Bytes the file spans (header, zone table and data capacity). */
  fileBytes: number;
  /** Data capacity (what the guest can write). */
  capacityBytes: number;
}

export interface ImageInspection {
  header: ImageHeader;
  headerChecksumOk: boolean;
  actualFileSize: number;
  allocation: ImageAllocation;
  /** Every problem found, with the entries of the zones concerned (not of every zone: bounded memory). */
  problems: ImageProblem[];
}

function readHeader(fd: number, allowBadChecksum: boolean): { header: ImageHeader; checksumOk: boolean; size: number } {
  const size = fs.fstatSync(fd).size;
  const hb = new Uint8Array(HEADER_BLOCK);
  fs.readSync(fd, hb, 0, Math.min(HEADER_BLOCK, size), 0);
  const { header, checksumOk } = decodeHeader(hb, size, allowBadChecksum);
  const tableBytes = header.geometry.nrZones * ZONE_ENTRY_SIZE;
  if (size < header.zoneTableOffset + tableBytes) {
    throw new ZbdError('EIMAGE', `image truncated inside the zone table (size ${size}, table ends at ${header.zoneTableOffset + tableBytes})`, size);
  }
  return { header, checksumOk, size };
}

/** Zone entries per read of the zone table: a million zones' table is 32 MB, read 512 KB at a time. */
const TABLE_CHUNK_ENTRIES = 16384;

/** Read the entries of zones [first, first + count) into buf (count × 32 bytes). */
function readZoneTable(fd: number, header: ImageHeader, first: number, count: number, buf: Uint8Array): void {
  readAllSync(fd, buf.subarray(0, count * ZONE_ENTRY_SIZE), header.zoneTableOffset + first * ZONE_ENTRY_SIZE);
}

/**
 * The entries of zones [first, first + count) in table order, a chunk at a time: each
 * yield is the first zone, how many, and a buffer of their entries (reused: decode before
 * the next). Memory stays at one chunk whatever the zone count.
 */
export function* zoneTableChunks(fd: number, header: ImageHeader, first: number, count: number): Generator<{ first: number; count: number; buf: Uint8Array }> {
  const end = Math.min(header.geometry.nrZones, first + count);
  const buf = new Uint8Array(Math.min(TABLE_CHUNK_ENTRIES, Math.max(0, end - first)) * ZONE_ENTRY_SIZE);
  for (let at = first; at < end;) {
    const n = Math.min(TABLE_CHUNK_ENTRIES, end - at);
    readZoneTable(fd, header, at, n, buf);
    yield { first: at, count: n, buf };
    at += n;
  }
}

/** Zone z's persisted entry, reading the table a chunk at a time (the engine asks in order). */
function zoneTableReader(fd: number, header: ImageHeader): (z: number) => PersistedZoneState {
  const nrZones = header.geometry.nrZones;
  const chunk = new Uint8Array(Math.min(TABLE_CHUNK_ENTRIES, nrZones) * ZONE_ENTRY_SIZE);
  let first = 0, count = 0;
  return (z) => {
    if (z < first || z >= first + count) {
      first = z - (z % TABLE_CHUNK_ENTRIES);
      count = Math.min(TABLE_CHUNK_ENTRIES, nrZones - first);
      readZoneTable(fd, header, first, count, chunk);
    }
    const e = decodeZoneEntry(chunk, (z - first) * ZONE_ENTRY_SIZE);
    if (!e) throw new ZbdError('EIMAGE', `zone ${z}: zone entry checksum mismatch (run 'vhost-user-zbd check --repair')`, z);
    return e;
  };
}

/** Conventional zones store their full extent; sequential ones their write pointer. */
function conventionalEntry(engine: ZoneEngine, z: number): PersistedZoneState {
  const end = engine.zoneStart(z) + engine.zoneLen(z);
  return { wp: end, dataEnd: end, flags: 0 };
}

/** The file's allocation as fstat tells it. */
function allocationOf(fd: number, header: ImageHeader): ImageAllocation {
  const st = fs.fstatSync(fd);
  return { allocatedBytes: st.blocks * 512, fileBytes: st.size, capacityBytes: header.fileSize - header.dataOffset };
}

/** A preallocated image whose data area lost blocks (copied sparse, or reset by an old build) no longer has its space reserved. */
function unreservedBytes(ins: { header: ImageHeader; allocation: ImageAllocation }): number {
  const h = ins.header;
  if (h.preallocation === 'off') return 0;
  // Header and zone table are allocated as written; the gap up to the data area is a hole.
  const metaBytes = Math.ceil((h.zoneTableOffset + h.geometry.nrZones * ZONE_ENTRY_SIZE) / HEADER_BLOCK) * HEADER_BLOCK;
  return Math.max(0, ins.allocation.capacityBytes - (ins.allocation.allocatedBytes - metaBytes));
}

/** Read-only full consistency check: every problem, not just the first; the table is read a chunk at a time. */
export function inspectImageFd(fd: number): ImageInspection {
  const { header, checksumOk, size } = readHeader(fd, true);
  const g = header.geometry;
  const problems: ImageProblem[] = [];
  if (!checksumOk) problems.push({ zone: -1, message: 'header checksum mismatch (all fields valid)', repair: 'rewrite the header checksum' });
  if (size < header.fileSize) problems.push({ zone: -1, message: `image file is ${size} bytes, expected ${header.fileSize} (truncated)`, repair: 'extend the file (missing data reads as zeroes)' });
  else if (size > header.fileSize) problems.push({ zone: -1, message: `image file is ${size} bytes, expected ${header.fileSize} (trailing data)`, repair: 'truncate the trailing bytes' });
  const probe = new ZoneEngine(g);
  // Entries are decoded into one scratch object; a problem keeps its own copy.
  const scratch: PersistedZoneState = { wp: 0, dataEnd: 0, flags: 0 };
  for (const c of zoneTableChunks(fd, header, 0, g.nrZones)) {
    for (let i = 0; i < c.count; i++) inspectEntry(c.first + i, c.buf, i * ZONE_ENTRY_SIZE);
  }
  function inspectEntry(z: number, buf: Uint8Array, off: number): void {
    const e = decodeZoneEntry(buf, off, scratch);
    if (!e) {
      problems.push({ zone: z, entry: null, message: 'zone entry checksum mismatch', repair: 'mark the zone FULL with all its data readable (keeps every acknowledged byte)' });
      return;
    }
    if (probe.zoneType(z) === ZoneType.CONVENTIONAL) {
      const want = conventionalEntry(probe, z);
      if (e.wp !== want.wp || e.dataEnd !== want.dataEnd || e.flags !== 0) {
        problems.push({ zone: z, entry: { ...e }, message: `conventional zone entry holds wp ${e.wp} data end ${e.dataEnd} flags ${e.flags}`, repair: 'rewrite the conventional zone entry' });
      }
      return;
    }
    const why = probe.validatePersisted(z, e);
    if (why) {
      const capEnd = probe.zoneStart(z) + probe.zoneCap(z);
      const fixable = e.wp >= probe.zoneStart(z) && e.wp < capEnd && Number.isSafeInteger(e.wp) && (e.wp - probe.zoneStart(z)) % g.blockSectors === 0;
      problems.push({
        zone: z, entry: { ...e }, message: why,
        repair: fixable ? 'set the data end to the write pointer' : 'mark the zone FULL with all its data readable (keeps every acknowledged byte)',
      });
    }
  }
  const ins = { header, headerChecksumOk: checksumOk, actualFileSize: size, allocation: allocationOf(fd, header), problems };
  const missing = unreservedBytes(ins);
  if (missing > 0 && size >= header.fileSize) {
    problems.push({
      zone: -1,
      message: `preallocated (${header.preallocation}) but ${missing} bytes (${formatBytes(missing)}) of the data area are not allocated: writes there may meet ENOSPC`,
      repair: 'allocate the missing space again (fallocate; data is unchanged)',
    });
  }
  return ins;
}

/** Apply the repairs inspectImageFd proposed. Returns what was done, one line each. */
export function repairImageFd(fd: number, ins: ImageInspection): string[] {
  const done: string[] = [];
  const g = ins.header.geometry;
  const probe = new ZoneEngine(g);
  if (!ins.headerChecksumOk) {
    writeAllSync(fd, encodeHeader(ins.header), 0);
    done.push('header: rewrote the checksum');
  }
  if (ins.actualFileSize !== ins.header.fileSize) {
    fs.ftruncateSync(fd, ins.header.fileSize);
    done.push(`file: size set to ${ins.header.fileSize} bytes (was ${ins.actualFileSize})`);
  }
  if (unreservedBytes(ins) > 0) {
    // KEEP_SIZE fills the holes only: allocated blocks and their data stay as they are.
    native.fallocate(fd, native.FALLOC_FL_KEEP_SIZE, ins.header.dataOffset, ins.allocation.capacityBytes);
    done.push(`data area: space allocated again (preallocation ${ins.header.preallocation})`);
  }
  const buf = new Uint8Array(ZONE_ENTRY_SIZE);
  for (const p of ins.problems) {
    if (p.zone < 0) continue;
    const z = p.zone;
    const e = p.entry ?? null;
    let fixed: PersistedZoneState;
    if (probe.zoneType(z) === ZoneType.CONVENTIONAL) {
      fixed = conventionalEntry(probe, z);
    } else if (e && p.repair?.startsWith('set the data end')) {
      fixed = { wp: e.wp, dataEnd: e.wp, flags: e.flags & 3 };
    } else {
      const capEnd = probe.zoneStart(z) + probe.zoneCap(z);
      fixed = { wp: capEnd, dataEnd: capEnd, flags: e ? e.flags & 3 : 0 };
    }
    encodeZoneEntry(fixed, buf);
    writeAllSync(fd, buf, ins.header.zoneTableOffset + z * ZONE_ENTRY_SIZE);
    done.push(`zone ${z}: ${p.repair} (wp ${fixed.wp}, data end ${fixed.dataEnd})`);
  }
  if (done.length) fs.fsyncSync(fd);
  return done;
}

export interface OpenImageOptions { readOnly?: boolean; logger?: Logger }

export interface OpenedImage { backend: EmulatedBackend; header: ImageHeader }

/**
 * How long a lock held by another open file is waited for. A daemon killed with io_uring
 * requests in flight keeps its files (and so its lock) until the kernel has torn its ring
 * down, a few milliseconds after the process is reported gone; a restart right after a
 * crash must not fail on that.
 */
const LOCK_GRACE_MS = 500;
const LOCK_RETRY_MS = 10;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function lockedError(file: string, fd: number): ZbdError {
  const holder = lockHolder(fd);
  return new ZbdError('EIMAGELOCK', `${file} is in use by another process${holder ? ` (${holder})` : ''}: it holds the image lock`, { file, holder });
}

/** Open and lock the image (exclusive for writers, shared for readers); throws EIMAGELOCK if held, EHOST if the host refuses. */
export function openLocked(file: string, writable: boolean): number {
  const fd = onHostFile('open', file, () => fs.openSync(file, writable ? 'r+' : 'r'));
  // A directory opens for reading without complaint; say what it is before reading it.
  if (fs.fstatSync(fd).isDirectory()) {
    fs.closeSync(fd);
    throw hostFileError(errnoError('EISDIR', 'open'), 'open', file);
  }
  for (let waited = 0; !native.flock(fd, writable, true); waited += LOCK_RETRY_MS) {
    if (waited >= LOCK_GRACE_MS) {
      const err = lockedError(file, fd);
      fs.closeSync(fd);
      throw err;
    }
    Atomics.wait(sleeper, 0, 0, LOCK_RETRY_MS);
  }
  return fd;
}

/** Open an image and check its header and size, without reading the zone table. */
export function openImageHeader(file: string, writable: boolean): { fd: number; header: ImageHeader } {
  const fd = openLocked(file, writable);
  try {
    const { header, size } = onHostFile('read', file, () => readHeader(fd, false));
    if (size !== header.fileSize) {
      throw new ZbdError('EIMAGE', `image file is ${size} bytes, expected ${header.fileSize} (run 'vhost-user-zbd check --repair')`, size);
    }
    return { fd, header };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * A sparse image takes space as it is written: say once, at start, when its filesystem could
 * not take all of it (the guest would then see write errors once the filesystem fills).
 */
function warnIfShortOfSpace(fd: number, file: string, header: ImageHeader, log: Logger): void {
  if (header.preallocation !== 'off') return;
  const a = allocationOf(fd, header);
  const unwritten = Math.max(0, a.fileBytes - a.allocatedBytes);
  const fsf = filesystemOf(file);
  if (!fsf || fsf.freeBytes >= unwritten) return;
  log.warn({
    image: file, filesystem: fsf.name, freeBytes: fsf.freeBytes, unwrittenBytes: unwritten, capacityBytes: a.capacityBytes,
  }, `the filesystem holding the image has ${formatBytes(fsf.freeBytes)} free but the sparse image can still grow by ${formatBytes(unwritten)}: ` +
    'writes beyond the free space will fail (I/O errors in the guest); free space, or create the image with --preallocation falloc to reserve it');
}

/** Open and validate an image; every header field and zone entry is checked before use. */
export function openImage(file: string, opts: OpenImageOptions = {}): OpenedImage {
  const { fd, header } = openImageHeader(file, !opts.readOnly);
  try {
    const entry = zoneTableReader(fd, header);
    const engine = new ZoneEngine(header.geometry, entry);
    // Conventional entries are not fed to the engine; still refuse a corrupted one.
    for (let z = 0; z < header.geometry.conventionalZones; z++) entry(z);
    const io = fileIoFor(file);
    opts.logger?.debug({ file, io: io.kind, preallocation: header.preallocation }, 'file I/O engine');
    if (opts.logger && !opts.readOnly) warnIfShortOfSpace(fd, file, header, opts.logger);
    const backend = new EmulatedBackend(engine, new FileStorage(fd, header, io), {
      readOnly: opts.readOnly, logger: opts.logger, serial: imageSerial(header.uuid),
    });
    return { backend, header };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

export type { ZoneGeometry };
