// The persistent emulation: one sparse image file (header, zone table, data).
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
import type { IoVec } from './backend.js';
import { EmulatedBackend } from './emulated-backend.js';
import { iovBytes, iovSlice } from './iovec.js';
import {
  HEADER_BLOCK, ZONE_ENTRY_SIZE, decodeHeader, decodeZoneEntry, encodeHeader, encodeZoneEntry,
  imageLayout, serialFromUuid, type ImageHeader,
} from './image-format.js';
import type { Storage } from './storage.js';
import { fileIoFor, type FileIo } from './file-io.js';

function readvAll(io: FileIo, fd: number, iov: IoVec, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    io.read(fd, iov, pos, (err, n) => {
      if (err) { reject(err); return; }
      if (n === iovBytes(iov)) { resolve(); return; }
      // Short read: retry the rest synchronously-simple way; EOF reads as zeroes.
      finishShort(fd, iov, pos, n).then(resolve, reject);
    });
  });
}

async function finishShort(fd: number, iov: IoVec, pos: number, done: number): Promise<void> {
  let skip = done;
  for (const b of iov) {
    if (skip >= b.byteLength) { skip -= b.byteLength; continue; }
    let at = skip;
    skip = 0;
    while (at < b.byteLength) {
      const n = await new Promise<number>((res, rej) => fs.read(fd, b, at, b.byteLength - at, pos + done, (e, r) => (e ? rej(e) : res(r))));
      if (n === 0) { b.fill(0, at); done += b.byteLength - at; break; }
      at += n;
      done += n;
    }
  }
}

function writevAll(io: FileIo, fd: number, iov: IoVec, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    io.write(fd, iov, pos, (err, n) => {
      if (err) { reject(err); return; }
      const total = iovBytes(iov);
      if (n === total) { resolve(); return; }
      // A short write (disk full mid-way) is retried for the rest, which reports the error.
      if (n === 0) { reject(new ZbdError('EIMAGE', `write of ${total} bytes at offset ${pos} wrote nothing`, pos)); return; }
      writevAll(io, fd, iovSlice(iov, n, total), pos + n).then(resolve, reject);
    });
  });
}

/** Bytes freed per fallocate call of a zone reset (~1 ms of lock hold on tmpfs). */
const DISCARD_PIECE = 8 << 20;

export class FileStorage implements Storage {
  private readonly entry = new Uint8Array(ZONE_ENTRY_SIZE);
  private closed = false;
  /** io: how the data moves (fileIoFor(image path)). */
  constructor(private readonly fd: number, private readonly header: ImageHeader, private readonly io: FileIo) {}

  readv(byteOffset: number, iov: IoVec): Promise<void> {
    return readvAll(this.io, this.fd, iov, this.header.dataOffset + byteOffset);
  }
  writev(byteOffset: number, iov: IoVec): Promise<void> {
    return writevAll(this.io, this.fd, iov, this.header.dataOffset + byteOffset);
  }
  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
  }
  async discard(byteOffset: number, length: number): Promise<void> {
    // In pieces on the thread pool: freeing a 256 MiB zone on tmpfs takes ~40 ms with the
    // file's inode lock held, which every write to the image also needs. Between pieces the
    // loop's writes to other zones get the lock.
    const mode = native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE;
    const start = this.header.dataOffset + byteOffset, end = start + length;
    for (let off = start; off < end; off += DISCARD_PIECE) {
      await native.fallocateAsync(this.fd, mode, off, Math.min(DISCARD_PIECE, end - off));
    }
  }
  persistZone(zone: number, state: PersistedZoneState): void {
    encodeZoneEntry(state, this.entry);
    // Synchronous 32-byte write into the page cache: the entry is in the file before the
    // write it describes is acknowledged, so a kill -9 right after cannot lose it.
    const n = fs.writeSync(this.fd, this.entry, 0, ZONE_ENTRY_SIZE, this.header.zoneTableOffset + zone * ZONE_ENTRY_SIZE);
    if (n !== ZONE_ENTRY_SIZE) throw new ZbdError('EIMAGE', `short zone table write (${n} bytes) for zone ${zone}`, zone);
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve, reject) => fs.close(this.fd, (e) => (e ? reject(e) : resolve())));
  }
}

export type ImageProfile = 'smr' | 'zns';

