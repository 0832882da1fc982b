// Error and latency injection rules (control API): which requests a rule matches, when it
// fires (count / once / probability / after N), and what it does (answer a status without
// touching the data, or delay the request). blk/ asks decide() before running a request,
// only while `armed` (one boolean read per request otherwise).
import { randomInt } from 'node:crypto';
import type { RequestFaultHook } from '../blk/blk-device.js';
import { REQ, STATUS } from '../blk/constants.js';
import { ApiError } from './api-server.js';
import { Rng } from './rng.js';

export const FAULT_OPS = ['read', 'write', 'append', 'flush', 'report', 'mgmt', 'any'] as const;
export type FaultOp = typeof FAULT_OPS[number];

/** Status names as the spec spells them (VIRTIO_BLK_S_*), lower case. */
export const FAULT_STATUSES: Readonly<Record<string, number>> = {
  ioerr: STATUS.IOERR, unsupp: STATUS.UNSUPP, 'zone-invalid-cmd': STATUS.ZONE_INVALID_CMD,
  'zone-unaligned-wp': STATUS.ZONE_UNALIGNED_WP, 'zone-open-resource': STATUS.ZONE_OPEN_RESOURCE,
  'zone-active-resource': STATUS.ZONE_ACTIVE_RESOURCE,
};

/** Longest injectable delay: long enough for any guest timeout test, short of forever. */
export const MAX_DELAY_MS = 600_000;

/** What a client asks for (POST /faults body). */
export interface FaultRuleSpec {
  op: FaultOp;
  /** Sector range [start, end) a request must overlap; omitted: every sector. */
  range?: { start: number; end: number };
  action: 'error' | 'delay';
  /** action error: status to answer (default ioerr). */
  status?: string;
  /** action delay: milliseconds, or the lower bound of a random delay when delayMaxMs is given. */
  delayMs?: number;
  delayMaxMs?: number;
  /** Fire at most this many times (once = 1); omitted: no limit. */
  count?: number;
  /** Each eligible request fires with this probability (0..1], default 1. */
  probability?: number;
  /** The first `after` matching requests pass untouched. */
  after?: number;
  /** Seed of the rule's random choices (probability, random delay); default: chosen and shown. */
  seed?: number;
}

export interface FaultRuleView extends Required<Pick<FaultRuleSpec, 'op' | 'action'>> {
  id: number;
  range: { start: number; end: number } | null;
  status: string | null;
  delayMs: number | null;
  delayMaxMs: number | null;
  count: number | null;
  probability: number;
  after: number;
  seed: number;
  /** Requests that matched op and range. */
  matched: number;
  /** Times it fired. */
  fired: number;
  /** False once it fired `count` times (kept in the list for its counters). */
  live: boolean;
}

interface Rule {
  id: number;
  opMask: number;
  op: FaultOp;
  start: number;
  end: number;
  ranged: boolean;
  action: 'error' | 'delay';
  status: number;
  statusName: string | null;
  delayMs: number;
  delayMaxMs: number;
  count: number;
  probability: number;
  after: number;
  seed: number;
  rng: Rng;
  matched: number;
  fired: number;
}

const OP_BIT: Record<Exclude<FaultOp, 'any'>, number> = { read: 1, write: 2, append: 4, flush: 8, report: 16, mgmt: 32 };

/** Which rule op bit a virtio-blk request type falls under (0: none, e.g. GET_ID). */
export function opBitOf(type: number): number {
  switch (type) {
    case REQ.IN: return OP_BIT.read;
    case REQ.OUT: return OP_BIT.write;
    case REQ.ZONE_APPEND: return OP_BIT.append;
    case REQ.FLUSH: return OP_BIT.flush;
    case REQ.ZONE_REPORT: return OP_BIT.report;
    case REQ.ZONE_OPEN: case REQ.ZONE_CLOSE: case REQ.ZONE_FINISH: case REQ.ZONE_RESET: case REQ.ZONE_RESET_ALL:
      return OP_BIT.mgmt;
    default: return 0;
  }
}

