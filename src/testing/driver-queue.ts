// The driver (guest) half of a split virtqueue, written the way Linux's virtio_ring drives it:
// place chains, publish avail.idx once per batch, kick only when the device's avail_event
// asks for it (EVENT_IDX), consume used entries and re-arm used_event so the device signals
// the next completion. Two ways in: add()/takeUsed() pick free descriptors and track chains
// (tests), and writeDesc()/place()/publishPlaced()/usedId() with descriptors the caller owns
// (the benchmark's load generator: nothing allocated per request). Index and event words are
// single 16-bit accesses through ring-layout.ts's views, as a guest's are. Raw ring writes let
// tests build hostile rings.
import { closeFd, memoryBarrier, readBarrier, readCounter, writeBarrier, writeCounter } from '../native/index.js';
import {
  AVAIL_ALIGN, AVAIL_FLAGS, AVAIL_IDX, AVAIL_RING, availEventWord, availRingBytes, DESC_ALIGN, descTableBytes,
  USED_ALIGN, USED_ELEM, USED_FLAGS, USED_IDX, usedEventWord, usedRingBytes, ringWords,
} from '../virtio/ring-layout.js';
import {
  VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, vringNeedEvent,
} from '../virtio/split-ring.js';
import type { GuestMemoryImage } from './guest-memory.js';

export { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE };

export interface Buf {
  gpa: number;
  len: number;
  /** Device-writable. */
  write?: boolean;
}

export interface UsedElem { id: number; len: number }

export interface DriverQueueOptions {
  /**
   * Alignment of the three ring areas: the spec's minimum (16, 2, 4) by default; 4096 lays
   * them out on pages, as QEMU's guests do.
   */
  pageAligned?: boolean;
}

export class DriverQueue {
  readonly index: number;
  readonly size: number;
  readonly mem: GuestMemoryImage;
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
  /** Our ends: we write the kick fd, the back-end writes the call fd. */
  kickFd = -1;
  callFd = -1;
  /** Back-end signals seen on the call fd so far. */
  calls = 0;
  /** Kicks sent by kickIfNeeded(). */
  kicks = 0;
  /** Next avail slot to fill (free-running u16). */
  availIdx = 0;
  /** Next used entry to consume (free-running u16). */
  lastUsed = 0;
  /** EVENT_IDX negotiated: publishPlaced() honours avail_event. */
  eventIdx = false;
  private publishedIdx = 0;
  // The descriptor table (a DataView and its offset) and the index areas, looked up once.
  private readonly descDv: DataView;
  private readonly descOff: number;
  private readonly avail: Uint16Array;
  private readonly used: Uint16Array;
  private readonly usedElems: Uint32Array;
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  private free: number[] = [];
  private chains = new Map<number, number[]>();

