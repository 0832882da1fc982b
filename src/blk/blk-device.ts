// The virtio-blk device model: decodes requests from descriptor chains, runs them on a
// Backend, writes the status (and append sector / zone report) back into guest memory.
import type { Logger } from 'pino';
import type { Backend, IoVec } from '../backends/backend.js';
import { iovBytes, iovRead, iovSlice, iovWrite } from '../backends/iovec.js';
import type { DescChain, VirtQueueHandle, VirtioDevice } from '../virtio/device.js';
import { ZONE_RESULT_NAMES, ZoneOp, ZoneResult } from '../zoned/types.js';
import {
  APPEND_TAIL, APPEND_TAIL_MAX, BLK_F, CONFIG_SIZE, GET_ID_BYTES, OUT_HDR_SIZE, REQ, REQ_NAMES, STATUS, VIRTIO_F,
  VIRTIO_ID_BLOCK, ZONE_DESC_SIZE, ZONE_REPORT_HDR, bit,
} from './constants.js';
import { CONFIG_WRITEBACK_OFFSET, buildConfig } from './config-space.js';
import { blkStatus } from './status.js';

export interface BlkDeviceOptions {
  backend: Backend;
  numQueues: number;
  /** Largest queue size accepted (SET_VRING_NUM); seg_max derives from it. */
  maxQueueSize?: number;
  /** 'hm' serves the zoned model (default when the backend is zoned); 'none' a regular disk. */
  model?: 'hm' | 'none';
  logger: Logger;
}

/**
 * Error/latency injection asked before a request runs (control/fault-rules.ts implements it).
 * Consulted only while `armed`: one property read per request otherwise.
 */
export interface RequestFaultHook {
  readonly armed: boolean;
  readonly delayedRequests: number;
  /** Filled in by a decide() that returned true: status >= 0 to answer, or -1 and delayMs. */
  readonly decision: { readonly rule: number; readonly status: number; readonly delayMs: number; readonly first: boolean };
  decide(type: number, sector: number, nsectors: number): boolean;
  delay(ms: number, run: () => void): void;
  /** Run every delayed request now. */
  releaseDelays(): void;
}

const MGMT_OPS: Record<number, ZoneOp> = {
  [REQ.ZONE_OPEN]: ZoneOp.OPEN, [REQ.ZONE_CLOSE]: ZoneOp.CLOSE, [REQ.ZONE_FINISH]: ZoneOp.FINISH,
  [REQ.ZONE_RESET]: ZoneOp.RESET, [REQ.ZONE_RESET_ALL]: ZoneOp.RESET_ALL,
};

/** Little-endian u64 from a safe integer, without a BigInt per value. */
function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v % 0x1_0000_0000, true);
  dv.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
}

const ZONE_REQS = new Set<number>([REQ.ZONE_APPEND, REQ.ZONE_REPORT, REQ.ZONE_OPEN, REQ.ZONE_CLOSE, REQ.ZONE_FINISH, REQ.ZONE_RESET, REQ.ZONE_RESET_ALL]);

