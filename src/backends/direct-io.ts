// O_DIRECT transfers between guest memory views and a block device.
//
// O_DIRECT skips the host page cache (the guest has its own; caching twice wastes memory and
// hides the device's zone errors until writeback). It requires, per request, a position and
// a length that are multiples of the logical block size and, per iovec segment, a length
// that is a multiple of the logical block size and an address aligned to the queue's DMA
// alignment (block/fops.c blkdev_dio_invalid, Linux 6.12). Guest pages usually satisfy
// that, so the guest's own memory goes to the device without a copy. When a segment does
// not (a buffer at an odd offset, a 512-byte segment on a 4K device) or the request itself
// is not block aligned (a sub-block read), the whole request goes through one aligned
// bounce buffer instead: checked per request, bounced only when needed.
//
// Each segment must also start on a logical-block boundary, not just on the DMA alignment
// the queue advertises: a segment aligned only to 512 bytes on a 4K-block device reaches the
// driver as bvecs that split blocks across pages, and drivers assume whole blocks per bvec
// (null_blk 6.12 memory-backed, bs=4096: lost the block and wrote past its page).
//
// Only memory mapped through the addon (guest RAM shared by the front-end, the bounce
// buffers) goes to the device directly. JavaScript heap memory (tests, the report command)
// is always copied: its pages are shared with other objects and recycled by V8 and malloc
// while a transfer may still hold them. Under UML 6.12 heap buffers at sub-page offsets
// lost whole sectors on O_DIRECT (seen on null_blk; mapped memory at the same offsets never did).
import fs from 'node:fs';
import { ZbdError } from '../errors.js';
import { closeFd, isMapped, memfdCreate, mmap, munmap, pageOffsetOf, pageSize } from '../native/index.js';
import { iovBytes, iovRead, iovWrite, type IoVec } from '../iovec.js';
import { transferAllAsync, type Mover, type TransferDir } from './transfer-all.js';

export interface DirectIoOptions {
  /** Logical block size in bytes: positions and segment lengths must be multiples. */
  blockSize: number;
  /** The queue's buffer address alignment in bytes (queue/dma_alignment + 1); raised to the block size. */
  memAlign: number;
  /** Bounce buffers kept for reuse, bytes (default 16 MiB). */
  poolBytes?: number;
}

const isPow2 = (v: number): boolean => Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0;

/**
 * Page-aligned scratch buffers in power-of-two sizes from 64 KiB, kept for reuse up to a
 * byte budget. Each is a shared mapping of its own memfd (the fd is closed at once; the
 * mapping keeps the memory), so it is page aligned and never moved or reused behind our back.
 */
export class BouncePool {
  private readonly free = new Map<number, Uint8Array[]>();
  private cachedBytes = 0;
  private closed = false;
  /** Buffers allocated so far (tests check that aligned I/O allocates none). */
  allocations = 0;

  constructor(private readonly maxCachedBytes = 16 << 20) {}

  private static sizeClass(bytes: number): number {
    let size = 64 << 10;
    while (size < bytes) size *= 2;
    return size;
  }

  /** A page-aligned buffer of exactly `bytes` bytes (a view of a buffer of its size class). */
  take(bytes: number): Uint8Array {
    if (this.closed) throw new ZbdError('EARG', 'bounce pool used after close', bytes);
    const size = BouncePool.sizeClass(bytes);
    let buf = this.free.get(size)?.pop();
    if (buf) {
      this.cachedBytes -= size;
    } else {
      const fd = memfdCreate('vuzbd-bounce', size);
      try {
        buf = new Uint8Array(mmap(fd, 0, size, true));
      } finally {
        closeFd(fd);
      }
      this.allocations++;
    }
    return buf.subarray(0, bytes);
  }

  /** Give back a buffer from take() once no transfer uses it any more. */
  give(view: Uint8Array): void {
    const full = new Uint8Array(view.buffer, 0, view.buffer.byteLength);
    if (this.closed || this.cachedBytes + full.byteLength > this.maxCachedBytes) {
      munmap(full.buffer as ArrayBuffer);
      return;
    }
    let list = this.free.get(full.byteLength);
    if (!list) { list = []; this.free.set(full.byteLength, list); }
    list.push(full);
    this.cachedBytes += full.byteLength;
  }

  /** Unmap every cached buffer; buffers still out are unmapped when given back. */
  close(): void {
    this.closed = true;
    for (const list of this.free.values()) for (const b of list) munmap(b.buffer as ArrayBuffer);
    this.free.clear();
    this.cachedBytes = 0;
  }
}

