// Inflight I/O tracking for split rings (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, spec §5.5 and
// QEMU's vhost-user.rst "Inflight I/O tracking"). The back-end creates a shared memfd
// (GET_INFLIGHT_FD); the front-end keeps it and hands it back on every start and after every
// reconnect (SET_INFLIGHT_FD), so a restarted back-end finds which requests it had popped and
// not completed, and resubmits them. Layout, one region per queue, little-endian:
//
//   queue region (stride = align64(16 * queue_size + 2), as libvhost-user sizes it)
//   +0  u64 features (0)   +8 u16 version (1; 0 = fresh)   +10 u16 desc_num
//   +12 u16 last_batch_head   +14 u16 used_idx   +16 desc[desc_num] of 16 bytes:
//        +0 u8 inflight  +1 u8 pad[5]  +6 u16 next  +8 u64 counter (fetch order)
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { closeFd, memfdCreate, mmap, munmap, pageSize } from '../native/index.js';
import type { InflightLog } from '../virtio/split-ring.js';
import type { InflightDesc } from './messages.js';

const HEADER = 16;
const DESC = 16;
// The header's fields as 16-bit word indices (byte offset / 2), from the layout above.
const W_VERSION = 8 / 2, W_DESC_NUM = 10 / 2, W_LAST_BATCH_HEAD = 12 / 2, W_USED_IDX = 14 / 2;
const VERSION = 1;
const TWO32 = 0x1_0000_0000;

/** Bytes of one queue's region (libvhost-user's stride, so regions are interchangeable). */
export function inflightQueueStride(queueSize: number): number {
  return Math.ceil((DESC * queueSize + 2) / 64) * 64;
}

function inflightErr(what: string, value: unknown): ZbdError {
  return new ZbdError('EPROTO', `inflight region: ${what}`, value);
}

/** One queue's part of the shared region, used by its split ring at pop, publish and start. */
export class InflightQueue implements InflightLog {
  readonly index: number;
  // Each field is written with one store of its width (typed-array elements; a DataView's are
  // byte stores until optimized): a back-end killed between two halves would leave the front-end
  // a torn used_idx or next. Byte offsets are from the layout above.
  private readonly b: Uint8Array;
  private readonly w16: Uint16Array;
  private readonly w32: Uint32Array;
  private readonly log: Logger;
  /** Fetch counter for the next popped head (free-running, < 2^53). */
  private counter = 0;

  /** The queue's region is `stride` bytes at `byteOffset` (a multiple of 64) of `mapping`. */
  constructor(index: number, mapping: ArrayBuffer, byteOffset: number, stride: number, log: Logger) {
    this.index = index;
    this.b = new Uint8Array(mapping, byteOffset, stride);
    this.w16 = new Uint16Array(mapping, byteOffset, stride / 2);
    this.w32 = new Uint32Array(mapping, byteOffset, stride / 4);
    this.log = log;
  }

  get descNum(): number { return this.w16[W_DESC_NUM]; }
  setDescNum(n: number): void { this.w16[W_DESC_NUM] = n; }
  get version(): number { return this.w16[W_VERSION]; }
  get usedIdx(): number { return this.w16[W_USED_IDX]; }
  get lastBatchHead(): number { return this.w16[W_LAST_BATCH_HEAD]; }
  isInflight(head: number): boolean { return this.b[HEADER + DESC * head] === 1; }
  private setInflight(head: number, on: boolean): void { this.b[HEADER + DESC * head] = on ? 1 : 0; }
  counterOf(head: number): number {
    const w = (HEADER + DESC * head + 8) / 4;
    return this.w32[w + 1] * TWO32 + this.w32[w];
  }
  private nextOf(head: number): number { return this.w16[(HEADER + DESC * head + 6) / 2]; }
  private setNext(head: number, next: number): void { this.w16[(HEADER + DESC * head + 6) / 2] = next; }

  popped(head: number): void {
    const w = (HEADER + DESC * head + 8) / 4;
    const c = this.counter++;
    this.w32[w] = c >>> 0;
    this.w32[w + 1] = Math.floor(c / TWO32);
    this.setInflight(head, true);
  }

  beforePublish(heads: Uint16Array, count: number): void {
    // The batch becomes a list from last_batch_head through `next`; its length is
    // used.idx - used_idx, so it needs no terminator.
    let prev = this.lastBatchHead;
    for (let i = 0; i < count; i++) {
      const h = heads[i];
      this.setNext(h, prev);
      prev = h;
    }
    this.w16[W_LAST_BATCH_HEAD] = prev;
  }

  afterPublish(heads: Uint16Array, count: number, usedIdx: number): void {
    for (let i = 0; i < count; i++) this.setInflight(heads[i], false);
    this.w16[W_USED_IDX] = usedIdx;
  }