export interface CreateImageOptions extends Partial<GeometryInput> {
  capacitySectors: number;
  zoneSectors: number;
  profile?: ImageProfile;
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

/** Create an image atomically: written under a temporary name, then renamed into place. */
export function createImage(file: string, opts: CreateImageOptions): ImageHeader {
  const geometry = makeGeometry(applyProfile(opts));
  if (fs.existsSync(file)) {
    if (!opts.force) throw new ZbdError('EIMAGEEXIST', `${file} already exists (use --force to overwrite)`, file);
    const fd = fs.openSync(file, 'r');
    try {
      if (!native.flock(fd, true, true)) throw new ZbdError('EIMAGELOCK', `${file} is in use by another process`, file);
    } finally { fs.closeSync(fd); }
  }
  const layout = imageLayout(geometry);
  const header: ImageHeader = {
    geometry, ...layout, uuid: randomBytes(16), profile: opts.profile ?? 'custom',
  };
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    fs.writeSync(fd, encodeHeader(header), 0, HEADER_BLOCK, 0);
    const table = new Uint8Array(geometry.nrZones * ZONE_ENTRY_SIZE);
    const engine = new ZoneEngine(geometry);
    for (let z = 0; z < geometry.nrZones; z++) {
      encodeZoneEntry(engine.persistedState(z), table.subarray(z * ZONE_ENTRY_SIZE, (z + 1) * ZONE_ENTRY_SIZE));
    }
    fs.writeSync(fd, table, 0, table.byteLength, header.zoneTableOffset);
    fs.ftruncateSync(fd, layout.fileSize); // sparse: data costs nothing until written
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return header;
}

/** A problem found in an image: `zone` is -1 for the header/file. */
export interface ImageProblem { zone: number; message: string; repair?: string }

export interface ImageInspection {
  header: ImageHeader;
  headerChecksumOk: boolean;
  actualFileSize: number;
  /** One entry per zone; null where the entry is unreadable (bad checksum). */
  entries: (PersistedZoneState | null)[];
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

function readHeaderAndTable(fd: number, allowBadChecksum: boolean): { header: ImageHeader; checksumOk: boolean; size: number; table: Uint8Array } {
  const { header, checksumOk, size } = readHeader(fd, allowBadChecksum);
  const tableBytes = header.geometry.nrZones * ZONE_ENTRY_SIZE;
  const table = new Uint8Array(tableBytes);
  fs.readSync(fd, table, 0, tableBytes, header.zoneTableOffset);
  return { header, checksumOk, size, table };
}

/** Zone entries per read while opening: a million zones' table is 32 MB, read 512 KB at a time. */
const TABLE_CHUNK_ENTRIES = 16384;

/** Zone z's persisted entry, reading the table a chunk at a time (the engine asks in order). */
function zoneTableReader(fd: number, header: ImageHeader): (z: number) => PersistedZoneState {
  const nrZones = header.geometry.nrZones;
  const chunk = new Uint8Array(Math.min(TABLE_CHUNK_ENTRIES, nrZones) * ZONE_ENTRY_SIZE);
  let first = 0, count = 0;
  return (z) => {
    if (z < first || z >= first + count) {
      first = z - (z % TABLE_CHUNK_ENTRIES);
      count = Math.min(TABLE_CHUNK_ENTRIES, nrZones - first);
      const bytes = count * ZONE_ENTRY_SIZE;
      const n = fs.readSync(fd, chunk, 0, bytes, header.zoneTableOffset + first * ZONE_ENTRY_SIZE);
      if (n !== bytes) throw new ZbdError('EIMAGE', `short read of the zone table at zone ${first} (${n} of ${bytes} bytes)`, first);
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

/** Read-only full consistency check: every problem, not just the first. */
export function inspectImageFd(fd: number): ImageInspection {
  const { header, checksumOk, size, table } = readHeaderAndTable(fd, true);
  const g = header.geometry;
  const problems: ImageProblem[] = [];
  if (!checksumOk) problems.push({ zone: -1, message: 'header checksum mismatch (all fields valid)', repair: 'rewrite the header checksum' });
  if (size < header.fileSize) problems.push({ zone: -1, message: `image file is ${size} bytes, expected ${header.fileSize} (truncated)`, repair: 'extend the file (missing data reads as zeroes)' });
  else if (size > header.fileSize) problems.push({ zone: -1, message: `image file is ${size} bytes, expected ${header.fileSize} (trailing data)`, repair: 'truncate the trailing bytes' });
  const probe = new ZoneEngine(g);
  const entries: (PersistedZoneState | null)[] = new Array(g.nrZones);
  for (let z = 0; z < g.nrZones; z++) {
    const e = decodeZoneEntry(table, z * ZONE_ENTRY_SIZE);
    entries[z] = e;
    if (!e) {
      problems.push({ zone: z, message: 'zone entry checksum mismatch', repair: 'mark the zone FULL with all its data readable (keeps every acknowledged byte)' });
      continue;
    }
    if (probe.zoneType(z) === ZoneType.CONVENTIONAL) {
      const want = conventionalEntry(probe, z);
      if (e.wp !== want.wp || e.dataEnd !== want.dataEnd || e.flags !== 0) {
        problems.push({ zone: z, message: `conventional zone entry holds wp ${e.wp} data end ${e.dataEnd} flags ${e.flags}`, repair: 'rewrite the conventional zone entry' });
      }
      continue;
    }
    const why = probe.validatePersisted(z, e);
    if (why) {
      const capEnd = probe.zoneStart(z) + probe.zoneCap(z);
      const fixable = e.wp >= probe.zoneStart(z) && e.wp < capEnd && Number.isSafeInteger(e.wp) && (e.wp - probe.zoneStart(z)) % g.blockSectors === 0;
      problems.push({
        zone: z, message: why,
        repair: fixable ? 'set the data end to the write pointer' : 'mark the zone FULL with all its data readable (keeps every acknowledged byte)',
      });
    }
  }
  return { header, headerChecksumOk: checksumOk, actualFileSize: size, entries, problems };
}

/** Apply the repairs inspectImageFd proposed. Returns what was done, one line each. */
export function repairImageFd(fd: number, ins: ImageInspection): string[] {
  const done: string[] = [];
  const g = ins.header.geometry;
  const probe = new ZoneEngine(g);
  if (!ins.headerChecksumOk) {
    fs.writeSync(fd, encodeHeader(ins.header), 0, HEADER_BLOCK, 0);
    done.push('header: rewrote the checksum');
  }
  if (ins.actualFileSize !== ins.header.fileSize) {
    fs.ftruncateSync(fd, ins.header.fileSize);
    done.push(`file: size set to ${ins.header.fileSize} bytes (was ${ins.actualFileSize})`);
  }
  const buf = new Uint8Array(ZONE_ENTRY_SIZE);
  for (const p of ins.problems) {
    if (p.zone < 0) continue;
    const z = p.zone;
    const e = ins.entries[z];
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
    fs.writeSync(fd, buf, 0, ZONE_ENTRY_SIZE, ins.header.zoneTableOffset + z * ZONE_ENTRY_SIZE);
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

/** Lock the image (exclusive for writers, shared for readers); throws EIMAGELOCK if held. */
export function openLocked(file: string, writable: boolean): number {
  let fd: number;
  try {
    fd = fs.openSync(file, writable ? 'r+' : 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ZbdError('EIMAGE', `cannot open ${file}: ${e.code ?? e.message}`, file, { cause: err });
  }
  for (let waited = 0; !native.flock(fd, writable, true); waited += LOCK_RETRY_MS) {
    if (waited >= LOCK_GRACE_MS) {
      fs.closeSync(fd);
      throw new ZbdError('EIMAGELOCK', `${file} is in use by another process (image locked)`, file);
    }
    Atomics.wait(sleeper, 0, 0, LOCK_RETRY_MS);
  }
  return fd;
}

/** Open and validate an image; every header field and zone entry is checked before use. */
export function openImage(file: string, opts: OpenImageOptions = {}): OpenedImage {
  const fd = openLocked(file, !opts.readOnly);
  try {
    const { header, size } = readHeader(fd, false);
    if (size !== header.fileSize) {
      throw new ZbdError('EIMAGE', `image file is ${size} bytes, expected ${header.fileSize} (run 'vhost-user-zbd check --repair')`, size);
    }
    const entry = zoneTableReader(fd, header);
    const engine = new ZoneEngine(header.geometry, entry);
    // Conventional entries are not fed to the engine; still refuse a corrupted one.
    for (let z = 0; z < header.geometry.conventionalZones; z++) entry(z);
    const io = fileIoFor(file);
    opts.logger?.debug({ file, io: io.kind }, 'file I/O engine');
    const backend = new EmulatedBackend(engine, new FileStorage(fd, header, io), {
      readOnly: opts.readOnly, logger: opts.logger, serial: serialFromUuid(header.uuid),
    });
    return { backend, header };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

export type { ZoneGeometry };