/** Plain preadv/pwritev on the thread pool (O_DIRECT waits for the device). */
const directMover: Mover = {
  read: (fd, iov, pos, cb) => fs.readv(fd, iov as Uint8Array[], pos, cb),
  write: (fd, iov, pos, cb) => fs.writev(fd, iov as Uint8Array[], pos, cb),
};

export class DirectIo {
  readonly blockSize: number;
  /** Address alignment a segment needs to go direct: the DMA alignment, at least one block. */
  readonly memAlign: number;
  readonly pool: BouncePool;
  /** Requests that went straight from/to guest memory, and those that needed a bounce. */
  readonly stats = { direct: 0, bounced: 0 };

  constructor(private readonly fd: number, o: DirectIoOptions) {
    if (!isPow2(o.blockSize) || o.blockSize < 512) {
      throw new ZbdError('EDEVICE', `logical block size ${o.blockSize} is not a power of two of at least 512`, o.blockSize);
    }
    if (!isPow2(o.memAlign) || o.memAlign > pageSize()) {
      throw new ZbdError('EDEVICE', `DMA alignment ${o.memAlign} is not a power of two up to the page size ${pageSize()}`, o.memAlign);
    }
    this.blockSize = o.blockSize;
    // Block-aligned addresses at least (see the top of the file), at most a page.
    this.memAlign = Math.max(o.memAlign, Math.min(o.blockSize, pageSize()));
    this.pool = new BouncePool(o.poolBytes);
  }

  /** True when iov at byte position pos can go to the device as it is (see the top of the file). */
  canGoDirect(pos: number, iov: IoVec): boolean {
    const bs = this.blockSize;
    if (pos % bs !== 0) return false;
    const mask = this.memAlign - 1;
    for (const b of iov) {
      if (b.byteLength % bs !== 0 || !isMapped(b)) return false;
      if ((pageOffsetOf(b) & mask) !== 0) return false;
    }
    return true;
  }

  /** Release the bounce buffers (the fd belongs to the caller). */
  close(): void {
    this.pool.close();
  }

  /** Fill iov from the device at byte position pos (any position and length). */
  async readv(pos: number, iov: IoVec): Promise<void> {
    const bytes = iovBytes(iov);
    if (bytes === 0) return;
    if (bytes % this.blockSize === 0 && this.canGoDirect(pos, iov)) {
      this.stats.direct++;
      await this.transfer('read', pos, iov as Uint8Array[], bytes);
      return;
    }
    // Read the enclosing whole blocks and copy out the part asked for.
    this.stats.bounced++;
    const bs = this.blockSize;
    const from = Math.floor(pos / bs) * bs;
    const to = Math.ceil((pos + bytes) / bs) * bs;
    const bounce = this.pool.take(to - from);
    try {
      await this.transfer('read', from, [bounce], to - from);
      iovWrite(iov, 0, bounce.subarray(pos - from, pos - from + bytes));
    } finally {
      this.pool.give(bounce);
    }
  }

  /**
   * Write iov at byte position pos. Position and total length must be block multiples (the
   * device cannot take less than a block, and read-modify-write could lose a racing write).
   */
  async writev(pos: number, iov: IoVec): Promise<void> {
    const bytes = iovBytes(iov);
    if (bytes === 0) return;
    const bs = this.blockSize;
    if (pos % bs !== 0 || bytes % bs !== 0) {
      throw new ZbdError('EARG', `write of ${bytes} bytes at byte ${pos} is not aligned to the ${bs}-byte block`, { pos, bytes });
    }
    if (this.canGoDirect(pos, iov)) {
      this.stats.direct++;
      await this.transfer('write', pos, iov as Uint8Array[], bytes);
      return;
    }
    this.stats.bounced++;
    const bounce = this.pool.take(bytes);
    try {
      iovRead(iov, 0, bounce);
      await this.transfer('write', pos, [bounce], bytes);
    } finally {
      this.pool.give(bounce);
    }
  }

  /** One preadv/pwritev, continued while it comes back short by whole blocks (a part of a block would leave the rest misaligned). */
  private transfer(dir: TransferDir, pos: number, iov: Uint8Array[], bytes: number): Promise<void> {
    return transferAllAsync(directMover, dir, this.fd, iov, pos, bytes, this.blockSize);
  }
}
