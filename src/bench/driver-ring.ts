// The driver (guest) half of a split virtqueue, written the way Linux's virtio_ring drives it:
// place chains, publish avail.idx once per batch, kick only when the device's avail_event
// asks for it (EVENT_IDX), consume used entries and re-arm used_event so the device signals
// the next completion. Only DataView reads and writes on the shared mapping: no allocation.
import { memoryBarrier } from '../native/index.js';
import {
  availRingBytes, descTableBytes, usedRingBytes, vringNeedEvent, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
} from '../virtio/split-ring.js';
import type { BenchMemory } from './guest-memory.js';

export { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE };

export class DriverRing {
  readonly index: number;
  readonly size: number;
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
  private readonly mask: number;
  private readonly dv: DataView;
  /** Next avail slot to fill (free-running u16); published by publish(). */
  private availIdx = 0;
  private publishedIdx = 0;
  /** Next used entry to consume (free-running u16). */
  lastUsed = 0;
  /** EVENT_IDX negotiated: honour avail_event and use used_event. */
  eventIdx = true;
  kicks = 0;

  constructor(mem: BenchMemory, index: number, size: number) {
    this.index = index;
    this.size = size;
    this.mask = size - 1;
    this.dv = mem.dv;
    // Page-aligned areas, as QEMU lays them out; each fits the spec's alignment rules.
    this.descGpa = mem.alloc(descTableBytes(size), 4096);
    this.availGpa = mem.alloc(availRingBytes(size) + 2, 4096);
    this.usedGpa = mem.alloc(usedRingBytes(size) + 2, 4096);
  }

  writeDesc(i: number, gpa: number, len: number, flags: number, next: number): void {
    const o = this.descGpa + 16 * i;
    const dv = this.dv;
    dv.setUint32(o, gpa % 0x1_0000_0000, true);
    dv.setUint32(o + 4, Math.floor(gpa / 0x1_0000_0000), true);
    dv.setUint32(o + 8, len, true);
    dv.setUint16(o + 12, flags, true);
    dv.setUint16(o + 14, next, true);
  }

  /** Adds a chain head to the avail ring (invisible to the device until publish()). */
  place(head: number): void {
    this.dv.setUint16(this.availGpa + 4 + 2 * (this.availIdx & this.mask), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  get unpublished(): number { return (this.availIdx - this.publishedIdx) & 0xffff; }

  /** Makes placed chains visible; true when the device wants a kick for them. */
  publish(): boolean {
    const old = this.publishedIdx;
    const now = this.availIdx;
    if (old === now) return false;
    // Descriptors and ring entries before the index that publishes them.
    memoryBarrier();
    this.dv.setUint16(this.availGpa + 2, now, true);
    this.publishedIdx = now;
    if (!this.eventIdx) return (this.dv.getUint16(this.usedGpa, true) & 1) === 0;
    // avail.idx must be visible before we read the device's avail_event (store→load).
    memoryBarrier();
    const event = this.dv.getUint16(this.usedGpa + 4 + 8 * this.size, true);
    return vringNeedEvent(event, now, old);
  }

  /** The device's used.idx. */
  usedIdx(): number { return this.dv.getUint16(this.usedGpa + 2, true); }

  /** id of used entry k (free-running index). */
  usedId(k: number): number { return this.dv.getUint32(this.usedGpa + 4 + 8 * (k & this.mask), true); }

  /** Ask for a call when the device adds used entry `idx` (EVENT_IDX used_event). */
  armUsedEvent(idx: number): void {
    this.dv.setUint16(this.availGpa + 4 + 2 * this.size, idx, true);
  }

  /** Start from base (SET_VRING_BASE), as after a fresh ring: both sides at `base`. */
  reset(base = 0): void {
    this.availIdx = this.publishedIdx = this.lastUsed = base & 0xffff;
    this.dv.setUint16(this.availGpa, 0, true);
    this.dv.setUint16(this.availGpa + 2, base, true);
    this.dv.setUint16(this.usedGpa, 0, true);
    this.dv.setUint16(this.usedGpa + 2, base, true);
    this.armUsedEvent(base);
  }
}