export class BlkDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly deviceFeatures: bigint;
  readonly numQueues: number;
  readonly maxQueueSize: number;
  readonly zoned: boolean;
  private readonly backend: Backend;
  private readonly log: Logger;
  private config: Uint8Array;
  private writeback = true;
  private driverFeatures = 0n;
  private zonedNegotiated = false;
  /** The missing-ZONED error is said once per front-end session (QEMU sends SET_FEATURES twice). */
  private warnedNotZoned = false;
  private readonly inflight: number[];
  private readonly drainWaiters: (() => void)[][];
  private readonly pendingNotify = new Set<VirtQueueHandle>();
  private notifyScheduled = false;
  private readonly hdr = new Uint8Array(OUT_HDR_SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly serial: Uint8Array;
  /** Error/latency injection (control API); consulted only while a rule is live. */
  faults: RequestFaultHook | null = null;

  constructor(o: BlkDeviceOptions) {
    this.backend = o.backend;
    this.log = o.logger;
    this.numQueues = o.numQueues;
    this.maxQueueSize = o.maxQueueSize ?? 1024;
    const info = o.backend.info;
    this.zoned = (o.model ?? (info.zoned ? 'hm' : 'none')) === 'hm';
    if (this.zoned && !info.zoned) throw new Error('model hm needs a zoned backend');
    let f = bit(VIRTIO_F.VERSION_1) | bit(VIRTIO_F.INDIRECT_DESC) | bit(VIRTIO_F.EVENT_IDX) |
      bit(BLK_F.SEG_MAX) | bit(BLK_F.BLK_SIZE) | bit(BLK_F.FLUSH) | bit(BLK_F.CONFIG_WCE) |
      bit(BLK_F.TOPOLOGY) | bit(BLK_F.MQ);
    if (info.readOnly) f |= bit(BLK_F.RO);
    // Host-managed: no DISCARD (the spec forbids it with HM); ZONED carries the zone model.
    if (this.zoned) f |= bit(BLK_F.ZONED);
    this.deviceFeatures = f;
    this.inflight = new Array<number>(o.numQueues).fill(0);
    this.drainWaiters = Array.from({ length: o.numQueues }, () => []);
    this.serial = new Uint8Array(GET_ID_BYTES);
    this.serial.set(new TextEncoder().encode(info.serial).subarray(0, GET_ID_BYTES));
    this.config = this.makeConfig();
  }

  private makeConfig(): Uint8Array {
    return buildConfig({
      info: this.backend.info, numQueues: this.numQueues,
      // The ring caps indirect tables at 1024 descriptors; a larger seg_max would invite malformed chains.
      segMax: Math.min(this.maxQueueSize, 1024) - 2,
      writeback: this.writeback, zoned: this.zoned,
    });
  }

  readConfig(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (offset < CONFIG_SIZE) out.set(this.config.subarray(offset, Math.min(CONFIG_SIZE, offset + length)));
    return out;
  }

  writeConfig(offset: number, data: Uint8Array): void {
    // Only the writeback byte is driver-writable; QEMU's test device sends the whole space.
    const at = CONFIG_WRITEBACK_OFFSET - offset;
    if (at >= 0 && at < data.byteLength) {
      const wb = data[at] !== 0;
      if (wb !== this.writeback) {
        this.writeback = wb;
        this.config = this.makeConfig();
        this.log.info({ writeback: wb }, wb ? 'guest enabled the write cache' : 'guest disabled the write cache: every write is flushed before completion');
      }
    }
  }

  setDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
    this.zonedNegotiated = this.zoned && (features & bit(BLK_F.ZONED)) !== 0n;
    // Without FLUSH or CONFIG_WCE the driver cannot ask for durability: be write-through.
    if ((features & (bit(BLK_F.FLUSH) | bit(BLK_F.CONFIG_WCE))) === 0n) this.writeback = false;
    this.log.info({ features: '0x' + features.toString(16), zoned: this.zonedNegotiated }, 'driver features negotiated');
    if (this.zoned && !this.zonedNegotiated && !this.warnedNotZoned) {
      this.warnedNotZoned = true;
      this.log.error(
        'the front-end did not negotiate VIRTIO_BLK_F_ZONED: the guest sees a regular disk and zone commands fail with UNSUPP ' +
        '(writes still obey the zone rules). QEMU vhost-user-blk-pci never passes the zoned feature; use QEMU >= 10.2 with ' +
        '-device vhost-user-test-device-pci,virtio-id=2,config_size=96 or User-Mode Linux virtio_uml.device=SOCKET:2, ' +
        'or serve with --model none for a plain disk.');
    }
  }

  reset(): void {
    this.driverFeatures = 0n;
    this.zonedNegotiated = false;
    this.warnedNotZoned = false;
    this.writeback = true;
    this.config = this.makeConfig();
  }

  drainQueue(q: number): Promise<void> {
    if (!(this.inflight[q] > 0)) return Promise.resolve();
    // The ring is stopping (front-end leaving): nobody waits for an injected delay any more.
    if (this.faults !== null && this.faults.delayedRequests > 0) this.faults.releaseDelays();
    return new Promise((resolve) => this.drainWaiters[q].push(resolve));
  }

  queueKicked(queue: VirtQueueHandle): void {
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      this.inflight[queue.index]++;
      this.handle(queue, chain);
    }
    if (this.pendingNotify.size) this.flushNotify();
  }

  private complete(queue: VirtQueueHandle, chain: DescChain, status: number, written: number): void {
    const w = chain.writable;
    if (w.length > 0) {
      const last = w[w.length - 1];
      if (last.byteLength > 0) last[last.byteLength - 1] = status;
    }
    queue.push(chain, written);
    this.pendingNotify.add(queue);
    if (!this.notifyScheduled) {
      this.notifyScheduled = true;
      // One notification per batch of completions that resolve together.
      queueMicrotask(() => this.flushNotify());
    }
    const q = queue.index;
    if (--this.inflight[q] === 0 && this.drainWaiters[q].length) {
      for (const f of this.drainWaiters[q].splice(0)) f();
    }
  }

  private flushNotify(): void {
    this.notifyScheduled = false;
    for (const q of this.pendingNotify) q.notify();
    this.pendingNotify.clear();
  }

  private reject(queue: VirtQueueHandle, chain: DescChain, status: number, why: string, ctx: Record<string, unknown>): void {
    this.log.warn({ queue: queue.index, head: chain.head, ...ctx }, `bad request: ${why}`);
    this.complete(queue, chain, status, chain.writableBytes > 0 ? 1 : 0);
  }

  private handle(queue: VirtQueueHandle, chain: DescChain): void {
    if (chain.error) { this.reject(queue, chain, STATUS.IOERR, chain.error, {}); return; }
    if (chain.writableBytes < 1) {
      // Nowhere to put a status: return the chain so the guest is not left waiting.
      this.reject(queue, chain, STATUS.IOERR, 'no device-writable status byte', { readable: chain.readableBytes });
      return;
    }
    if (iovRead(chain.readable, 0, this.hdr) < OUT_HDR_SIZE) {
      this.reject(queue, chain, STATUS.IOERR, 'request header shorter than 16 bytes', { readable: chain.readableBytes });
      return;
    }
    const type = this.hdrView.getUint32(0, true);
    const hi = this.hdrView.getUint32(12, true);
    // Sectors beyond 2^53 cannot be on any disk we serve; keep them out of number arithmetic.
    const sector = hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + this.hdrView.getUint32(8, true);
    if (ZONE_REQS.has(type) && !this.zonedNegotiated) {
      this.log.debug({ queue: queue.index, type: REQ_NAMES[type] }, 'zone command without negotiated ZONED');
      this.complete(queue, chain, STATUS.UNSUPP, 1);
      return;
    }
    const f = this.faults;
    if (f !== null && f.armed && this.injectFault(f, queue, chain, type, sector)) return;
    this.dispatch(queue, chain, type, sector);
  }

  // ---- fault injection hook (control API): before the request touches the disk ----------
  /** True when a rule took the request: answered with its status, or delayed then dispatched. */
  private injectFault(f: RequestFaultHook, queue: VirtQueueHandle, chain: DescChain, type: number, sector: number): boolean {
    const n = type === REQ.IN ? (chain.writableBytes - 1) >>> 9
      : type === REQ.OUT || type === REQ.ZONE_APPEND ? (chain.readableBytes - OUT_HDR_SIZE) >>> 9 : 0;
    if (!f.decide(type, sector, n)) return false;
    const d = f.decision;
    const ctx = { queue: queue.index, head: chain.head, type: REQ_NAMES[type] ?? type, sector, sectors: n, rule: d.rule };
    if (d.status >= 0) {
      // Nothing is executed: the zone's write pointer stays where it was, as after a failed write.
      if (d.first) this.log.info({ ...ctx, status: d.status }, 'injected error (first of this rule; more at debug)');
      else this.log.debug({ ...ctx, status: d.status }, 'injected error');
      this.complete(queue, chain, d.status, 1);
    } else {
      if (d.first) this.log.info({ ...ctx, delayMs: d.delayMs }, 'injected delay (first of this rule; more at debug)');
      else this.log.debug({ ...ctx, delayMs: d.delayMs }, 'injected delay');
      f.delay(d.delayMs, () => this.dispatch(queue, chain, type, sector));
    }
    return true;
  }
  // ---- end of fault injection hook --------------------------------------------------------

  private dispatch(queue: VirtQueueHandle, chain: DescChain, type: number, sector: number): void {
    switch (type) {
      case REQ.IN: this.doRead(queue, chain, sector); return;
      case REQ.OUT: this.doWrite(queue, chain, sector); return;
      case REQ.FLUSH:
        this.backend.flush().then((r) => this.done(queue, chain, r, 1, type, sector), (e) => this.fail(queue, chain, e, type, sector));
        return;
      case REQ.GET_ID: {
        const data = iovSlice(chain.writable, 0, chain.writableBytes - 1);
        const n = iovWrite(data, 0, this.serial.subarray(0, Math.min(GET_ID_BYTES, iovBytes(data))));
        this.complete(queue, chain, STATUS.OK, n + 1);
        return;
      }
      case REQ.ZONE_APPEND: this.doAppend(queue, chain, sector); return;
      case REQ.ZONE_REPORT: this.doReport(queue, chain, sector); return;
      default: {
        const op = MGMT_OPS[type];
        if (op !== undefined) {
          if (chain.readableBytes !== OUT_HDR_SIZE) {
            this.reject(queue, chain, STATUS.IOERR, 'zone management request carries data', { type: REQ_NAMES[type], readable: chain.readableBytes });
            return;
          }
          this.backend.zoneMgmt(op, sector).then((r) => this.done(queue, chain, r, 1, type, sector), (e) => this.fail(queue, chain, e, type, sector));
          return;
        }
        this.log.debug({ queue: queue.index, type }, 'unsupported request type');
        this.complete(queue, chain, STATUS.UNSUPP, 1);
      }
    }
  }

  private done(queue: VirtQueueHandle, chain: DescChain, r: ZoneResult, written: number, type: number, sector: number): void {
    const status = blkStatus(r, this.zonedNegotiated);
    if (r !== ZoneResult.OK) {
      const ctx = { queue: queue.index, head: chain.head, type: REQ_NAMES[type] ?? type, sector, result: ZONE_RESULT_NAMES[r] ?? r, status };
      if (r === ZoneResult.IO_ERROR) this.log.error(ctx, 'request failed'); else this.log.debug(ctx, 'request refused');
    }
    this.complete(queue, chain, status, r === ZoneResult.OK ? written : 1);
  }

  private fail(queue: VirtQueueHandle, chain: DescChain, err: unknown, type: number, sector: number): void {
    this.log.error({ err, queue: queue.index, head: chain.head, type: REQ_NAMES[type] ?? type, sector }, 'request failed unexpectedly');
    this.complete(queue, chain, STATUS.IOERR, 1);
  }

  private doRead(queue: VirtQueueHandle, chain: DescChain, sector: number): void {
    const len = chain.writableBytes - 1;
    if (chain.readableBytes !== OUT_HDR_SIZE || len % 512 !== 0) {
      this.reject(queue, chain, STATUS.IOERR, 'malformed read', { sector, readable: chain.readableBytes, data: len });
      return;
    }
    const data = iovSlice(chain.writable, 0, len);
    this.backend.read(sector, data).then((r) => this.done(queue, chain, r, len + 1, REQ.IN, sector), (e) => this.fail(queue, chain, e, REQ.IN, sector));
  }

  private writeData(chain: DescChain): IoVec {
    return iovSlice(chain.readable, OUT_HDR_SIZE, chain.readableBytes);
  }

  private doWrite(queue: VirtQueueHandle, chain: DescChain, sector: number): void {
    const len = chain.readableBytes - OUT_HDR_SIZE;
    if (len % 512 !== 0 || chain.writableBytes !== 1) {
      this.reject(queue, chain, STATUS.IOERR, 'malformed write', { sector, data: len, writable: chain.writableBytes });
      return;
    }
    if (this.backend.info.readOnly) { this.complete(queue, chain, STATUS.IOERR, 1); return; }
    this.backend.write(sector, this.writeData(chain)).then((r) => {
      // Write-through mode (cache disabled by the guest): completed means durable.
      if (r === ZoneResult.OK && !this.writeback) {
        this.backend.flush().then((f) => this.done(queue, chain, f, 1, REQ.OUT, sector), (e) => this.fail(queue, chain, e, REQ.OUT, sector));
      } else {
        this.done(queue, chain, r, 1, REQ.OUT, sector);
      }
    }, (e) => this.fail(queue, chain, e, REQ.OUT, sector));
  }

  private doAppend(queue: VirtQueueHandle, chain: DescChain, sector: number): void {
    const len = chain.readableBytes - OUT_HDR_SIZE;
    // The spec's tail is 9 bytes (le64 sector, status). Linux 6.3+ sends its unpacked
    // struct: 16 bytes with the status in the last one. Sector first, status last, either way.
    const tail = chain.writableBytes;
    if (len % 512 !== 0 || tail < APPEND_TAIL || tail > APPEND_TAIL_MAX) {
      this.reject(queue, chain, STATUS.IOERR, 'malformed zone append', { sector, data: len, writable: chain.writableBytes });
      return;
    }
    this.backend.append(sector, this.writeData(chain)).then((a) => {
      if (a.result === ZoneResult.OK && !this.writeback) {
        this.backend.flush().then((r) => this.appended(queue, chain, r, a.sector, tail, sector),
          (e) => this.fail(queue, chain, e, REQ.ZONE_APPEND, sector));
      } else {
        this.appended(queue, chain, a.result, a.sector, tail, sector);
      }
    }, (e) => this.fail(queue, chain, e, REQ.ZONE_APPEND, sector));
  }

  /** Completes a zone append: on success the sector it landed at goes first in the tail (le64). */
  private appended(queue: VirtQueueHandle, chain: DescChain, r: ZoneResult, at: number, tail: number, sector: number): void {
    if (r === ZoneResult.OK) {
      const w = chain.writable[0];
      if (w.byteLength >= 8) {
        const lo = at % 0x1_0000_0000, hi = Math.floor(at / 0x1_0000_0000);
        w[0] = lo & 0xff; w[1] = (lo >>> 8) & 0xff; w[2] = (lo >>> 16) & 0xff; w[3] = lo >>> 24;
        w[4] = hi & 0xff; w[5] = (hi >>> 8) & 0xff; w[6] = (hi >>> 16) & 0xff; w[7] = hi >>> 24;
      } else {
        // The tail is split over descriptors: assemble it, then scatter.
        const le = new Uint8Array(8);
        setU64(new DataView(le.buffer), 0, at);
        iovWrite(chain.writable, 0, le);
      }
    }
    this.done(queue, chain, r, tail, REQ.ZONE_APPEND, sector);
  }

  private doReport(queue: VirtQueueHandle, chain: DescChain, sector: number): void {
    const len = chain.writableBytes - 1;
    if (chain.readableBytes !== OUT_HDR_SIZE || len < ZONE_REPORT_HDR) {
      this.reject(queue, chain, STATUS.ZONE_INVALID_CMD, 'zone report buffer smaller than its 64-byte header', { sector, data: len });
      return;
    }
    const info = this.backend.info;
    if (sector >= info.capacitySectors) {
      this.done(queue, chain, ZoneResult.INVALID, 1, REQ.ZONE_REPORT, sector);
      return;
    }
    const zones = info.zoned as NonNullable<typeof info.zoned>;
    const remaining = zones.nrZones - Math.floor(sector / zones.zoneSectors);
    const max = Math.min(Math.floor((len - ZONE_REPORT_HDR) / ZONE_DESC_SIZE), remaining);
    const bytes = ZONE_REPORT_HDR + max * ZONE_DESC_SIZE;
    // The report goes straight into guest memory when the buffer is one view (the usual
    // case): a report of 100 000 zones is 6.4 MB, not worth a copy. A scattered buffer is
    // assembled first and copied.
    const area = iovSlice(chain.writable, 0, bytes);
    const direct = area.length === 1;
    const buf = direct ? area[0] : new Uint8Array(bytes);
    const dv = new DataView(buf.buffer, buf.byteOffset, bytes);
    let off = ZONE_REPORT_HDR;
    this.backend.reportZones(sector, max, (start, zlen, cap, wp, type, cond) => {
      setU64(dv, off, cap);
      setU64(dv, off + 8, start);
      if (wp < 0) { dv.setUint32(off + 16, 0xffffffff, true); dv.setUint32(off + 20, 0xffffffff, true); } else setU64(dv, off + 16, wp);
      dv.setUint8(off + 24, type);
      dv.setUint8(off + 25, cond);
      // Reserved bytes: guest memory holds whatever was there before.
      if (direct) buf.fill(0, off + 26, off + ZONE_DESC_SIZE);
      off += ZONE_DESC_SIZE;
      return true;
    }).then((n) => {
      // nr_zones counts only the descriptors fully transferred.
      setU64(dv, 0, n);
      if (direct) buf.fill(0, 8, ZONE_REPORT_HDR);
      const used = ZONE_REPORT_HDR + n * ZONE_DESC_SIZE;
      if (!direct) iovWrite(chain.writable, 0, buf.subarray(0, used));
      this.done(queue, chain, ZoneResult.OK, used + 1, REQ.ZONE_REPORT, sector);
    }, (e) => this.fail(queue, chain, e, REQ.ZONE_REPORT, sector));
  }

  get negotiatedFeatures(): bigint { return this.driverFeatures; }
  /** The guest's write cache setting (virtio config writeback): false = write-through. */
  get writebackEnabled(): boolean { return this.writeback; }
  get requestsInFlight(): number {
    let n = 0;
    for (const v of this.inflight) n += v;
    return n;
  }
}
