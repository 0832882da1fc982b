// In-flight writes: write-pointer reservation, in-order release, failure propagation and
// rollback, dirty tracking. Contract: beginWrite/beginAppend reserve the wp; completeWrite
// releases tokens in sector order per zone; a failed write fails every LATER in-flight write
// of the zone and, once the zone drains, the wp returns to the durable wp.
import { describe, expect, it } from 'vitest';
import type { ZoneEngine } from '../../src/zoned/zone-engine.js';
import type { PersistedZoneState } from '../../src/zoned/zone-table.js';
import { ZoneOp } from '../../src/zoned/types.js';
import { checkedEngines, mgmt, res, rn, st, w } from './helpers.js';

const ZS = 64;
const S = (z: number): number => z * ZS;

const eng = checkedEngines();

interface Io { token: string; zone: number; sector: number; n: number }

function beginAppend(e: ZoneEngine, zoneStart: number, n: number, token: string): Io {
  const r = e.beginAppend(zoneStart, n, token);
  expect(rn(r)).toBe('OK');
  return { token, zone: e.opZone, sector: e.opSector, n };
}
function beginWrite(e: ZoneEngine, sector: number, n: number, token: string): Io {
  const r = e.beginWrite(sector, n, token);
  expect(rn(r)).toBe('OK');
  expect(e.opSector).toBe(sector);
  return { token, zone: e.opZone, sector, n };
}
/** Complete one I/O; returns what was released as [token, resultName] pairs. */
function complete(e: ZoneEngine, io: Io, ok = true): [unknown, string][] {
  e.completeWrite(io.zone, io.sector, ok);
  return e.releasedTokens.map((t, i) => [t, rn(e.releasedResults[i])]);
}

describe('write pointer reservation', () => {
  it('concurrent appends to one zone get distinct, contiguous sectors in issue order', () => {
    const e = eng();
    const sizes = [8, 1, 16, 3, 8, 5, 2, 7];
    const ios = sizes.map((n, i) => beginAppend(e, S(2), n, `a${i}`));
    let expectAt = S(2);
    for (const io of ios) {
      expect(io.zone).toBe(2);
      expect(io.sector).toBe(expectAt);
      expectAt += io.n;
    }
    expect(e.zoneWp(2)).toBe(expectAt);
    expect(e.persistedWp(2)).toBe(S(2)); // nothing completed yet
    expect(st(e, 2).cond).toBe('IMP_OPEN');
    expect(e.zoneIdle(2)).toBe(false);
    expect(e.idle).toBe(false);
  });

  it('a regular write at the reserved wp may be queued behind in-flight appends', () => {
    const e = eng();
    const a = beginAppend(e, S(1), 8, 'a');
    const b = beginWrite(e, S(1) + 8, 8, 'b');
    expect(rn(e.beginWrite(S(1) + 8, 8, 'dup'))).toBe('UNALIGNED_WP');
    expect(e.zoneWp(1)).toBe(S(1) + 16);
    expect(complete(e, a)).toEqual([['a', 'OK']]);
    expect(complete(e, b)).toEqual([['b', 'OK']]);
  });

  it('appends reserving the last sectors make the zone FULL at once; further appends are refused', () => {
    const e = eng();
    const ios = [0, 1, 2, 3].map((i) => beginAppend(e, S(1), 16, `a${i}`));
    expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
    expect(rn(e.beginAppend(S(1), 8, 'x'))).toBe('INVALID');
    for (const io of ios) complete(e, io);
    expect(e.persistedWp(1)).toBe(S(2));
  });

  it('conventional-zone writes are not tracked (opZone -1) and need no completion', () => {
    const e = eng({ conv: 1 });
    expect(rn(e.beginWrite(8, 8, 't'))).toBe('OK');
    expect(e.opZone).toBe(-1);
    expect(e.idle).toBe(true);
  });
});

