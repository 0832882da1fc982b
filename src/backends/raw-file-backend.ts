// A plain raw file served as a regular (non-zoned) disk: `serve --model none`, for front-ends
// without the zoned feature and as the like-for-like peer of qemu-storage-daemon.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { SECTOR_SIZE, ZoneResult } from '../zoned/types.js';
import type { AppendResult, Backend, BackendInfo, ResultCallback } from './backend.js';
import { sysfsBlockPath } from './device-number.js';
import { openLocked } from './image-file.js';
import { iovBytes, type IoVec } from '../iovec.js';
import { fileIoFor, type FileIo } from './file-io.js';
import { transferAll, transferAllAsync } from './transfer-all.js';
import { rawFileSerial } from './serial.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocateAsync } from '../native/index.js';
import { ERRNO, errnoOf } from './host-errno.js';

/**
 * Bytes per fallocate call: freeing or zeroing takes the file's inode lock, which every
 * write to the file needs too; in pieces, the guest's other writes get it in between.
 */
const FALLOCATE_PIECE = 8 << 20;
/** The zero-writing fallback of WRITE_ZEROES writes this much at a time from one shared buffer. */
const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | null = null;

/** fallocate refused the mode: this file system (or device) cannot do it; try something else. */
function unsupported(err: unknown): boolean {
  const n = errnoOf(err);
  return n === ERRNO.EOPNOTSUPP || n === 38 /* ENOSYS */;
}

export class RawFileBackend implements Backend {
  readonly info: BackendInfo;
  private closed = false;
  /** fallocate(PUNCH_HOLE) works here (cleared on its first EOPNOTSUPP). */
  private canPunch = true;
  /** fallocate(ZERO_RANGE) works here (tmpfs: no). */
  private canZeroRange = true;
  /** fallocate(0) allocates here (a block device: no). */
  private canAllocate = true;

  private constructor(
    private readonly fd: number, private readonly io: FileIo, sizeBytes: number, serial: string, readOnly: boolean, blockSize: number,
    private readonly log?: Logger,
  ) {
    this.info = {
      capacitySectors: sizeBytes / SECTOR_SIZE, blockSize, physicalBlockSize: blockSize, readOnly, serial, zoned: null,
    };
  }

  static open(file: string, opts: { readOnly?: boolean; blockSize?: number; logger?: Logger } = {}): RawFileBackend {
    const blockSize = opts.blockSize ?? 512;
    if (blockSize !== 512 && blockSize !== 4096) throw new ZbdError('EARG', `block size ${blockSize} must be 512 or 4096`, blockSize);
    const fd = openLocked(file, !opts.readOnly);
    const st = fs.fstatSync(fd);
    const size = st.isBlockDevice() ? Number(fs.readFileSync(`${sysfsBlockPath(st.rdev)}/size`, 'utf8').trim()) * 512 : st.size;
    if (size === 0 || size % blockSize !== 0) {
      fs.closeSync(fd);
      throw new ZbdError('EIMAGE', `${file}: size ${size} is not a positive multiple of the block size ${blockSize}`, size);
    }
    const serial = rawFileSerial(file, st.ino);
    // A block device node lives on devtmpfs: its statfs says nothing about the device.
    const io = fileIoFor(st.isBlockDevice() ? null : file);
    opts.logger?.debug({ file, io: io.kind }, 'file I/O engine');
    return new RawFileBackend(fd, io, size, serial, !!opts.readOnly, blockSize, opts.logger);
  }