/** The decision for one request: an error status, or a delay; null: run it normally. */
export interface FaultDecision {
  rule: number;
  /** Status to answer, or -1 for a delay. */
  status: number;
  delayMs: number;
  /** The rule's first firing (logged at info; later ones at debug, so a busy rule cannot flood the log). */
  first: boolean;
}

const field = (name: string, value: unknown, why: string): ApiError =>
  new ApiError('bad-field', `${name} ${JSON.stringify(value)}: ${why}`, { field: name, value });

function nonNegInt(name: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw field(name, v, `must be an integer from 0 to ${max}`);
  return v;
}

export class FaultRules implements RequestFaultHook {
  /** True while a live rule exists: the request path checks only this. */
  armed = false;
  private readonly rules: Rule[] = [];
  private nextId = 1;
  private readonly pending = new Set<{ timer: NodeJS.Timeout; run: () => void }>();
  /** The decision of the last decide() that returned true (kept here: no object per request). */
  readonly decision: FaultDecision = { rule: 0, status: 0, delayMs: 0, first: false };

  /** Validate and add a rule; throws ApiError('bad-field') naming the field and value. */
  add(spec: unknown): FaultRuleView {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new ApiError('bad-field', 'the body must be a JSON object describing the rule', spec);
    const s = spec as Record<string, unknown>;
    const known = new Set(['op', 'range', 'action', 'status', 'delayMs', 'delayMaxMs', 'count', 'once', 'probability', 'after', 'seed']);
    for (const k of Object.keys(s)) if (!known.has(k)) throw field(k, s[k], `unknown field (known: ${[...known].join(', ')})`);
    const op = s.op ?? 'any';
    if (typeof op !== 'string' || !(FAULT_OPS as readonly string[]).includes(op)) throw field('op', op, `must be one of ${FAULT_OPS.join(', ')}`);
    const action = s.action ?? (s.delayMs !== undefined ? 'delay' : 'error');
    if (action !== 'error' && action !== 'delay') throw field('action', action, 'must be error or delay');
    let start = 0, end = Number.MAX_SAFE_INTEGER, ranged = false;
    if (s.range !== undefined) {
      const r = s.range as Record<string, unknown> | null;
      if (typeof r !== 'object' || r === null) throw field('range', r, 'must be {"start": SECTOR, "end": SECTOR}');
      start = nonNegInt('range.start', r.start);
      end = nonNegInt('range.end', r.end);
      if (end <= start) throw field('range.end', end, `must be above range.start ${start}`);
      if (op === 'flush') throw field('range', r, 'a flush has no sectors: drop the range');
      ranged = true;
    }
    let status: number = STATUS.IOERR, statusName: string | null = null, delayMs = 0, delayMaxMs = 0;
    if (action === 'error') {
      if (s.delayMs !== undefined || s.delayMaxMs !== undefined) throw field('delayMs', s.delayMs ?? s.delayMaxMs, 'only with action delay');
      statusName = s.status === undefined ? 'ioerr' : String(s.status);
      if (typeof s.status !== 'undefined' && typeof s.status !== 'string') throw field('status', s.status, 'must be a status name');
      if (!(statusName in FAULT_STATUSES)) throw field('status', s.status, `must be one of ${Object.keys(FAULT_STATUSES).join(', ')}`);
      status = FAULT_STATUSES[statusName];
    } else {
      if (s.status !== undefined) throw field('status', s.status, 'only with action error');
      if (s.delayMs === undefined) throw field('delayMs', undefined, 'a delay rule needs delayMs');
      delayMs = nonNegInt('delayMs', s.delayMs, MAX_DELAY_MS);
      delayMaxMs = s.delayMaxMs === undefined ? delayMs : nonNegInt('delayMaxMs', s.delayMaxMs, MAX_DELAY_MS);
      if (delayMaxMs < delayMs) throw field('delayMaxMs', delayMaxMs, `must be at least delayMs ${delayMs}`);
    }
    let count = Infinity;
    if (s.once !== undefined) {
      if (typeof s.once !== 'boolean') throw field('once', s.once, 'must be true or false');
      if (s.once && s.count !== undefined) throw field('count', s.count, 'give count or once, not both');
      if (s.once) count = 1;
    }
    if (s.count !== undefined) {
      count = nonNegInt('count', s.count);
      if (count === 0) throw field('count', 0, 'must be at least 1');
    }
    let probability = 1;
    if (s.probability !== undefined) {
      const p = s.probability;
      if (typeof p !== 'number' || !(p > 0 && p <= 1)) throw field('probability', p, 'must be a number in (0, 1]');
      probability = p;
    }
    const after = s.after === undefined ? 0 : nonNegInt('after', s.after);
    const seed = s.seed === undefined ? randomInt(0, 2 ** 31) : nonNegInt('seed', s.seed, 2 ** 32 - 1);
    const rule: Rule = {
      id: this.nextId++, op: op as FaultOp, opMask: op === 'any' ? 63 : OP_BIT[op as Exclude<FaultOp, 'any'>],
      start, end, ranged, action, status, statusName, delayMs, delayMaxMs, count, probability, after, seed,
      rng: new Rng(seed), matched: 0, fired: 0,
    };
    this.rules.push(rule);
    this.armed = true;
    return view(rule);
  }