describe('in-order release', () => {
  it('out-of-order completion releases tokens only in sector order', () => {
    const e = eng();
    const ios = [0, 1, 2, 3].map((i) => beginAppend(e, S(1), 8, `t${i}`));
    expect(complete(e, ios[2])).toEqual([]);
    expect(e.persistedWp(1)).toBe(S(1));
    expect(complete(e, ios[3])).toEqual([]);
    expect(e.persistedWp(1)).toBe(S(1));
    expect(complete(e, ios[0])).toEqual([['t0', 'OK']]);
    expect(e.persistedWp(1)).toBe(S(1) + 8);
    expect(complete(e, ios[1])).toEqual([['t1', 'OK'], ['t2', 'OK'], ['t3', 'OK']]);
    expect(e.persistedWp(1)).toBe(S(1) + 32);
    expect(e.zoneIdle(1)).toBe(true);
  });

  it('persistedWp advances only over the completed prefix (reverse completion)', () => {
    const e = eng();
    const ios = [0, 1, 2, 3, 4].map((i) => beginAppend(e, S(3), 4, `t${i}`));
    for (let i = 4; i >= 1; i--) {
      expect(complete(e, ios[i])).toEqual([]);
      expect(e.persistedWp(3)).toBe(S(3));
      expect(e.persistedState(3).wp).toBe(S(3));
    }
    expect(complete(e, ios[0]).map(([t]) => t)).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect(e.persistedWp(3)).toBe(S(3) + 20);
  });

  it('zones are independent: a stalled write in one zone does not hold back another zone', () => {
    const e = eng();
    const a0 = beginAppend(e, S(1), 8, 'a0');
    const a1 = beginAppend(e, S(1), 8, 'a1');
    const b0 = beginAppend(e, S(2), 8, 'b0');
    expect(complete(e, a1)).toEqual([]);
    expect(complete(e, b0)).toEqual([['b0', 'OK']]);
    expect(e.persistedWp(2)).toBe(S(2) + 8);
    expect(e.zoneIdle(2)).toBe(true);
    expect(e.zoneIdle(1)).toBe(false);
    expect(complete(e, a0)).toEqual([['a0', 'OK'], ['a1', 'OK']]);
  });

  it('completing a write that is not in flight throws', () => {
    const e = eng();
    const a = beginAppend(e, S(1), 8, 'a');
    expect(() => e.completeWrite(1, S(1) + 8, true)).toThrow();
    complete(e, a);
    expect(() => e.completeWrite(1, S(1), true)).toThrow();
  });

  it('zone management requires the zone idle (throws while writes are in flight)', () => {
    const e = eng();
    const a = beginAppend(e, S(1), 8, 'a');
    expect(() => e.zoneMgmt(ZoneOp.FINISH, S(1))).toThrow();
    expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
    complete(e, a);
    expect(rn(mgmt(e, ZoneOp.FINISH, 1))).toBe('OK');
  });
});