  constructor(mem: GuestMemoryImage, index: number, size: number, opts: DriverQueueOptions = {}) {
    this.mem = mem;
    this.index = index;
    this.size = size;
    const page = opts.pageAligned ? 4096 : 0;
    this.descGpa = mem.alloc(descTableBytes(size), page || DESC_ALIGN);
    this.availGpa = mem.alloc(availRingBytes(size), page || AVAIL_ALIGN);
    this.usedGpa = mem.alloc(usedRingBytes(size), page || USED_ALIGN);
    ({ dv: this.descDv, off: this.descOff } = mem.at(this.descGpa));
    ({ avail: this.avail, used: this.used, usedElems: this.usedElems } = ringWords(mem.at(this.availGpa), mem.at(this.usedGpa),
      size, { avail: this.availGpa, used: this.usedGpa }));
    this.usedEventAt = usedEventWord(size);
    this.availEventAt = availEventWord(size);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  get addrs(): { desc: number; avail: number; used: number } {
    return { desc: this.mem.gpaToUva(this.descGpa), avail: this.mem.gpaToUva(this.availGpa),
      used: this.mem.gpaToUva(this.usedGpa) };
  }

  get freeCount(): number { return this.free.length; }

  /** Starts both indexes at `base` (SET_VRING_BASE), as a fresh ring or one resumed at base. */
  reset(base = 0): void {
    this.availIdx = this.publishedIdx = this.lastUsed = base & 0xffff;
    this.avail[AVAIL_FLAGS] = 0;
    this.avail[AVAIL_IDX] = this.availIdx;
    this.used[USED_FLAGS] = 0;
    this.used[USED_IDX] = this.availIdx;
    this.setUsedEvent(this.availIdx);
  }

  /** Descriptor i of the queue's table, or of an indirect table at gpa `table`. */
  writeDesc(i: number, addr: number | bigint, len: number, flags: number, next: number, table?: number): void {
    let dv = this.descDv, o = this.descOff + 16 * i;
    if (table !== undefined) ({ dv, off: o } = this.mem.at(table + 16 * i));
    if (typeof addr === 'bigint') {
      dv.setBigUint64(o, addr, true);
    } else {
      dv.setUint32(o, addr % 0x1_0000_0000, true);
      dv.setUint32(o + 4, Math.floor(addr / 0x1_0000_0000), true);
    }
    dv.setUint32(o + 8, len >>> 0, true);
    dv.setUint16(o + 12, flags, true);
    dv.setUint16(o + 14, next, true);
  }

  /** Adds a chain head to the avail ring, invisible to the device until publishPlaced(). */
  place(head: number): void {
    this.avail[AVAIL_RING + (this.availIdx % this.size)] = head;
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  get unpublished(): number { return (this.availIdx - this.publishedIdx) & 0xffff; }

  /** Makes placed chains visible; true when the device wants a kick for them. */
  publishPlaced(): boolean {
    const old = this.publishedIdx;
    const now = this.availIdx;
    if (old === now) return false;
    // Descriptors and ring entries before the index that publishes them.
    writeBarrier();
    this.avail[AVAIL_IDX] = now;
    this.publishedIdx = now;
    // avail.idx must be visible before we read whether the device wants a kick (store→load),
    // or a device that just went to sleep could miss it (Linux: virtqueue_kick_prepare).
    memoryBarrier();
    if (!this.eventIdx) return (this.used[USED_FLAGS] & 1) === 0;
    return vringNeedEvent(this.availEvent, now, old);
  }

  /** Puts head into the avail ring and publishes the new avail.idx. */
  publish(head: number): void {
    this.place(head);
    this.publishPlaced();
  }

  /** Publishes what was placed and kicks when the device asks for it. */
  kickIfNeeded(): void {
    if (this.publishPlaced()) { this.kick(); this.kicks++; }
  }

  /** Raw avail.idx write (hostile tests). */
  setAvailIdx(v: number): void {
    this.availIdx = this.publishedIdx = v & 0xffff;
    this.avail[AVAIL_IDX] = this.availIdx;
  }

  setAvailFlags(flags: number): void { this.avail[AVAIL_FLAGS] = flags; }

  suppressInterrupts(on: boolean): void { this.setAvailFlags(on ? VRING_AVAIL_F_NO_INTERRUPT : 0); }

  /** EVENT_IDX used_event (after the avail ring entries): ask for a call when entry v is used. */
  setUsedEvent(v: number): void { this.avail[this.usedEventAt] = v; }

  /** EVENT_IDX: avail_event the device publishes after the used ring entries. */
  get availEvent(): number { return this.used[this.availEventAt]; }

  /** The device's used.idx. Read used entries only after a readBarrier() that follows this. */
  get usedIdx(): number { return this.used[USED_IDX]; }

  /** id of used entry k (free-running index). */
  usedId(k: number): number { return this.usedElems[USED_ELEM + 2 * (k % this.size)]; }

  /** len of used entry k (free-running index). */
  usedLen(k: number): number { return this.usedElems[USED_ELEM + 2 * (k % this.size) + 1]; }

  private take(): number {
    const d = this.free.pop();
    if (d === undefined) throw new Error(`queue ${this.index}: no free descriptors`);
    return d;
  }

  /**
   * Places a chain (direct, or one indirect descriptor pointing to a table in guest memory)
   * and publishes it. Returns the head index.
   */
  add(bufs: Buf[], opts: { indirect?: boolean; publish?: boolean } = {}): number {
    let head: number;
    const used: number[] = [];
    if (opts.indirect) {
      const table = this.mem.alloc(16 * bufs.length, 16);
      bufs.forEach((b, i) => this.writeDesc(i, b.gpa, b.len,
        (b.write ? VRING_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VRING_DESC_F_NEXT : 0), i + 1, table));
      head = this.take();
      used.push(head);
      this.writeDesc(head, table, 16 * bufs.length, VRING_DESC_F_INDIRECT, 0);
    } else {
      const ids = bufs.map(() => this.take());
      used.push(...ids);
      bufs.forEach((b, i) => this.writeDesc(ids[i], b.gpa, b.len,
        (b.write ? VRING_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VRING_DESC_F_NEXT : 0), ids[i + 1] ?? 0));
      head = ids[0];
    }
    this.chains.set(head, used);
    if (opts.publish !== false) this.publish(head);
    return head;
  }

  kick(): void {
    if (!writeCounter(this.kickFd, 1)) throw new Error('kick fd full');
  }

  /** Drains the call fd; returns signals received since the last call. */
  collectCalls(): number {
    if (this.callFd < 0) return 0;
    let n = 0;
    for (;;) {
      const v = readCounter(this.callFd);
      if (v <= 0) break;
      n += v;
    }
    this.calls += n;
    return n;
  }

  /** Used entries not consumed yet (frees their descriptors). */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedIdx;
    readBarrier();
    while (this.lastUsed !== idx) {
      const id = this.usedId(this.lastUsed);
      out.push({ id, len: this.usedLen(this.lastUsed) });
      const ds = this.chains.get(id);
      if (ds) { this.free.push(...ds); this.chains.delete(id); }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Waits (polling, the back-end may run on this event loop) until `count` used entries arrived. */
  async waitUsed(count: number, timeoutMs = 5000): Promise<UsedElem[]> {
    const out: UsedElem[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      out.push(...this.takeUsed());
      if (out.length >= count) return out;
      if (Date.now() > deadline) {
        throw new Error(`queue ${this.index}: ${out.length}/${count} used entries after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  closeFds(): void {
    if (this.kickFd >= 0) closeFd(this.kickFd);
    if (this.callFd >= 0) closeFd(this.callFd);
    this.kickFd = this.callFd = -1;
  }
}
