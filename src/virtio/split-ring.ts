// Split virtqueue (VIRTIO 1.x §2.7, spec digest §1.8) over guest memory shared with a running
// guest. The guest writes avail/desc while we read, so every index access is ordered with a
// barrier (native/index.ts), every index and event word is one 16-bit access (ring-layout.ts),
// and every guest-supplied index, address and length is checked before use.
// Malformed chains come back with `error` set; only guest bugs that make the ring itself
// unusable (avail idx jump, bad or duplicate head) stop the queue.
import os from 'node:os';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { memoryBarrier, readBarrier, writeBarrier } from '../native/index.js';
import { PooledChain } from './descriptor-chain.js';
import type { DescChain, VirtQueueHandle } from './device.js';
import type { GuestMemory } from './guest-memory.js';
import {
  type AreaAt, AVAIL_FLAGS, AVAIL_IDX, AVAIL_RING, availEventWord, availRingBytes, descTableBytes, USED_ELEM, USED_FLAGS,
  USED_IDX, usedEventWord, usedRingBytes, ringWords,
} from './ring-layout.js';

export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const VRING_USED_F_NO_NOTIFY = 1;
/** Largest queue size the split ring format allows. */
export const MAX_QUEUE_SIZE = 32768;
/** Largest indirect table accepted (QEMU and libvhost-user use the same VIRTQUEUE_MAX_SIZE). */
export const MAX_INDIRECT_DESCS = 1024;
/** used.len is a u32: a chain longer than this cannot be described back to the guest. */
export const DEFAULT_MAX_CHAIN_BYTES = 0xffff_ffff;

const TWO32 = 0x1_0000_0000;
/** High word limit for an le64 below 2^53. */
const HI_LIMIT = 0x200000;

/** Ring words are typed-array elements, in host byte order; virtio 1.x rings are little-endian. */
export function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') {
    throw new ZbdError('EARG', `host is ${os.endianness()}; vhost-user shared rings need a little-endian host`,
      os.endianness());
  }
}

/** vring_need_event: true iff `event` lies in [old, new) modulo 2^16. */
export function vringNeedEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

export interface SplitRingAddrs {
  /** Front-end user virtual addresses (SET_VRING_ADDR). */
  desc: number;
  avail: number;
  used: number;
}

export interface SplitRingStats {
  popped: number;
  pushed: number;
  /** Chains returned with `error` set. */
  malformed: number;
  /** Call fd signalled. */
  notified: number;
  /** notify() found the guest did not want an interrupt (EVENT_IDX or NO_INTERRUPT). */
  suppressed: number;
}

/** Where used-buffer notifications go (the transport's call fd, which it alone owns). */
export interface CallSignal {
  /** Interrupts the guest; false when there is no call fd or the write failed. */
  signal(): boolean;
}

/**
 * Inflight tracking (vhost-user INFLIGHT_SHMFD) woven into pop and publish, in the order the
 * protocol requires, so a restarted back-end can resubmit what was popped and not completed.
 */
export interface InflightLog {
  /** A head was fetched from the avail ring: mark it in flight with the next fetch counter. */
  popped(head: number): void;
  /** These heads' used entries are written; used.idx is about to publish them as one batch. */
  beforePublish(heads: Uint16Array, count: number): void;
  /** used.idx now is `usedIdx`: the batch is no longer in flight. */
  afterPublish(heads: Uint16Array, count: number, usedIdx: number): void;
  /** Ring start: settles the last batch against used.idx; heads to resubmit, oldest first. */
  recover(usedIdx: number, ringSize: number): number[];
}

export interface SplitRingOptions {
  index: number;
  size: number;
  /** Bound to this queue (a child logger carrying `queue`): lines here do not repeat the key. */
  log: Logger;
  maxChainBytes?: number;
  call?: CallSignal;
  /** Called once when a guest bug stops the queue (the connection signals the err fd). */
  onBroken?: (ring: SplitRing, reason: string) => void;
}