  list(): FaultRuleView[] { return this.rules.map(view); }

  /** Remove one rule; false if there is none with that id. */
  remove(id: number): boolean {
    const i = this.rules.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.rules.splice(i, 1);
    this.rearm();
    return true;
  }

  /** Remove every rule; returns how many there were. */
  clear(): number {
    const n = this.rules.length;
    this.rules.length = 0;
    this.armed = false;
    return n;
  }

  get liveRules(): number { return this.rules.filter(live).length; }

  /**
   * The first live rule matching this request decides it: true with `decision` filled in,
   * false to run the request normally. Counts a match for every rule it overlaps.
   */
  decide(type: number, sector: number, nsectors: number): boolean {
    const bit = opBitOf(type);
    if (bit === 0) return false;
    const last = nsectors > 0 ? sector + nsectors : sector + 1;
    let fired: Rule | null = null;
    for (const r of this.rules) {
      if ((r.opMask & bit) === 0 || r.fired >= r.count) continue;
      if (r.ranged && (last <= r.start || sector >= r.end)) continue;
      r.matched++;
      if (fired || r.matched <= r.after) continue;
      if (r.probability < 1 && r.rng.next() >= r.probability) continue;
      r.fired++;
      fired = r;
    }
    if (!fired) return false;
    const d = this.decision;
    d.rule = fired.id;
    d.first = fired.fired === 1;
    d.status = fired.action === 'error' ? fired.status : -1;
    d.delayMs = fired.action === 'delay' ? fired.delayMs + Math.floor(fired.rng.next() * (fired.delayMaxMs - fired.delayMs + 1)) : 0;
    if (fired.fired >= fired.count) this.rearm();
    return true;
  }

  /** Run `run` after ms, unless released earlier (front-end leaving, power cut). */
  delay(ms: number, run: () => void): void {
    const entry = { timer: setTimeout(() => { this.pending.delete(entry); run(); }, ms), run };
    this.pending.add(entry);
  }

  get delayedRequests(): number { return this.pending.size; }

  /** Run every delayed request now (the front-end is leaving: nobody waits for the delay any more). */
  releaseDelays(): void {
    const all = [...this.pending];
    this.pending.clear();
    for (const e of all) { clearTimeout(e.timer); e.run(); }
  }

  private rearm(): void { this.armed = this.rules.some(live); }
}

const live = (r: Rule): boolean => r.fired < r.count;

function view(r: Rule): FaultRuleView {
  return {
    id: r.id, op: r.op, range: r.ranged ? { start: r.start, end: r.end } : null, action: r.action,
    status: r.statusName, delayMs: r.action === 'delay' ? r.delayMs : null, delayMaxMs: r.action === 'delay' ? r.delayMaxMs : null,
    count: Number.isFinite(r.count) ? r.count : null, probability: r.probability, after: r.after, seed: r.seed,
    matched: r.matched, fired: r.fired, live: live(r),
  };
}
