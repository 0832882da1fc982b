// Driver (guest) side of a split virtqueue in test guest memory: places descriptor chains,
// publishes them, kicks, and collects used entries. Also exposes raw descriptor/ring writes
// so tests can build hostile rings.
import { closeFd, readCounter, writeCounter } from '../../src/native/index.js';
import {
  availRingBytes, descTableBytes, usedRingBytes, VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
} from '../../src/virtio/split-ring.js';
import type { GuestMemoryImage } from './guest-memory-image.js';

export interface Buf {
  gpa: number;
  len: number;
  /** Device-writable. */
  write?: boolean;
}

export interface UsedElem { id: number; len: number }

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
  availIdx = 0;
  lastUsed = 0;
  private free: number[] = [];
  private chains = new Map<number, number[]>();

  constructor(mem: GuestMemoryImage, index: number, size: number) {
    this.mem = mem;
    this.index = index;
    this.size = size;
    this.descGpa = mem.alloc(descTableBytes(size), 16);
    this.availGpa = mem.alloc(availRingBytes(size), 2);
    this.usedGpa = mem.alloc(usedRingBytes(size), 4);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  get addrs(): { desc: number; avail: number; used: number } {
    return { desc: this.mem.gpaToUva(this.descGpa), avail: this.mem.gpaToUva(this.availGpa),
      used: this.mem.gpaToUva(this.usedGpa) };
  }

  get freeCount(): number { return this.free.length; }

  writeDesc(i: number, addr: number | bigint, len: number, flags: number, next: number, table = this.descGpa): void {
    const { dv, off } = this.mem.at(table + 16 * i);
    dv.setBigUint64(off, BigInt(addr), true);
    dv.setUint32(off + 8, len >>> 0, true);
    dv.setUint16(off + 12, flags, true);
    dv.setUint16(off + 14, next, true);
  }

  /** Puts head into the avail ring and publishes the new avail.idx. */
  publish(head: number): void {
    const { dv, off } = this.mem.at(this.availGpa);
    dv.setUint16(off + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    dv.setUint16(off + 2, this.availIdx, true);
  }

  /** Raw avail.idx write (hostile tests). */
  setAvailIdx(v: number): void {
    const { dv, off } = this.mem.at(this.availGpa);
    this.availIdx = v & 0xffff;
    dv.setUint16(off + 2, this.availIdx, true);
  }

  setAvailFlags(flags: number): void {
    const { dv, off } = this.mem.at(this.availGpa);
    dv.setUint16(off, flags, true);
  }

  suppressInterrupts(on: boolean): void { this.setAvailFlags(on ? VRING_AVAIL_F_NO_INTERRUPT : 0); }

  /** EVENT_IDX: used_event lives after the avail ring entries. */
  setUsedEvent(v: number): void {
    const { dv, off } = this.mem.at(this.availGpa);
    dv.setUint16(off + 4 + 2 * this.size, v & 0xffff, true);
  }

  /** EVENT_IDX: avail_event the device publishes after the used ring entries. */
  get availEvent(): number {
    const { dv, off } = this.mem.at(this.usedGpa);
    return dv.getUint16(off + 4 + 8 * this.size, true);
  }

  get usedIdx(): number {
    const { dv, off } = this.mem.at(this.usedGpa);
    return dv.getUint16(off + 2, true);
  }

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
    const { dv, off } = this.mem.at(this.usedGpa);
    const idx = dv.getUint16(off + 2, true);
    while (this.lastUsed !== idx) {
      const e = off + 4 + 8 * (this.lastUsed % this.size);
      const id = dv.getUint32(e, true);
      out.push({ id, len: dv.getUint32(e + 4, true) });
      const ds = this.chains.get(id);
      if (ds) { this.free.push(...ds); this.chains.delete(id); }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Waits (polling, the back-end runs on this event loop) until `count` used entries arrived. */
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
