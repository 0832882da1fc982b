// Descriptor chains and a queue made in plain memory, so the device model and its parser run
// without a socket, a ring or guest memory. Numbers are spelled out (VIRTIO 1.3 §5.2.6) so the
// tests do not share constants with the code under test.
import type { DescChain, VirtQueueHandle } from '../../src/virtio/device.js';

export const T = {
  IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13, APPEND: 15, REPORT: 16, OPEN: 18, CLOSE: 20, FINISH: 22, RESET: 24, RESET_ALL: 26,
};
export const S = { OK: 0, IOERR: 1, UNSUPP: 2, INVALID: 3, UNALIGNED: 4, OPEN_RESOURCE: 5, ACTIVE_RESOURCE: 6 };

export interface ChainSpec {
  type: number;
  sector?: number;
  /** Device-readable buffers after the header. */
  out?: Uint8Array[];
  /** Device-writable buffer sizes before the tail. */
  inLens?: number[];
  /** Device-writable tail bytes, status last (default 1; 0 for none). */
  tail?: number;
  /** Header split over two descriptors (8 + 8 bytes). */
  splitHeader?: boolean;
  error?: string;
  head?: number;
}

let nextHead = 0;

export function header(type: number, sector = 0): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, BigInt(sector), true);
  return h;
}

/** DISCARD / WRITE_ZEROES segments: le64 sector, le32 num_sectors, le32 flags. */
export function segments(...segs: Array<[sector: number, sectors: number, flags?: number]>): Uint8Array {
  const b = new Uint8Array(16 * segs.length);
  const dv = new DataView(b.buffer);
  segs.forEach(([sector, n, flags], i) => {
    dv.setBigUint64(i * 16, BigInt(sector), true);
    dv.setUint32(i * 16 + 8, n, true);
    dv.setUint32(i * 16 + 12, flags ?? 0, true);
  });
  return b;
}

export interface TestChain extends DescChain {
  /** The status byte (last writable byte), 0xff until the device writes it. */
  readonly status: number;
}

export function chain(spec: ChainSpec): TestChain {
  const h = header(spec.type, spec.sector ?? 0);
  const readable = spec.splitHeader ? [h.subarray(0, 8), h.subarray(8)] : [h];
  for (const o of spec.out ?? []) readable.push(o);
  const writable = (spec.inLens ?? []).map((n) => new Uint8Array(n).fill(0xee));
  const tail = spec.tail ?? 1;
  if (tail > 0) writable.push(new Uint8Array(tail).fill(0xff));
  const sum = (a: Uint8Array[]): number => a.reduce((n, b) => n + b.byteLength, 0);
  const c = {
    head: spec.head ?? (nextHead++ & 0xff),
    readable, writable, readableBytes: sum(readable), writableBytes: sum(writable), error: spec.error ?? null,
    get status(): number { const w = writable[writable.length - 1]; return w ? w[w.length - 1] : -1; },
  };
  return c;
}

/** A queue the test fills with chains; it records what the device pushes. */
export class TestQueue implements VirtQueueHandle {
  readonly index = 0;
  readonly size = 256;
  readonly pending: DescChain[] = [];
  readonly used: Array<{ chain: DescChain; written: number }> = [];
  notifies = 0;
  private waiters: Array<() => void> = [];

  pop(): DescChain | null { return this.pending.shift() ?? null; }
  push(c: DescChain, written: number): void {
    this.used.push({ chain: c, written });
    for (const w of this.waiters.splice(0)) w();
  }
  notify(): void { this.notifies++; }

  /** Waits until n chains in total have been pushed. */
  async waitUsed(n: number): Promise<void> {
    while (this.used.length < n) await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 20); });
  }
}
