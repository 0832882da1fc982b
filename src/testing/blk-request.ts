// The driver side of virtio-blk (VIRTIO 1.3 §5.2.6), laid out as Linux virtio_blk does: a
// 16-byte out header (le32 type, le32 reserved, le64 sector), data buffers, and a
// device-writable tail whose last byte is the status (Linux gives ZONE_APPEND a 16-byte tail:
// le64 sector, then the status). The numbers are written out here on purpose, so tests and
// the benchmark do not share constants with the device model they check.
import type { Buf, DriverQueue, UsedElem } from './driver-queue.js';
import type { GuestMemoryImage } from './guest-memory.js';

export const REQ = {
  IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, ZONE_APPEND: 15, ZONE_REPORT: 16, ZONE_OPEN: 18, ZONE_CLOSE: 20,
  ZONE_FINISH: 22, ZONE_RESET: 24, ZONE_RESET_ALL: 26,
} as const;
export const STATUS = { OK: 0, IOERR: 1, UNSUPP: 2, INVALID: 3, UNALIGNED_WP: 4, OPEN_RESOURCE: 5, ACTIVE_RESOURCE: 6 } as const;
/** Feature bits (VIRTIO_BLK_F_*). */
export const BLK_F = { SIZE_MAX: 1, SEG_MAX: 2, BLK_SIZE: 6, FLUSH: 9, TOPOLOGY: 10, CONFIG_WCE: 11, MQ: 12, ZONED: 17 } as const;
/** Status byte value before the device writes it, so a missing write is visible. */
export const STATUS_UNSET = 0xff;
/** What device-writable data buffers hold before the device writes them. */
const IN_POISON = 0xcc;

/** The out header at byte `off` of `dv`; no allocation (the load generator calls it per request). */
export function writeBlkHeader(dv: DataView, off: number, type: number, sector: number): void {
  dv.setUint32(off, type, true);
  dv.setUint32(off + 4, 0, true);
  dv.setUint32(off + 8, sector % 0x1_0000_0000, true);
  dv.setUint32(off + 12, Math.floor(sector / 0x1_0000_0000), true);
}

/** Bytes of the device-writable tail Linux gives a request type, status byte included. */
export function tailBytes(type: number): number { return type === REQ.ZONE_APPEND ? 16 : 1; }

export interface BlkRequest {
  type: number;
  sector?: number;
  /**
   * Driver → device data (OUT, ZONE_APPEND), one descriptor each: bytes are copied into the
   * slot's data area; a Buf is guest memory placed already (alignment and skew tests).
   */
  out?: Array<Uint8Array | Buf>;
  /** Device → driver data buffer sizes (IN, GET_ID, ZONE_REPORT), one descriptor each. */
  inLens?: number[];
  /** Bytes of the device-writable tail including the status byte (default: tailBytes(type)). */
  tailLen?: number;
}

/**
 * A request slot with its own guest buffers, reusable for many submissions. Buffers are
 * sized at construction.
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
    this.data = mem.alloc(Math.max(dataCapacity, 1), 4096);
    this.dataCapacity = dataCapacity;
    this.tail = mem.alloc(maxTail, 16);
  }

  /** Writes the request into guest memory and places its chain on q (publishing it). */
  submit(q: DriverQueue, r: BlkRequest, opts: { indirect?: boolean; publish?: boolean } = {}): number {
    const { dv, off } = this.mem.at(this.hdr);
    writeBlkHeader(dv, off, r.type, r.sector ?? 0);
    const bufs: Buf[] = [{ gpa: this.hdr, len: 16 }];
    let at = this.data;
    for (const o of r.out ?? []) {
      if (!(o instanceof Uint8Array)) { bufs.push(o); continue; }
      this.mem.write(at, o);
      bufs.push({ gpa: at, len: o.length });
      at += o.length;
    }
    this.inGpas = [];
    for (const len of r.inLens ?? []) {
      this.mem.write(at, new Uint8Array(len).fill(IN_POISON));
      bufs.push({ gpa: at, len, write: true });
      this.inGpas.push({ gpa: at, len });
      at += len;
    }
    if (at - this.data > this.dataCapacity) throw new Error(`request data ${at - this.data} > slot capacity ${this.dataCapacity}`);
    this.tailLen = r.tailLen ?? tailBytes(r.type);
    this.mem.write(this.tail, new Uint8Array(this.tailLen).fill(STATUS_UNSET));
    bufs.push({ gpa: this.tail, len: this.tailLen, write: true });
    return q.add(bufs, opts);
  }

  /** One request on its own: submit, kick, wait for its used entry (which must be this chain's). */
  async run(q: DriverQueue, r: BlkRequest, opts: { indirect?: boolean } = {}): Promise<UsedElem> {
    const head = this.submit(q, r, opts);
    q.kick();
    const [u] = await q.waitUsed(1);
    if (u.id !== head) throw new Error(`used entry for head ${u.id}, expected ${head}`);
    return u;
  }

  /** The status byte (last byte of the tail). */
  get status(): number { return this.mem.read(this.tail + this.tailLen - 1, 1)[0]; }

  /** ZONE_APPEND: the sector the device reported (tail bytes 0..7). */
  get appendSector(): number {
    const t = this.mem.read(this.tail, 8);
    return Number(new DataView(t.buffer).getBigUint64(0, true));
  }

  /** Guest address of the i-th device-writable data buffer. */
  inGpa(i = 0): number { return this.inGpas[i]?.gpa ?? 0; }

  /** Contents of the i-th device-writable data buffer. */
  inData(i = 0): Uint8Array {
    const b = this.inGpas[i];
    return this.mem.read(b.gpa, b.len);
  }
}

