// The data area of an image file as the emulated backend's Storage: reads, writes, resets
// (discard) and zone-table entries, at the offsets the image header gives.
import fs from 'node:fs';
import type { PersistedZoneState } from '../zoned/zone-table.js';
import * as native from '../native/index.js';
import { iovBytes, type IoVec } from '../iovec.js';
import { ZONE_ENTRY_SIZE, encodeZoneEntry, type ImageHeader } from './image-format.js';
import type { Storage, StorageCallback } from './storage.js';
import type { FileIo } from './file-io.js';
import { transferAll, writeAllSync } from './transfer-all.js';

/** Bytes freed per fallocate call of a zone reset (~1 ms of lock hold on tmpfs). */
const DISCARD_PIECE = 8 << 20;
/** linux/falloc.h: zero a range, keeping (or making) its blocks allocated. */
const FALLOC_FL_ZERO_RANGE = 0x10;
const EOPNOTSUPP = 95;

export class FileStorage implements Storage {
  private readonly entry = new Uint8Array(ZONE_ENTRY_SIZE);
  private closed = false;
  /** io: how the data moves (fileIoFor(image path)). */
  constructor(private readonly fd: number, private readonly header: ImageHeader, private readonly io: FileIo) {}

  read(byteOffset: number, iov: IoVec, done: StorageCallback): void {
    transferAll(this.io, 'read', this.fd, iov, this.header.dataOffset + byteOffset, iovBytes(iov), done);
  }
  write(byteOffset: number, iov: IoVec, done: StorageCallback): void {
    transferAll(this.io, 'write', this.fd, iov, this.header.dataOffset + byteOffset, iovBytes(iov), done);
  }
  flush(): void { this.io.flush(); }
  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
  }
  /** Preallocated images: whether the filesystem zeroes a range in place (ext4, xfs) or must punch and re-allocate (tmpfs). */
  private zeroRangeWorks = true;
  async discard(byteOffset: number, length: number): Promise<void> {
    // In pieces on the thread pool: freeing a 256 MiB zone on tmpfs takes ~40 ms with the
    // file's inode lock held, which every write to the image also needs. Between pieces the
    // loop's writes to other zones get the lock.
    const start = this.header.dataOffset + byteOffset, end = start + length;
    const reserve = this.header.preallocation !== 'off';
    for (let off = start; off < end; off += DISCARD_PIECE) {
      const len = Math.min(DISCARD_PIECE, end - off);
      if (!reserve) {
        await native.fallocateAsync(this.fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, off, len);
        continue;
      }
      // A preallocated image keeps its space through a reset (the user reserved it so writes
      // cannot meet ENOSPC); the old data is zeroed all the same, so a repaired entry can
      // never expose it.
      if (this.zeroRangeWorks) {
        try {
          await native.fallocateAsync(this.fd, FALLOC_FL_ZERO_RANGE | native.FALLOC_FL_KEEP_SIZE, off, len);
          continue;
        } catch (err) {
          if ((err as { errno?: number }).errno !== EOPNOTSUPP) throw err;
          this.zeroRangeWorks = false;
        }
      }
      await native.fallocateAsync(this.fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, off, len);
      await native.fallocateAsync(this.fd, native.FALLOC_FL_KEEP_SIZE, off, len);
    }
  }
  persistZone(zone: number, state: PersistedZoneState): void {
    encodeZoneEntry(state, this.entry);
    // Synchronous 32-byte write into the page cache: the entry is in the file before the
    // write it describes is acknowledged, so a kill -9 right after cannot lose it.
    writeAllSync(this.fd, this.entry, this.header.zoneTableOffset + zone * ZONE_ENTRY_SIZE);
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve, reject) => fs.close(this.fd, (e) => (e ? reject(e) : resolve())));
  }
}
