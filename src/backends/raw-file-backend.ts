// A plain raw file served as a regular (non-zoned) disk: `serve --model none`, for front-ends
// without the zoned feature and as the like-for-like peer of qemu-storage-daemon.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { SECTOR_SIZE, ZoneResult } from '../zoned/types.js';
import type { AppendResult, Backend, BackendInfo, IoVec } from './backend.js';
import { sysfsBlockPath } from './device-number.js';
import { openLocked } from './file-backend.js';
import { iovBytes } from './iovec.js';
import { fileIoFor, type FileIo } from './file-io.js';
import { createHash } from 'node:crypto';

export class RawFileBackend implements Backend {
  readonly info: BackendInfo;
  private closed = false;

  private constructor(private readonly fd: number, private readonly io: FileIo, sizeBytes: number, serial: string, readOnly: boolean, blockSize: number, private readonly log?: Logger) {
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
    // The serial must stay the same across restarts: derive it from the path and inode.
    const serial = 'vuzbd-' + createHash('sha1').update(`${path.resolve(file)}:${st.ino}`).digest('hex').slice(0, 14);
    // A block device node lives on devtmpfs: its statfs says nothing about the device.
    const io = fileIoFor(st.isBlockDevice() ? null : file);
    opts.logger?.debug({ file, io: io.kind }, 'file I/O engine');
    return new RawFileBackend(fd, io, size, serial, !!opts.readOnly, blockSize, opts.logger);
  }

  private inRange(sector: number, bytes: number): boolean {
    return bytes % SECTOR_SIZE === 0 && sector >= 0 && sector + bytes / SECTOR_SIZE <= this.info.capacitySectors;
  }

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    const bytes = iovBytes(iov);
    if (!this.inRange(sector, bytes)) return Promise.resolve(ZoneResult.OUT_OF_RANGE);
    return new Promise((resolve) => this.io.read(this.fd, iov, sector * SECTOR_SIZE, (err, n) => {
      if (err || n !== bytes) { this.log?.error({ err, sector, bytes, n }, 'read failed'); resolve(ZoneResult.IO_ERROR); } else resolve(ZoneResult.OK);
    }));
  }

  write(sector: number, iov: IoVec): Promise<ZoneResult> {
    if (this.info.readOnly) return Promise.resolve(ZoneResult.READ_ONLY);
    const bytes = iovBytes(iov);
    if (!this.inRange(sector, bytes)) return Promise.resolve(ZoneResult.OUT_OF_RANGE);
    return new Promise((resolve) => this.io.write(this.fd, iov, sector * SECTOR_SIZE, (err, n) => {
      if (err || n !== bytes) { this.log?.error({ err, sector, bytes, n }, 'write failed'); resolve(ZoneResult.IO_ERROR); } else resolve(ZoneResult.OK);
    }));
  }

  append(): Promise<AppendResult> { return Promise.resolve({ result: ZoneResult.UNSUPPORTED, sector: 0 }); }

  flush(): Promise<ZoneResult> {
    return new Promise((resolve) => fs.fdatasync(this.fd, (err) => {
      if (err) { this.log?.error({ err }, 'flush failed'); resolve(ZoneResult.IO_ERROR); } else resolve(ZoneResult.OK);
    }));
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