export interface BlkResult {
  status: number;
  /** Guest address of the first device-writable data buffer (IN, ZONE_REPORT, GET_ID). */
  inGpa: number;
  /** ZONE_APPEND: where the data landed (valid when status is OK); -1 for other types. */
  appendSector: bigint;
  usedLen: number;
  /** Position of its completion among the batch's completions (0 = first). */
  order: number;
}

export interface ReportedZone { cap: number; start: number; wp: bigint; type: number; cond: number }

/** Requests as a test writes them: each in fresh slots, a batch per kick, results in order. */
export class BlkClient {
  constructor(readonly mem: GuestMemoryImage, readonly q: DriverQueue) {}

  /** Guest buffer holding `data`, aligned like a guest page unless told otherwise. */
  place(data: Uint8Array, align = 4096, skew = 0): Buf {
    const gpa = this.mem.alloc(data.length + skew, align) + skew;
    this.mem.write(gpa, data);
    return { gpa, len: data.length };
  }

  /** Publish all requests, kick once, wait for all of them; results in request order. */
  async run(reqs: BlkRequest[], timeoutMs = 20_000): Promise<BlkResult[]> {
    const pending = new Map<number, { i: number; slot: BlkRequestSlot }>();
    for (const [i, r] of reqs.entries()) {
      let bytes = 0;
      for (const o of r.out ?? []) if (o instanceof Uint8Array) bytes += o.length;
      for (const len of r.inLens ?? []) bytes += len;
      const slot = new BlkRequestSlot(this.mem, bytes);
      pending.set(slot.submit(this.q, r), { i, slot });
    }
    this.q.kick();
    const used = await this.q.waitUsed(reqs.length, timeoutMs);
    const out = new Array<BlkResult>(reqs.length);
    for (const [order, u] of used.entries()) {
      const p = pending.get(u.id);
      if (!p) throw new Error(`used entry for unknown head ${u.id}`);
      const s = p.slot;
      const appendSector = reqs[p.i].type === REQ.ZONE_APPEND ? BigInt(s.appendSector) : -1n;
      out[p.i] = { status: s.status, inGpa: s.inGpa(0), appendSector, usedLen: u.len, order };
    }
    return out;
  }

  async one(r: BlkRequest): Promise<BlkResult> {
    return (await this.run([r]))[0];
  }

  async write(sector: number, data: Uint8Array): Promise<number> {
    return (await this.one({ type: REQ.OUT, sector, out: [this.place(data)] })).status;
  }

  async read(sector: number, len: number): Promise<{ status: number; data: Uint8Array }> {
    const r = await this.one({ type: REQ.IN, sector, inLens: [len] });
    return { status: r.status, data: this.mem.read(r.inGpa, len) };
  }

  async mgmt(type: number, sector: number): Promise<number> {
    return (await this.one({ type, sector })).status;
  }

  async report(sector: number, maxZones: number): Promise<{ status: number; zones: ReportedZone[] }> {
    const len = 64 + 64 * maxZones;
    const r = await this.one({ type: REQ.ZONE_REPORT, sector, inLens: [len] });
    const raw = this.mem.read(r.inGpa, len);
    const dv = new DataView(raw.buffer, raw.byteOffset, len);
    const n = Number(dv.getBigUint64(0, true));
    const zones: ReportedZone[] = [];
    for (let i = 0; i < n; i++) {
      const o = 64 + 64 * i;
      zones.push({
        cap: Number(dv.getBigUint64(o, true)), start: Number(dv.getBigUint64(o + 8, true)), wp: dv.getBigUint64(o + 16, true),
        type: dv.getUint8(o + 24), cond: dv.getUint8(o + 25),
      });
    }
    return { status: r.status, zones };
  }
}
