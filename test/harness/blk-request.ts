// virtio-blk request framing for the test front-end (VIRTIO 1.3 §5.2.6): a 16-byte out header
// (le32 type, le32 reserved, le64 sector), data buffers, and a device-writable tail whose last
// byte is the status (ZONE_APPEND's tail is 9 bytes: le64 sector, then status). The numbers
// are written out here on purpose so tests do not share constants with the device model.
import type { DriverQueue } from './driver-queue.js';
import type { GuestMemoryImage } from './guest-memory-image.js';

export const BLK_T_IN = 0;
export const BLK_T_OUT = 1;
export const BLK_T_FLUSH = 4;
export const BLK_T_GET_ID = 8;
export const BLK_T_ZONE_APPEND = 15;
export const BLK_T_ZONE_REPORT = 16;
export const BLK_T_ZONE_RESET = 24;
export const BLK_S_OK = 0;
/** Status byte value before the device writes it, so a missing write is visible. */
export const STATUS_UNSET = 0xff;

export interface BlkRequest {
  type: number;
  sector?: number;
  /** Driver → device data (OUT, APPEND), one descriptor each. */
  out?: Uint8Array[];
  /** Device → driver data buffer sizes (IN, GET_ID, ZONE_REPORT), one descriptor each. */
  inLens?: number[];
  /** Bytes of the device-writable tail including the status byte (default 1; 9 for APPEND). */
  tailLen?: number;
}

/**
 * A request slot with its own guest buffers, reusable for many submissions (a benchmark
 * must not exhaust the bump allocator). Buffers are sized at construction.
 */
export class BlkRequestSlot {
  readonly mem: GuestMemoryImage;
  readonly hdr: number;
  readonly data: number;
  readonly dataCapacity: number;
  readonly tail: number;
  private inGpas: Array<{ gpa: number; len: number }> = [];
  private tailLen = 1;

  constructor(mem: GuestMemoryImage, dataCapacity: number, maxTail = 16) {
    this.mem = mem;
    this.hdr = mem.alloc(16, 16);
    this.data = mem.alloc(Math.max(dataCapacity, 1), 512);
    this.dataCapacity = dataCapacity;
    this.tail = mem.alloc(maxTail, 16);
  }

  /** Writes the request into guest memory and places its chain on q (publishing it). */
  submit(q: DriverQueue, r: BlkRequest, opts: { indirect?: boolean; publish?: boolean } = {}): number {
    const h = new Uint8Array(16);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, r.type, true);
    dv.setBigUint64(8, BigInt(r.sector ?? 0), true);
    this.mem.write(this.hdr, h);
    const bufs: Array<{ gpa: number; len: number; write?: boolean }> = [{ gpa: this.hdr, len: 16 }];
    let at = this.data;
    for (const o of r.out ?? []) {
      this.mem.write(at, o);
      bufs.push({ gpa: at, len: o.length });
      at += o.length;
    }
    this.inGpas = [];
    for (const len of r.inLens ?? []) {
      bufs.push({ gpa: at, len, write: true });
      this.inGpas.push({ gpa: at, len });
      at += len;
    }
    if (at - this.data > this.dataCapacity) throw new Error(`request data ${at - this.data} > slot capacity ${this.dataCapacity}`);
    this.tailLen = r.tailLen ?? 1;
    this.mem.write(this.tail, new Uint8Array(this.tailLen).fill(STATUS_UNSET));
    bufs.push({ gpa: this.tail, len: this.tailLen, write: true });
    return q.add(bufs, opts);
  }

  /** The status byte (last byte of the tail). */
  get status(): number { return this.mem.read(this.tail + this.tailLen - 1, 1)[0]; }

  /** ZONE_APPEND: the sector the device reported (tail bytes 0..7). */
  get appendSector(): number {
    const t = this.mem.read(this.tail, 8);
    return Number(new DataView(t.buffer).getBigUint64(0, true));
  }

  /** Contents of the i-th device-writable data buffer. */
  inData(i = 0): Uint8Array {
    const b = this.inGpas[i];
    return this.mem.read(b.gpa, b.len);
  }
}
