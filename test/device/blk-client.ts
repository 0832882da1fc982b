// The driver side of virtio-blk for tests: builds requests (header, data, status / zone-append
// tail) in test guest memory, the way Linux virtio_blk lays them out, and reads the results.
import type { Buf, DriverQueue } from '../harness/driver-queue.js';
import type { GuestMemoryImage } from '../harness/guest-memory-image.js';

export const REQ = {
  IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, ZONE_APPEND: 15, ZONE_REPORT: 16, ZONE_OPEN: 18, ZONE_CLOSE: 20,
  ZONE_FINISH: 22, ZONE_RESET: 24, ZONE_RESET_ALL: 26,
} as const;
export const STATUS = { OK: 0, IOERR: 1, UNSUPP: 2, INVALID: 3, UNALIGNED_WP: 4, OPEN_RESOURCE: 5, ACTIVE_RESOURCE: 6 } as const;

export interface BlkRequest {
  type: number;
  sector: number;
  /** Device-readable data (OUT, ZONE_APPEND): already placed in guest memory. */
  out?: Buf[];
  /** Device-writable data length (IN, ZONE_REPORT, GET_ID). */
  inLen?: number;
}

export interface BlkResult {
  status: number;
  /** Guest address of the device-writable data (IN, ZONE_REPORT, GET_ID). */
  inGpa: number;
  /** ZONE_APPEND: where the data landed (valid when status is OK). */
  appendSector: bigint;
  usedLen: number;
  /** Position of its completion among the batch's completions (0 = first). */
  order: number;
}

export interface ReportedZone { cap: number; start: number; wp: bigint; type: number; cond: number }

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
    const pending = new Map<number, { i: number; tailGpa: number; tailLen: number; inGpa: number }>();
    for (const [i, r] of reqs.entries()) {
      const hdr = this.mem.alloc(16, 16);
      const { dv, off } = this.mem.at(hdr);
      dv.setUint32(off, r.type, true);
      dv.setUint32(off + 4, 0, true);
      dv.setBigUint64(off + 8, BigInt(r.sector), true);
      const bufs: Buf[] = [{ gpa: hdr, len: 16 }, ...(r.out ?? [])];
      let inGpa = 0;
      if (r.inLen) {
        inGpa = this.mem.alloc(r.inLen, 4096);
        this.mem.write(inGpa, new Uint8Array(r.inLen).fill(0xcc));
        bufs.push({ gpa: inGpa, len: r.inLen, write: true });
      }
      // Linux sends a 16-byte in-header for zone append (le64 sector, status in the last byte).
      const tailLen = r.type === REQ.ZONE_APPEND ? 16 : 1;
      const tailGpa = this.mem.alloc(tailLen, 8);
      this.mem.write(tailGpa, new Uint8Array(tailLen).fill(0xff));
      bufs.push({ gpa: tailGpa, len: tailLen, write: true });
      const head = this.q.add(bufs, { publish: true });
      pending.set(head, { i, tailGpa, tailLen, inGpa });
    }
    this.q.kick();
    const used = await this.q.waitUsed(reqs.length, timeoutMs);
    const out = new Array<BlkResult>(reqs.length);
    for (const [order, u] of used.entries()) {
      const p = pending.get(u.id);
      if (!p) throw new Error(`used entry for unknown head ${u.id}`);
      const tail = this.mem.read(p.tailGpa, p.tailLen);
      out[p.i] = {
        status: tail[p.tailLen - 1],
        inGpa: p.inGpa,
        appendSector: p.tailLen === 16 ? new DataView(tail.buffer, tail.byteOffset, 16).getBigUint64(0, true) : -1n,
        usedLen: u.len,
        order,
      };
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
    const r = await this.one({ type: REQ.IN, sector, inLen: len });
    return { status: r.status, data: this.mem.read(r.inGpa, len) };
  }

  async mgmt(type: number, sector: number): Promise<number> {
    return (await this.one({ type, sector })).status;
  }

  async report(sector: number, maxZones: number): Promise<{ status: number; zones: ReportedZone[] }> {
    const len = 64 + 64 * maxZones;
    const r = await this.one({ type: REQ.ZONE_REPORT, sector, inLen: len });
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