const EMPTY_DV: DataView = new DataView(new ArrayBuffer(0));
const EMPTY_U16 = new Uint16Array(0);
const EMPTY_U32 = new Uint32Array(0);
/** Malformed-chain log lines: the first few, then one in this many (a hostile guest must not flood logs). */
const LOG_EVERY = 1024;

export class SplitRing implements VirtQueueHandle {
  readonly index: number;
  readonly size: number;
  private readonly mask: number;
  private readonly log: Logger;
  private readonly maxChainBytes: number;
  private readonly onBroken?: (ring: SplitRing, reason: string) => void;
  private readonly call: CallSignal | undefined;

  /** Next avail ring slot to consume (free-running u16). */
  lastAvailIdx = 0;
  /** Our copy of used.idx including unpublished entries (free-running u16). */
  usedIdx = 0;
  /** VIRTIO_RING_F_EVENT_IDX negotiated. */
  eventIdx = false;
  /** Ring may be popped (started and enabled). Pushes work regardless so in-flight requests can finish. */
  active = false;
  /** Non-null once a guest bug stopped the queue. */
  broken: string | null = null;
  /** Inflight tracking for the next start (null: none). */
  inflight: InflightLog | null = null;
  /** Kicks muted while the ring is busy-polled (muteKicks). */
  private kicksMuted = false;
  readonly stats: SplitRingStats = { popped: 0, pushed: 0, malformed: 0, notified: 0, suppressed: 0 };

  private memory: GuestMemory | null = null;
  private descDv: DataView = EMPTY_DV;
  private descOff = 0;
  private avail: Uint16Array = EMPTY_U16;
  private used: Uint16Array = EMPTY_U16;
  private usedElems: Uint32Array = EMPTY_U32;
  /** Word indices of used_event (avail area) and avail_event (used area). */
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  private unpublished = 0;
  private signalledUsed = 0;
  private signalledValid = false;
  private inFlightCount = 0;
  private epoch = 0;
  private readonly pool: PooledChain[];
  // Indirect tables that straddle two mappings are copied here (rare).
  private readonly indirectBuf = new Uint8Array(16 * MAX_INDIRECT_DESCS);
  private readonly indirectDv: DataView = new DataView(this.indirectBuf.buffer);
  private readonly scratchViews: Uint8Array[] = [];
  private idleWaiters: Array<() => void> = [];
  /** Heads pushed and not yet published (the batch the inflight log links), and their count. */
  private readonly batch: Uint16Array;
  /** Heads recovered from the inflight log at start, served before the avail ring. */
  private resubmit: number[] = [];

