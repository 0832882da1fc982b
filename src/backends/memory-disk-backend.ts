// A regular (non-zoned) disk in RAM: `serve --memory --model none`, and the device-model tests.
// Nothing survives the process; never-written and discarded ranges take no memory.
import type { AppendResult, Backend, BackendInfo, ResultCallback } from './backend.js';
import { iovBytes, type IoVec } from '../iovec.js';
import { MemoryStorage } from './memory-storage.js';
import { MEMORY_SERIAL } from './serial.js';
import { ZbdError } from '../errors.js';
import { SECTOR_SIZE, ZoneResult } from '../zoned/types.js';

const ZERO_CHUNK = 1 << 20;

export class MemoryDiskBackend implements Backend {
  readonly info: BackendInfo;
  private readonly storage: MemoryStorage;

  constructor(sizeBytes: number, opts: { blockSize?: number; readOnly?: boolean; serial?: string } = {}) {
    const blockSize = opts.blockSize ?? 512;
    if (blockSize !== 512 && blockSize !== 4096) throw new ZbdError('EARG', `block size ${blockSize} must be 512 or 4096`, blockSize);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % blockSize !== 0) {
      throw new ZbdError('EARG', `size ${sizeBytes} is not a positive multiple of the block size ${blockSize}`, sizeBytes);
    }
    this.storage = new MemoryStorage(sizeBytes);
    this.info = {
      capacitySectors: sizeBytes / SECTOR_SIZE, blockSize, physicalBlockSize: blockSize,
      readOnly: opts.readOnly ?? false, serial: opts.serial ?? MEMORY_SERIAL, zoned: null,
    };
  }

  /** Bytes of RAM holding data (1 MiB chunks). */
  get allocatedBytes(): number { return this.storage.allocatedBytes; }

  private inRange(sector: number, bytes: number): boolean {
    return bytes % SECTOR_SIZE === 0 && sector >= 0 && sector + bytes / SECTOR_SIZE <= this.info.capacitySectors;
  }

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitRead(sector, iov, resolve));
  }

  write(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitWrite(sector, iov, resolve));
  }

  /** RAM answers at once: `done` runs before this returns. */
  submitRead(sector: number, iov: IoVec, done: ResultCallback): void {
    if (!this.inRange(sector, iovBytes(iov))) { done(ZoneResult.OUT_OF_RANGE); return; }
    this.storage.copyOut(sector * SECTOR_SIZE, iov);
    done(ZoneResult.OK);
  }

  submitWrite(sector: number, iov: IoVec, done: ResultCallback): void {
    if (this.info.readOnly) { done(ZoneResult.READ_ONLY); return; }
    if (!this.inRange(sector, iovBytes(iov))) { done(ZoneResult.OUT_OF_RANGE); return; }
    this.storage.copyIn(sector * SECTOR_SIZE, iov);
    done(ZoneResult.OK);
  }

  append(): Promise<AppendResult> { return Promise.resolve({ result: ZoneResult.UNSUPPORTED, sector: 0 }); }
  flush(): Promise<ZoneResult> { return Promise.resolve(ZoneResult.OK); }

  async discard(sector: number, sectors: number): Promise<ZoneResult> {
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    if (!this.inRange(sector, sectors * SECTOR_SIZE)) return ZoneResult.OUT_OF_RANGE;
    await this.storage.discard(sector * SECTOR_SIZE, sectors * SECTOR_SIZE);
    return ZoneResult.OK;
  }

  async writeZeroes(sector: number, sectors: number, unmap: boolean): Promise<ZoneResult> {
    if (unmap) return this.discard(sector, sectors);
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    if (!this.inRange(sector, sectors * SECTOR_SIZE)) return ZoneResult.OUT_OF_RANGE;
    // Without unmap the zeroes keep their memory, as a written range would.
    const zero = new Uint8Array(Math.min(ZERO_CHUNK, sectors * SECTOR_SIZE));
    const end = (sector + sectors) * SECTOR_SIZE;
    for (let off = sector * SECTOR_SIZE; off < end; off += zero.byteLength) {
      this.storage.copyIn(off, [zero.subarray(0, Math.min(zero.byteLength, end - off))]);
    }
    return ZoneResult.OK;
  }

  reportZones(): Promise<number> { return Promise.resolve(0); }
  zoneMgmt(): Promise<ZoneResult> { return Promise.resolve(ZoneResult.UNSUPPORTED); }
  close(): Promise<void> { return this.storage.close(); }
}
