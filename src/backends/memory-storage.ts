// RAM storage for tests and benchmarks: sparse 1 MiB chunks, allocated on first write.
import type { IoVec } from '../iovec.js';
import type { Storage, StorageCallback } from './storage.js';

const CHUNK_SHIFT = 20;
const CHUNK = 1 << CHUNK_SHIFT;

export class MemoryStorage implements Storage {
  private readonly chunks = new Map<number, Uint8Array>();
  constructor(readonly sizeBytes: number) {}

  private each(byteOffset: number, iov: IoVec, fn: (chunk: number, at: number, buf: Uint8Array) => void): void {
    let off = byteOffset;
    for (const b of iov) {
      let done = 0;
      while (done < b.byteLength) {
        const chunk = Math.floor(off / CHUNK);
        const at = off - chunk * CHUNK;
        const n = Math.min(CHUNK - at, b.byteLength - done);
        fn(chunk, at, b.subarray(done, done + n));
        done += n;
        off += n;
      }
    }
  }

  /** Copies out the bytes at byteOffset into iov, at once. */
  copyOut(byteOffset: number, iov: IoVec): void { this.each(byteOffset, iov, this.readChunk); }

  /** Copies iov in at byteOffset, at once. */
  copyIn(byteOffset: number, iov: IoVec): void { this.each(byteOffset, iov, this.writeChunk); }

  private readonly readChunk = (c: number, at: number, buf: Uint8Array): void => {
    const chunk = this.chunks.get(c);
    if (chunk) buf.set(chunk.subarray(at, at + buf.byteLength)); else buf.fill(0);
  };

  private readonly writeChunk = (c: number, at: number, buf: Uint8Array): void => {
    let chunk = this.chunks.get(c);
    if (!chunk) { chunk = new Uint8Array(CHUNK); this.chunks.set(c, chunk); }
    chunk.set(buf, at);
  };

  /** Memory moves at once: `done` runs before this returns. */
  read(byteOffset: number, iov: IoVec, done: StorageCallback): void {
    this.copyOut(byteOffset, iov);
    done(null);
  }

  write(byteOffset: number, iov: IoVec, done: StorageCallback): void {
    this.copyIn(byteOffset, iov);
    done(null);
  }

  flush(): void { /* nothing is queued */ }

  sync(): Promise<void> { return Promise.resolve(); }

  discard(byteOffset: number, length: number): Promise<void> {
    const end = byteOffset + length;
    for (let off = byteOffset; off < end;) {
      const c = Math.floor(off / CHUNK);
      const at = off - c * CHUNK;
      const n = Math.min(CHUNK - at, end - off);
      const chunk = this.chunks.get(c);
      if (chunk) {
        if (n === CHUNK) this.chunks.delete(c); else chunk.fill(0, at, at + n);
      }
      off += n;
    }
    return Promise.resolve();
  }

  persistZone(): void { /* RAM disk: nothing survives the process anyway */ }

  get allocatedBytes(): number { return this.chunks.size * CHUNK; }

  close(): Promise<void> { this.chunks.clear(); return Promise.resolve(); }
}
