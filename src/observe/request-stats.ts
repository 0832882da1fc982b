// Per-request counting for the device model, kept off prom-client on purpose: the request path
// only bumps numbers in typed arrays indexed by small integers (no label lookup, no object per
// request). metrics.ts folds these arrays into Prometheus series when someone scrapes.
import type { RequestHooks } from '../blk/blk-device.js';
import { REQ } from '../blk/constants.js';
import { RequestKind, type BlkRequest } from '../blk/request.js';

/** Operation label values, in index order. */
export const OPS = [
  'read', 'write', 'append', 'flush', 'get_id', 'report', 'open', 'close', 'finish', 'reset', 'reset_all',
  'discard', 'write_zeroes', 'other', 'malformed',
] as const;
export type OpName = typeof OPS[number];
const op = (name: OpName): number => OPS.indexOf(name);
export const OP = {
  READ: op('read'), WRITE: op('write'), APPEND: op('append'), FLUSH: op('flush'), REPORT: op('report'),
  FINISH: op('finish'), RESET: op('reset'), RESET_ALL: op('reset_all'), OTHER: op('other'), MALFORMED: op('malformed'),
} as const;

/** virtio-blk status byte → label value (VIRTIO 1.3 §5.2.6 and the zoned extension). */
export const STATUSES = [
  'ok', 'ioerr', 'unsupp', 'zone_invalid_cmd', 'zone_unaligned_wp', 'zone_open_resource', 'zone_active_resource', 'other',
] as const;
export const NSTATUS = STATUSES.length;

/** Request type (u32 from the header) → op index; types ≥ 256 are 'other'. */
const TYPE_TO_OP = new Uint8Array(256).fill(OP.OTHER);
TYPE_TO_OP[REQ.IN] = OP.READ;
TYPE_TO_OP[REQ.OUT] = OP.WRITE;
TYPE_TO_OP[REQ.ZONE_APPEND] = OP.APPEND;
TYPE_TO_OP[REQ.FLUSH] = OP.FLUSH;
TYPE_TO_OP[REQ.GET_ID] = op('get_id');
TYPE_TO_OP[REQ.ZONE_REPORT] = OP.REPORT;
TYPE_TO_OP[REQ.ZONE_OPEN] = op('open');
TYPE_TO_OP[REQ.ZONE_CLOSE] = op('close');
TYPE_TO_OP[REQ.ZONE_FINISH] = OP.FINISH;
TYPE_TO_OP[REQ.ZONE_RESET] = OP.RESET;
TYPE_TO_OP[REQ.ZONE_RESET_ALL] = OP.RESET_ALL;
TYPE_TO_OP[REQ.DISCARD] = op('discard');
TYPE_TO_OP[REQ.WRITE_ZEROES] = op('write_zeroes');

/** Upper bounds of the latency histogram, seconds: 5 µs (a RAM read) to 30 s (a stalled drive). */
export const DURATION_BUCKETS = [
  5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
export const NBUCKET = DURATION_BUCKETS.length + 1; // + the +Inf bucket
const BUCKETS_MS = Float64Array.from(DURATION_BUCKETS, (s) => s * 1000);

/** One failed request, kept for the live page. */
export interface RecentError {
  /** Wall-clock milliseconds. */
  time: number;
  queue: number;
  op: OpName;
  /** Request type number from the header (-1 when the header could not be read). */
  type: number;
  sector: number;
  status: string;
}

const RECENT_ERRORS = 20;

/**
 * The device's completion hook (registered first, so an injected delay or error counts too):
 * onComplete counts the request, its latency taken from the device's stamps (off the ring →
 * status written, clock read once per batch). Refused requests (malformed framing, a type
 * not negotiated) count with the time it took to refuse them.
 */
export class RequestStats implements RequestHooks {
  /** Count per (op, status): index op * STATUSES.length + status. */
  readonly requests = new Float64Array(OPS.length * NSTATUS);
  /** Payload bytes of successful requests, per op. */
  readonly bytes = new Float64Array(OPS.length);
  /** Non-cumulative latency bucket counts per op: index op * NBUCKET + bucket. */
  readonly buckets = new Float64Array(OPS.length * NBUCKET);
  /** Sum of latencies per op, seconds. */
  readonly durationSum = new Float64Array(OPS.length);
  private readonly errors: RecentError[] = [];
  private errorSeq = 0;

  onComplete(req: BlkRequest, status: number): void {
    const ms = req.completedAt - req.startedAt;
    const type = req.type;
    const o = type < 0 ? OP.MALFORMED : type < 256 ? TYPE_TO_OP[type] : OP.OTHER;
    const s = status < NSTATUS - 1 ? status : NSTATUS - 1;
    this.requests[o * NSTATUS + s]++;
    let b = 0;
    while (b < BUCKETS_MS.length && ms > BUCKETS_MS[b]) b++;
    this.buckets[o * NBUCKET + b]++;
    this.durationSum[o] += ms / 1000;
    if (s === 0) {
      const k = req.kind;
      if (k === RequestKind.READ || k === RequestKind.WRITE || k === RequestKind.APPEND) this.bytes[o] += req.dataBytes;
    } else {
      this.noteError(req.queue?.index ?? -1, o, type, type < 0 ? 0 : req.sector, STATUSES[s]);
    }
  }

  private noteError(queue: number, o: number, type: number, sector: number, status: string): void {
    const e: RecentError = { time: Date.now(), queue, op: OPS[o], type, sector, status };
    this.errors[this.errorSeq++ % RECENT_ERRORS] = e;
  }

  /** The last failed requests, newest first. */
  recentErrors(): RecentError[] {
    const out: RecentError[] = [];
    for (let i = 1; i <= Math.min(RECENT_ERRORS, this.errorSeq); i++) out.push(this.errors[(this.errorSeq - i) % RECENT_ERRORS]);
    return out;
  }

  count(o: number, status = 0): number { return this.requests[o * NSTATUS + status]; }

  /** Requests of an op, any status. */
  total(o: number): number {
    let n = 0;
    for (let s = 0; s < NSTATUS; s++) n += this.requests[o * NSTATUS + s];
    return n;
  }

  /** Cumulative bucket counts of an op, as Prometheus wants them (last = +Inf = count). */
  cumulativeBuckets(o: number): number[] {
    const out = new Array<number>(NBUCKET);
    let acc = 0;
    for (let b = 0; b < NBUCKET; b++) { acc += this.buckets[o * NBUCKET + b]; out[b] = acc; }
    return out;
  }
}
