// A tiny VirtioDevice for transport tests: copies each chain's readable bytes into its
// writable part (echo) and records what it saw. Completion can be immediate, delayed, or
// held until the test releases it (to test GET_VRING_BASE waiting for in-flight requests).
import type { DescChain, VirtioDevice, VirtQueueHandle } from '../../src/virtio/device.js';

export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_RING_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_RING_F_EVENT_IDX = 1n << 29n;
export const ECHO_CONFIG_SIZE = 64;
/** Bytes [ECHO_CONFIG_WRITABLE, 64) of config space accept driver writes. */
export const ECHO_CONFIG_WRITABLE = 32;

export interface Seen {
  queue: number;
  head: number;
  readable: Uint8Array;
  readableViews: number;
  writableBytes: number;
  writableViews: number;
  error: string | null;
}

export type CompletionMode = 'immediate' | 'hold' | { delayMs: number };

export class EchoDevice implements VirtioDevice {
  readonly deviceId = 42;
  readonly deviceFeatures: bigint;
  readonly numQueues: number;
  readonly maxQueueSize: number;
  readonly config = new Uint8Array(ECHO_CONFIG_SIZE);
  mode: CompletionMode = 'immediate';
  driverFeatures: bigint | null = null;
  resets = 0;
  kicks: number[];
  readonly seen: Seen[] = [];
  private held: Array<{ q: VirtQueueHandle; c: DescChain }> = [];
  /** Readable bytes of chains not completed yet. */
  private data = new Map<DescChain, Uint8Array>();
  private inFlight: number[];
  private drainWaiters: Array<Array<() => void>>;
  drainCalls = 0;

  constructor(opts: { numQueues?: number; maxQueueSize?: number; features?: bigint } = {}) {
    this.numQueues = opts.numQueues ?? 1;
    this.maxQueueSize = opts.maxQueueSize ?? 256;
    this.deviceFeatures = opts.features ?? (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX);
    for (let i = 0; i < ECHO_CONFIG_SIZE; i++) this.config[i] = (i * 7 + 3) & 0xff;
    this.kicks = new Array<number>(this.numQueues).fill(0);
    this.inFlight = new Array<number>(this.numQueues).fill(0);
    this.drainWaiters = Array.from({ length: this.numQueues }, () => []);
  }

  readConfig(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    out.set(this.config.subarray(Math.min(offset, ECHO_CONFIG_SIZE), Math.min(offset + length, ECHO_CONFIG_SIZE)));
    return out;
  }

  writeConfig(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      if (at >= ECHO_CONFIG_WRITABLE && at < ECHO_CONFIG_SIZE) this.config[at] = data[i];
    }
  }

  setDriverFeatures(features: bigint): void { this.driverFeatures = features; }

  queueKicked(q: VirtQueueHandle): void {
    this.kicks[q.index]++;
    let pushed = false;
    for (let c = q.pop(); c !== null; c = q.pop()) {
      const readable = new Uint8Array(c.readableBytes);
      let at = 0;
      for (const v of c.readable) { readable.set(v, at); at += v.length; }
      this.seen.push({ queue: q.index, head: c.head, readable, readableViews: c.readable.length,
        writableBytes: c.writableBytes, writableViews: c.writable.length, error: c.error });
      this.inFlight[q.index]++;
      this.data.set(c, readable);
      if (this.mode === 'immediate') {
        this.complete(q, c, false);
        pushed = true;
      } else if (this.mode === 'hold') {
        this.held.push({ q, c });
      } else {
        setTimeout(() => this.complete(q, c, true), this.mode.delayMs);
      }
    }
    if (pushed) q.notify();
  }

  /** Echo readable → writable, push; returns bytes written. */
  private complete(q: VirtQueueHandle, c: DescChain, notify: boolean): void {
    let written = 0;
    if (c.error === null) {
      const src = this.data.get(c)!;
      for (const w of c.writable) {
        const n = Math.min(w.length, src.length - written);
        if (n <= 0) break;
        w.set(src.subarray(written, written + n));
        written += n;
      }
    }
    this.data.delete(c);
    q.push(c, written);
    if (notify) q.notify();
    if (--this.inFlight[q.index] === 0) for (const f of this.drainWaiters[q.index].splice(0)) f();
  }

  /** Completes the held requests (mode 'hold'), all or those whose head `which` picks. */
  release(which: (head: number) => boolean = () => true): number {
    const h = this.held.filter(({ c }) => which(c.head));
    this.held = this.held.filter((e) => !h.includes(e));
    const queues = new Set<VirtQueueHandle>();
    for (const { q, c } of h) { this.complete(q, c, false); queues.add(q); }
    for (const q of queues) q.notify();
    return h.length;
  }

  get heldCount(): number { return this.held.length; }

  drainQueue(q: number): Promise<void> {
    this.drainCalls++;
    if (this.inFlight[q] === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters[q].push(resolve));
  }

  reset(): void {
    this.resets++;
    this.driverFeatures = null;
  }
}