describe('write failure', () => {
  it('a failed write fails every later in-flight write of the zone; earlier completed ones stay OK', () => {
    const e = eng();
    const ios = [0, 1, 2, 3].map((i) => beginAppend(e, S(1), 8, `t${i}`));
    expect(complete(e, ios[0])).toEqual([['t0', 'OK']]);
    expect(complete(e, ios[1], false)).toEqual([['t1', 'IO_ERROR']]);
    expect(complete(e, ios[3], true)).toEqual([]);
    expect(complete(e, ios[2], true)).toEqual([['t2', 'IO_ERROR'], ['t3', 'IO_ERROR']]);
    expect(e.persistedWp(1)).toBe(S(1) + 8);
    expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
  });

  it('an earlier write that completes successfully after a later write failed is still OK', () => {
    // Contract: the failure fails the LATER in-flight writes. t0 precedes the failed t1,
    // its data landed, so it must be acknowledged and the durable wp must include it.
    const e = eng();
    const ios = [0, 1, 2].map((i) => beginAppend(e, S(1), 8, `t${i}`));
    expect(complete(e, ios[1], false)).toEqual([]);
    expect(complete(e, ios[0], true)).toEqual([['t0', 'OK'], ['t1', 'IO_ERROR']]);
    expect(e.persistedWp(1)).toBe(S(1) + 8);
    expect(complete(e, ios[2], true)).toEqual([['t2', 'IO_ERROR']]);
    expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
  });

  it('rollback: once the zone drains the wp returns to the durable wp; the next write there succeeds', () => {
    const e = eng();
    const ios = [0, 1, 2].map((i) => beginAppend(e, S(1), 8, `t${i}`));
    complete(e, ios[0]);
    complete(e, ios[1], false);
    // Still draining: the reserved wp has not been rolled back yet, new writes are refused.
    expect(e.zoneWp(1)).toBe(S(1) + 24);
    expect(rn(e.beginWrite(S(1) + 24, 8, 'late'))).not.toBe('OK');
    expect(rn(e.beginAppend(S(1), 8, 'late'))).not.toBe('OK');
    complete(e, ios[2]);
    expect(e.zoneIdle(1)).toBe(true);
    expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
    expect(rn(w(e, S(1) + 24, 8))).toBe('UNALIGNED_WP'); // the old reserved wp is gone
    expect(rn(w(e, S(1) + 8, 8))).toBe('OK');
    expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
  });

  it('a failure leaves other zones untouched', () => {
    const e = eng();
    const a0 = beginAppend(e, S(1), 8, 'a0');
    const b0 = beginAppend(e, S(2), 8, 'b0');
    const b1 = beginAppend(e, S(2), 8, 'b1');
    expect(complete(e, a0, false)).toEqual([['a0', 'IO_ERROR']]);
    expect(complete(e, b1)).toEqual([]);
    expect(complete(e, b0)).toEqual([['b0', 'OK'], ['b1', 'OK']]);
    expect(st(e, 2)).toEqual({ cond: 'IMP_OPEN', wp: S(2) + 16 });
    expect(e.persistedWp(2)).toBe(S(2) + 16);
    expect(rn(w(e, S(2) + 16, 8))).toBe('OK');
  });

  it('a failed first write of a zone rolls it back to EMPTY and frees its resources', () => {
    const e = eng({ open: 1, active: 1 });
    const a0 = beginAppend(e, S(1), 8, 'a0');
    expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    expect(complete(e, a0, false)).toEqual([['a0', 'IO_ERROR']]);
    expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    expect(rn(w(e, S(2), 8))).toBe('OK');
  });

  it('a failed write that had filled the zone: the zone is no longer FULL and its wp is the durable wp', () => {
    const e = eng();
    const a0 = beginAppend(e, S(1), 32, 'a0');
    const a1 = beginAppend(e, S(1), 32, 'a1');
    expect(st(e, 1).cond).toBe('FULL');
    complete(e, a0);
    expect(complete(e, a1, false)).toEqual([['a1', 'IO_ERROR']]);
    expect(e.zoneWp(1)).toBe(S(1) + 32);
    expect(['CLOSED', 'IMP_OPEN']).toContain(st(e, 1).cond);
    expect(rn(w(e, S(1) + 32, 32))).toBe('OK');
    expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
  });

  it('an explicitly opened zone stays explicitly open after a rollback', () => {
    const e = eng();
    expect(rn(mgmt(e, ZoneOp.OPEN, 1))).toBe('OK');
    const a0 = beginAppend(e, S(1), 8, 'a0');
    complete(e, a0, false);
    expect(st(e, 1)).toEqual({ cond: 'EXP_OPEN', wp: S(1) });
    expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
  });

  it('every later in-flight write fails even if all of them complete successfully before the failing one', () => {
    const e = eng();
    const ios = [0, 1, 2, 3, 4].map((i) => beginAppend(e, S(4), 8, `t${i}`));
    for (const i of [4, 3, 2]) expect(complete(e, ios[i], true)).toEqual([]);
    expect(complete(e, ios[0], true)).toEqual([['t0', 'OK']]);
    expect(complete(e, ios[1], false)).toEqual([['t1', 'IO_ERROR'], ['t2', 'IO_ERROR'], ['t3', 'IO_ERROR'], ['t4', 'IO_ERROR']]);
    expect(st(e, 4)).toEqual({ cond: 'IMP_OPEN', wp: S(4) + 8 });
    expect(e.persistedWp(4)).toBe(S(4) + 8);
  });
});