  constructor(opts: SplitRingOptions) {
    assertLittleEndian();
    const { size } = opts;
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new ZbdError('EPROTO', `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`, size);
    }
    this.index = opts.index;
    this.size = size;
    this.mask = size - 1;
    this.log = opts.log;
    this.maxChainBytes = opts.maxChainBytes ?? DEFAULT_MAX_CHAIN_BYTES;
    this.onBroken = opts.onBroken;
    this.call = opts.call;
    this.batch = new Uint16Array(size);
    this.usedEventAt = usedEventWord(size);
    this.availEventAt = availEventWord(size);
    this.pool = new Array<PooledChain>(size);
    for (let i = 0; i < size; i++) this.pool[i] = new PooledChain(this, i);
  }

  /** Requests popped and not yet pushed. */
  get inFlight(): number { return this.inFlightCount; }
  get attached(): boolean { return this.memory !== null; }

  /**
   * Resolves ring addresses through `memory` (again after every memory table change).
   * Returns an error string when an area is not inside one mapping; the ring is then detached.
   */
  attach(memory: GuestMemory, addrs: SplitRingAddrs): string | null {
    const q = this.size;
    const areas: Array<[string, number, number]> = [
      ['descriptor table', addrs.desc, descTableBytes(q)],
      ['avail ring', addrs.avail, availRingBytes(q)],
      ['used ring', addrs.used, usedRingBytes(q)],
    ];
    const found: AreaAt[] = [];
    for (const [name, addr, len] of areas) {
      if (!memory.locateUva(addr, len)) {
        this.detach();
        return `${name} at 0x${addr.toString(16)} (${len} bytes) is not inside one guest memory region`;
      }
      found.push({ dv: memory.hitView, off: memory.hitOffset });
    }
    try {
      ({ avail: this.avail, used: this.used, usedElems: this.usedElems } = ringWords(found[1], found[2], q, addrs));
    } catch (err) {
      if (!(err instanceof ZbdError)) throw err;
      this.detach();
      return err.reason;
    }
    ({ dv: this.descDv, off: this.descOff } = found[0]);
    this.memory = memory;
    return null;
  }

  /** Forget ring memory (about to be unmapped). Later pushes are dropped, pops return null. */
  detach(): void {
    this.memory = null;
    this.descDv = EMPTY_DV;
    this.avail = this.used = EMPTY_U16;
    this.usedElems = EMPTY_U32;
  }

  /**
   * (Re)start at `base` (SET_VRING_BASE): used.idx is taken from the ring, as after a restart
   * the guest's used ring is the truth for what completed. With an inflight log the requests
   * popped and not completed before a crash are resubmitted first, and the avail ring is
   * resumed after them (base is then what the front-end restored: the used index).
   */
  start(base: number): void {
    this.epoch++;
    // A chain still in flight here means the device's drain was not complete (a device bug):
    // leave that object to the device (its push is dropped) and pool a fresh one.
    for (let i = 0; i < this.size; i++) {
      if (this.pool[i].inFlight) this.pool[i] = new PooledChain(this, i);
    }
    this.inFlightCount = 0;
    this.lastAvailIdx = base & 0xffff;
    this.usedIdx = this.memory ? this.used[USED_IDX] : 0;
    this.unpublished = 0;
    this.signalledValid = false;
    this.broken = null;
    this.resubmit = [];
    // A ring (re)starts with kicks on: a poller muted them, if at all, for the run that ended.
    this.kicksMuted = false;
    if (this.memory && !this.eventIdx) this.used[USED_FLAGS] = 0;
    if (this.inflight && this.memory) {
      const heads = this.inflight.recover(this.usedIdx, this.size);
      const next = (this.usedIdx + heads.length) & 0xffff;
      if (heads.length > 0 || next !== this.lastAvailIdx) {
        this.log.info({ resubmit: heads.length, base: this.lastAvailIdx, usedIdx: this.usedIdx, next },
          'inflight: resuming after the requests in flight at the last stop');
      }
      this.lastAvailIdx = next;
      this.resubmit = heads.reverse();
    }
  }

  private fail(reason: string): void {
    if (this.broken !== null) return;
    this.broken = reason;
    this.log.error({ reason }, 'guest bug: queue stopped');
    this.onBroken?.(this, reason);
  }

  private chainError(c: PooledChain, reason: string): void {
    c.error = reason;
    const n = ++this.stats.malformed;
    if (n <= 16 || n % LOG_EVERY === 0) {
      this.log.warn({ head: c.head, reason, malformed: n }, 'malformed descriptor chain');
    }
  }

  /** Chains are waiting to be popped (a poller's cheap look: one read of avail.idx). */
  hasAvail(): boolean {
    if (!this.active || this.broken !== null || this.memory === null) return false;
    return this.resubmit.length > 0 || this.avail[AVAIL_IDX] !== this.lastAvailIdx;
  }

  /**
   * Mutes (true) or unmutes guest kicks while the ring is polled. Muted, pop() does not ask
   * for a kick when it empties the ring (EVENT_IDX: avail_event is left behind) and used.flags
   * says NO_NOTIFY (without EVENT_IDX). Unmuting asks for the next kick, then looks once more:
   * true when chains were added that the guest did not kick for.
   */
  muteKicks(on: boolean): boolean {
    if (this.kicksMuted === on) return false;
    this.kicksMuted = on;
    if (this.memory === null) return false;
    if (!this.eventIdx) this.used[USED_FLAGS] = on ? VRING_USED_F_NO_NOTIFY : 0;
    if (on) return false;
    if (this.eventIdx) this.used[this.availEventAt] = this.lastAvailIdx;
    // The kick request must be visible before we read avail.idx again (store→load).
    memoryBarrier();
    return this.hasAvail();
  }

  pop(): DescChain | null {
    if (!this.active || this.broken !== null || this.memory === null) return null;
    if (this.resubmit.length > 0) return this.popResubmitted(this.resubmit.pop()!, this.memory);
    const last = this.lastAvailIdx;
    let availIdx = this.avail[AVAIL_IDX];
    if (availIdx === last) {
      if (!this.eventIdx || this.kicksMuted) return null;
      // Ask for a kick when the guest adds entry `last`, then look again: the guest may have
      // added it after our read but before it could see the new avail_event (lost wakeup).
      this.used[this.availEventAt] = last;
      memoryBarrier();
      availIdx = this.avail[AVAIL_IDX];
      if (availIdx === last) return null;
    }
    const pending = (availIdx - last) & 0xffff;
    if (pending > this.size) {
      this.fail(`avail idx jumped from ${last} to ${availIdx} (queue size ${this.size})`);
      return null;
    }
    // Ring entries and descriptors are read only after avail.idx.
    readBarrier();
    const head = this.avail[AVAIL_RING + (last & this.mask)];
    if (head >= this.size) {
      this.fail(`avail ring entry ${last} holds head ${head} >= queue size ${this.size}`);
      return null;
    }
    const c = this.pool[head];
    if (c.inFlight) {
      this.fail(`head ${head} made available again while still in flight`);
      return null;
    }
    this.lastAvailIdx = (last + 1) & 0xffff;
    this.inflight?.popped(head);
    return this.take(c, this.memory);
  }

  /** A head the inflight log says was popped before a restart (still marked, same counter). */
  private popResubmitted(head: number, mem: GuestMemory): DescChain | null {
    const c = this.pool[head];
    if (c.inFlight) {
      this.fail(`resubmitted head ${head} is already in flight`);
      return null;
    }
    return this.take(c, mem);
  }

  private take(c: PooledChain, mem: GuestMemory): PooledChain {
    c.reset();
    c.inFlight = true;
    c.epoch = this.epoch;
    this.inFlightCount++;
    this.stats.popped++;
    this.walk(c, mem);
    return c;
  }

  /** Fills `c` from the descriptor chain at c.head. Sets c.error on the first fault. */
  private walk(c: PooledChain, mem: GuestMemory): void {
    let dv = this.descDv;
    let base = this.descOff;
    let tableLen = this.size;
    let i = c.head;
    let count = 0;
    let indirect = false;
    let seenWrite = false;
    let total = 0;
    for (;;) {
      if (++count > tableLen) {
        return this.chainError(c, indirect ? `indirect chain loops or exceeds its ${tableLen}-entry table`
          : `chain loops or exceeds queue size ${this.size}`);
      }
      const o = base + 16 * i;
      const lo = dv.getUint32(o, true);
      const hi = dv.getUint32(o + 4, true);
      const len = dv.getUint32(o + 8, true);
      const flags = dv.getUint16(o + 12, true);
      const next = dv.getUint16(o + 14, true);
      if (hi >= HI_LIMIT) {
        return this.chainError(c, `descriptor ${i} address 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is beyond 2^53`);
      }
      const addr = hi * TWO32 + lo;
      if ((flags & VRING_DESC_F_INDIRECT) !== 0) {
        if (indirect) return this.chainError(c, `nested indirect descriptor ${i}`);
        if ((flags & VRING_DESC_F_NEXT) !== 0) return this.chainError(c, `descriptor ${i} has both INDIRECT and NEXT`);
        if (len === 0 || len % 16 !== 0) {
          return this.chainError(c, `indirect table length ${len} is not a non-zero multiple of 16`);
        }
        const n = len / 16;
        if (n > MAX_INDIRECT_DESCS) return this.chainError(c, `indirect table has ${n} entries (max ${MAX_INDIRECT_DESCS})`);
        if (mem.locateGpa(addr, len)) {
          dv = mem.hitView;
          base = mem.hitOffset;
        } else {
          // Not contiguous in one mapping (or not in memory at all): gather it into a copy.
          const views = this.scratchViews;
          views.length = 0;
          if (!mem.gpaToViews(addr, len, views)) {
            views.length = 0;
            return this.chainError(c, `indirect table 0x${addr.toString(16)} len ${len} is outside guest memory`);
          }
          let at = 0;
          for (const v of views) { this.indirectBuf.set(v, at); at += v.length; }
          views.length = 0;
          dv = this.indirectDv;
          base = 0;
        }
        indirect = true;
        tableLen = n;
        count = 0;
        i = 0;
        continue;
      }
      const write = (flags & VRING_DESC_F_WRITE) !== 0;
      if (write) seenWrite = true;
      else if (seenWrite) return this.chainError(c, `device-readable descriptor ${i} after a device-writable one`);
      if (len > this.maxChainBytes - total) {
        return this.chainError(c, `chain longer than ${this.maxChainBytes} bytes`);
      }
      total += len;
      if (len > 0) {
        const out = write ? c.writable : c.readable;
        const before = out.length;
        if (!mem.gpaToViews(addr, len, out)) {
          out.length = before;
          return this.chainError(c, `buffer 0x${addr.toString(16)} len ${len} is outside guest memory`);
        }
        if (write) c.writableBytes += len; else c.readableBytes += len;
      }
      if ((flags & VRING_DESC_F_NEXT) === 0) return;
      if (next >= tableLen) return this.chainError(c, `descriptor ${i} next ${next} >= table size ${tableLen}`);
      i = next;
    }
  }

  push(chain: DescChain, writtenBytes: number): void {
    const c = chain as PooledChain;
    if (c.owner !== this) {
      throw new ZbdError('EARG', `queue ${this.index}: push of a chain that does not belong to it`, c.head);
    }
    if (!c.inFlight) throw new ZbdError('EARG', `queue ${this.index}: chain ${c.head} pushed twice`, c.head);
    c.inFlight = false;
    if (c.epoch !== this.epoch) {
      // Popped before the ring restarted: the guest's ring state was set anew since.
      c.reset();
      this.log.warn({ head: c.head }, 'completion of a request popped before the ring restarted dropped');
      return;
    }
    this.inFlightCount--;
    const current = this.memory !== null;
    // The device must not claim more than the writable part (spec: used.len ≤ writable).
    const len = writtenBytes > 0 ? Math.min(Math.floor(writtenBytes), c.writableBytes) : 0;
    // Drop the views now: the device may not use them after push, and they pin memory.
    c.reset();
    if (current) {
      const e = USED_ELEM + 2 * (this.usedIdx & this.mask);
      this.usedElems[e] = c.head;
      this.usedElems[e + 1] = len;
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.batch[this.unpublished] = c.head;
      this.unpublished++;
      this.stats.pushed++;
    }
    if (this.inFlightCount === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  notify(): void {
    if (this.unpublished === 0 || this.memory === null) return;
    const n = this.unpublished;
    this.unpublished = 0;
    this.inflight?.beforePublish(this.batch, n);
    // Used elements must be visible before the index that publishes them.
    writeBarrier();
    this.used[USED_IDX] = this.usedIdx;
    this.inflight?.afterPublish(this.batch, n, this.usedIdx);
    // used.idx must be visible before we read the guest's suppression state (store→load).
    memoryBarrier();
    let need: boolean;
    if (this.eventIdx) {
      const event = this.avail[this.usedEventAt];
      need = !this.signalledValid || vringNeedEvent(event, this.usedIdx, this.signalledUsed);
      this.signalledUsed = this.usedIdx;
      this.signalledValid = true;
    } else {
      need = (this.avail[AVAIL_FLAGS] & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    }
    if (!need) {
      this.stats.suppressed++;
      return;
    }
    this.signal();
  }

  /** Signals the call fd unconditionally (after a restart, or for tests). */
  signal(): void {
    if (this.call?.signal()) this.stats.notified++;
  }

  /** Publishes pushed entries without the notification decision (ring being stopped). */
  flush(): void {
    if (this.unpublished === 0 || this.memory === null) return;
    this.notify();
  }

  /** Resolves when nothing popped from this ring is still in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