  private inRange(sector: number, bytes: number): boolean {
    return bytes % SECTOR_SIZE === 0 && sector >= 0 && sector + bytes / SECTOR_SIZE <= this.info.capacitySectors;
  }

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitRead(sector, iov, resolve));
  }

  write(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitWrite(sector, iov, resolve));
  }

  submitRead(sector: number, iov: IoVec, done: ResultCallback): void {
    const bytes = iovBytes(iov);
    if (!this.inRange(sector, bytes)) { done(ZoneResult.OUT_OF_RANGE); return; }
    transferAll(this.io, 'read', this.fd, iov, sector * SECTOR_SIZE, bytes, (err) => {
      if (err) { this.log?.error({ err, sector, bytes }, 'read failed'); done(ZoneResult.IO_ERROR); } else done(ZoneResult.OK);
    });
  }

  submitWrite(sector: number, iov: IoVec, done: ResultCallback): void {
    if (this.info.readOnly) { done(ZoneResult.READ_ONLY); return; }
    const bytes = iovBytes(iov);
    if (!this.inRange(sector, bytes)) { done(ZoneResult.OUT_OF_RANGE); return; }
    transferAll(this.io, 'write', this.fd, iov, sector * SECTOR_SIZE, bytes, (err) => {
      if (err) { this.log?.error({ err, sector, bytes }, 'write failed'); done(ZoneResult.IO_ERROR); } else done(ZoneResult.OK);
    });
  }

  endBatch(): void { this.io.flush(); }

  append(): Promise<AppendResult> { return Promise.resolve({ result: ZoneResult.UNSUPPORTED, sector: 0 }); }

  flush(): Promise<ZoneResult> {
    return new Promise((resolve) => fs.fdatasync(this.fd, (err) => {
      if (err) { this.log?.error({ err }, 'flush failed'); resolve(ZoneResult.IO_ERROR); } else resolve(ZoneResult.OK);
    }));
  }

  /** Punches a hole (sparse file: the space is freed; block device: zeroed with unmap). */
  async discard(sector: number, sectors: number): Promise<ZoneResult> {
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    if (!this.inRange(sector, sectors * SECTOR_SIZE)) return ZoneResult.OUT_OF_RANGE;
    if (!this.canPunch || sectors === 0) return ZoneResult.OK;
    try {
      await this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sector, sectors);
    } catch (err) {
      if (!unsupported(err)) { this.log?.error({ err, op: 'discard', sector, sectors }, 'discard failed'); return ZoneResult.IO_ERROR; }
      // A discard promises nothing: without hole punching it is a no-op, as in QEMU.
      this.canPunch = false;
      this.log?.info({ errno: errnoOf(err) }, 'this file cannot punch holes: discards free nothing');
    }
    return ZoneResult.OK;
  }

  /**
   * Makes the range read as zeroes: with unmap by punching a hole; without it (or when holes
   * cannot be punched) with ZERO_RANGE, or a hole re-allocated at once (tmpfs), or by writing
   * zeroes — whichever this file is the first to accept.
   */
  async writeZeroes(sector: number, sectors: number, unmap: boolean): Promise<ZoneResult> {
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    if (!this.inRange(sector, sectors * SECTOR_SIZE)) return ZoneResult.OUT_OF_RANGE;
    if (sectors === 0) return ZoneResult.OK;
    try {
      if (unmap && this.canPunch && await this.tryFallocate('canPunch', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sector, sectors)) return ZoneResult.OK;
      if (this.canZeroRange && await this.tryFallocate('canZeroRange', FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, sector, sectors)) return ZoneResult.OK;
      if (this.canPunch && this.canAllocate && await this.tryFallocate('canPunch', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sector, sectors)) {
        // The hole reads as zeroes; allocating it again keeps the no-unmap promise (space stays reserved).
        if (unmap || await this.tryFallocate('canAllocate', 0, sector, sectors)) return ZoneResult.OK;
      }
      await this.writeZeroBytes(sector, sectors);
      return ZoneResult.OK;
    } catch (err) {
      this.log?.error({ err, op: 'write-zeroes', sector, sectors, unmap }, 'write zeroes failed');
      return ZoneResult.IO_ERROR;
    }
  }

  /** fallocate over the range in pieces; false (and the capability cleared) when the mode is unsupported. */
  private async tryFallocate(cap: 'canPunch' | 'canZeroRange' | 'canAllocate', mode: number, sector: number, sectors: number): Promise<boolean> {
    try {
      await this.fallocate(mode, sector, sectors);
      return true;
    } catch (err) {
      if (!unsupported(err)) throw err;
      this[cap] = false;
      this.log?.debug({ mode, errno: errnoOf(err) }, 'fallocate mode not supported here: using the next way');
      return false;
    }
  }

  private async fallocate(mode: number, sector: number, sectors: number): Promise<void> {
    const end = (sector + sectors) * SECTOR_SIZE;
    for (let off = sector * SECTOR_SIZE; off < end; off += FALLOCATE_PIECE) {
      await fallocateAsync(this.fd, mode, off, Math.min(FALLOCATE_PIECE, end - off));
    }
  }

  private async writeZeroBytes(sector: number, sectors: number): Promise<void> {
    zeroChunk ??= new Uint8Array(ZERO_CHUNK);
    const end = (sector + sectors) * SECTOR_SIZE;
    for (let off = sector * SECTOR_SIZE; off < end; off += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, end - off);
      const view = n === ZERO_CHUNK ? zeroChunk : zeroChunk.subarray(0, n);
      await transferAllAsync(this.io, 'write', this.fd, [view], off, n);
    }
  }

  reportZones(): Promise<number> { return Promise.resolve(0); }
  zoneMgmt(): Promise<ZoneResult> { return Promise.resolve(ZoneResult.UNSUPPORTED); }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    fs.closeSync(this.fd);
  }
}