describe('dirty tracking', () => {
  const snapshot = (e: ZoneEngine): PersistedZoneState[] =>
    Array.from({ length: e.geo.nrZones }, (_, z) => ({ ...e.persistedState(z) }));
  function drain(e: ZoneEngine): number[] {
    const out: number[] = [];
    e.drainDirty((z) => out.push(z));
    return out;
  }
  function changed(a: PersistedZoneState[], b: PersistedZoneState[]): number[] {
    return a.map((s, z) => (JSON.stringify(s) === JSON.stringify(b[z]) ? -1 : z)).filter((z) => z >= 0);
  }

  it('a fresh engine has nothing dirty', () => {
    const e = eng();
    expect(e.hasDirty).toBe(false);
    expect(drain(e)).toEqual([]);
  });

  it('a completed write marks its zone dirty once; draining clears it', () => {
    const e = eng();
    w(e, S(1), 8);
    w(e, S(1) + 8, 8);
    expect(e.hasDirty).toBe(true);
    expect(drain(e)).toEqual([1]);
    expect(e.hasDirty).toBe(false);
    expect(drain(e)).toEqual([]);
  });

  it('a write still in flight (or held behind an earlier one) changes no persisted state', () => {
    const e = eng();
    const a0 = beginAppend(e, S(1), 8, 'a0');
    const a1 = beginAppend(e, S(1), 8, 'a1');
    const before = snapshot(e);
    complete(e, a1);
    expect(changed(before, snapshot(e))).toEqual([]);
    complete(e, a0);
    expect(changed(before, snapshot(e))).toEqual([1]);
    expect(drain(e)).toEqual([1]);
  });

  it('drainDirty reports every zone whose persisted state changed (writes, finish, reset, faults), each once', () => {
    const e = eng({ nr: 10, open: 2 });
    w(e, S(5), 8);
    w(e, S(6), 8);
    drain(e);
    const before = snapshot(e);
    w(e, S(1), 8);
    w(e, S(2), 8); // implicitly closes 5 and 6: their persisted state does not change
    w(e, S(1) + 8, 8);
    mgmt(e, ZoneOp.FINISH, 3);
    mgmt(e, ZoneOp.RESET, 6);
    mgmt(e, ZoneOp.SET_READONLY, 7);
    mgmt(e, ZoneOp.SET_OFFLINE, 8);
    const drained = drain(e);
    const want = changed(before, snapshot(e));
    expect(want).toEqual([1, 2, 3, 6, 7, 8]);
    expect(new Set(drained).size).toBe(drained.length);
    expect([...drained].sort((a, b) => a - b)).toEqual(expect.arrayContaining(want));
    for (const z of drained) expect(z).not.toBe(4);
  });

  it('RESET_ALL marks every zone it reset', () => {
    const e = eng();
    w(e, S(1), 8);
    w(e, S(3), ZS);
    mgmt(e, ZoneOp.OPEN, 5); // EOPEN at wp == start: persisted state unchanged by the reset
    drain(e);
    const before = snapshot(e);
    e.zoneMgmt(ZoneOp.RESET_ALL, 0);
    const drained = drain(e);
    expect([...drained].sort()).toEqual(expect.arrayContaining(changed(before, snapshot(e))));
    expect(changed(before, snapshot(e))).toEqual([1, 3]);
  });

  it('a failed write does not move the persisted wp; the zone rolled back is consistent with it', () => {
    const e = eng();
    w(e, S(1), 8);
    drain(e);
    const a = beginAppend(e, S(1), 8, 'a');
    complete(e, a, false);
    expect(e.persistedState(1)).toEqual({ wp: S(1) + 8, dataEnd: S(1) + 8, flags: 0 });
    expect(e.zoneWp(1)).toBe(S(1) + 8);
  });

  it('finish persists wp at the capacity end and the data end at the old wp', () => {
    const e = eng({ cap: 48 });
    w(e, S(1), 8);
    mgmt(e, ZoneOp.FINISH, 1);
    expect(e.persistedState(1)).toEqual({ wp: S(1) + 48, dataEnd: S(1) + 8, flags: 0 });
    expect(drain(e)).toEqual([1]);
  });
});