  /**
   * Ring start: a fresh region is initialised; otherwise the last batch is settled against
   * used.idx (a crash between publishing used.idx and clearing the batch) and the heads still
   * in flight are returned oldest first, to be resubmitted.
   */
  recover(usedIdx: number, ringSize: number): number[] {
    if (ringSize > this.descNum) {
      throw inflightErr(`queue ${this.index} size ${ringSize} exceeds the region's ${this.descNum} entries`, ringSize);
    }
    if (this.version === 0) {
      this.w32[0] = this.w32[1] = 0;
      this.w16[W_VERSION] = VERSION;
      this.w16[W_LAST_BATCH_HEAD] = 0;
      this.w16[W_USED_IDX] = usedIdx;
      this.counter = 0;
      return [];
    }
    if (this.version !== VERSION) {
      throw inflightErr(`queue ${this.index} has version ${this.version} (expected ${VERSION})`, this.version);
    }
    let batch = (usedIdx - this.usedIdx) & 0xffff;
    if (batch !== 0) {
      if (batch > ringSize) {
        throw inflightErr(`queue ${this.index} used_idx ${this.usedIdx} is ${batch} behind used.idx ${usedIdx}`, batch);
      }
      this.log.info({ batch, usedIdx, recordedUsedIdx: this.usedIdx }, 'inflight: last batch was published; settling it');
      for (let h = this.lastBatchHead; batch > 0; batch--) {
        if (h >= ringSize) throw inflightErr(`queue ${this.index} batch list reaches head ${h}`, h);
        this.setInflight(h, false);
        h = this.nextOf(h);
      }
      this.w16[W_USED_IDX] = usedIdx;
    }
    const heads: number[] = [];
    let max = -1;
    for (let h = 0; h < this.descNum; h++) {
      if (!this.isInflight(h)) continue;
      if (h >= ringSize) {
        this.log.warn({ head: h, ringSize }, 'inflight: entry beyond the ring size ignored');
        this.setInflight(h, false);
        continue;
      }
      heads.push(h);
      max = Math.max(max, this.counterOf(h));
    }
    heads.sort((a, b) => this.counterOf(a) - this.counterOf(b));
    this.counter = max + 1;
    this.log.info({ usedIdx, inflight: heads.length }, 'inflight: region from an earlier start recovered');
    return heads;
  }
}

/** The whole shared region: its memfd (kept open, the front-end may need it again) and mapping. */
export class InflightRegion {
  readonly desc: InflightDesc;
  readonly fd: number;
  private mapping: ArrayBuffer | null;
  readonly queues: readonly InflightQueue[];

  private constructor(desc: InflightDesc, fd: number, mapping: ArrayBuffer, log: Logger) {
    this.desc = desc;
    this.fd = fd;
    this.mapping = mapping;
    const stride = inflightQueueStride(desc.queueSize);
    const queues: InflightQueue[] = [];
    for (let q = 0; q < desc.numQueues; q++) {
      queues.push(new InflightQueue(q, mapping, q * stride, stride, log.child({ queue: q })));
    }
    this.queues = queues;
  }

  /** GET_INFLIGHT_FD: a zero-filled memfd sized for `numQueues` queues of `queueSize`. */
  static create(numQueues: number, queueSize: number, log: Logger): InflightRegion {
    const desc: InflightDesc = { mmapSize: numQueues * inflightQueueStride(queueSize), mmapOffset: 0, numQueues, queueSize };
    const fd = memfdCreate('vhost-user-zbd-inflight', desc.mmapSize);
    try {
      const region = InflightRegion.map(desc, fd, log);
      // desc_num tells a later back-end how many entries each queue region holds.
      for (const q of region.queues) q.setDescNum(queueSize);
      return region;
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** SET_INFLIGHT_FD: maps the region the front-end kept (fd becomes the region's). */
  static adopt(desc: InflightDesc, fd: number, log: Logger): InflightRegion {
    const region = InflightRegion.map(desc, fd, log);
    for (const q of region.queues) q.setDescNum(desc.queueSize);
    return region;
  }

  private static map(desc: InflightDesc, fd: number, log: Logger): InflightRegion {
    const need = desc.numQueues * inflightQueueStride(desc.queueSize);
    if (desc.mmapSize < need) {
      throw inflightErr(`mmap_size ${desc.mmapSize} < ${need} for ${desc.numQueues} queues of ${desc.queueSize}`, desc.mmapSize);
    }
    if (desc.mmapOffset % pageSize() !== 0) {
      throw inflightErr(`mmap_offset ${desc.mmapOffset} is not page-aligned`, desc.mmapOffset);
    }
    let mapping: ArrayBuffer;
    try {
      mapping = mmap(fd, desc.mmapOffset, desc.mmapSize, true);
    } catch (err) {
      throw new ZbdError('EPROTO', `inflight region: cannot map ${desc.mmapSize} bytes at offset ` +
        `${desc.mmapOffset}: ${(err as Error).message}`, desc, { cause: err });
    }
    return new InflightRegion(desc, fd, mapping, log);
  }

  /** Unmaps and closes (queues must no longer use it). */
  close(): void {
    if (this.mapping) munmap(this.mapping);
    this.mapping = null;
    closeFd(this.fd);
  }
}
