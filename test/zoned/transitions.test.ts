// Zone state machine conformance: every row of spec §1.6 and device requirements §1.7 items 5-17.
// Expectations come from the spec text; where the spec is silent the project contract
// (null_blk-like, §6.2) is stated in the test name.
import { describe, expect, it } from 'vitest';
import type { ZoneEngine } from '../../src/zoned/zone-engine.js';
import { makeGeometry } from '../../src/zoned/geometry.js';
import { ZoneEngine as Engine } from '../../src/zoned/zone-engine.js';
import { ZoneCond, ZoneOp, ZoneResult, ZoneType } from '../../src/zoned/types.js';
import { ap, checkedEngines, mgmt, report, res, rn, st, w } from './helpers.js';

const ZS = 64; // zone size used by mk() by default
const S = (z: number): number => z * ZS;

// Every engine built in a test is checked for internal consistency afterwards.
const eng = checkedEngines();

const R = (r: ZoneResult): string => rn(r);
const OK = 'OK', INVALID = 'INVALID', UNALIGNED = 'UNALIGNED_WP', OPEN_RES = 'OPEN_RESOURCE', ACTIVE_RES = 'ACTIVE_RESOURCE';

/** Zone z implicitly opened by a write of n sectors at its start. */
function iopen(e: ZoneEngine, z: number, n = 8): void {
  expect(R(w(e, e.zoneWp(z), n))).toBe(OK);
  expect(st(e, z).cond).toBe('IMP_OPEN');
}
function eopen(e: ZoneEngine, z: number): void {
  expect(R(mgmt(e, ZoneOp.OPEN, z))).toBe(OK);
  expect(st(e, z).cond).toBe('EXP_OPEN');
}
function closed(e: ZoneEngine, z: number, n = 8): void {
  iopen(e, z, n);
  expect(R(mgmt(e, ZoneOp.CLOSE, z))).toBe(OK);
  expect(st(e, z).cond).toBe('CLOSED');
}
function full(e: ZoneEngine, z: number): void {
  expect(R(w(e, e.zoneWp(z), e.zoneStart(z) + e.zoneCap(z) - e.zoneWp(z)))).toBe(OK);
  expect(st(e, z).cond).toBe('FULL');
}

describe('§1.6 transition table', () => {
  describe('from EMPTY', () => {
    it('EMPTY + OUT (non-zero) -> IOPEN, wp advanced, open 1 active 1', () => {
      const e = eng();
      expect(R(w(e, S(1), 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('EMPTY + ZONE_APPEND (non-zero) -> IOPEN, lands at the zone start', () => {
      const e = eng();
      const a = ap(e, S(2), 16);
      expect(R(a.r)).toBe(OK);
      expect(a.sector).toBe(S(2));
      expect(st(e, 2)).toEqual({ cond: 'IMP_OPEN', wp: S(2) + 16 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('EMPTY + OUT filling the whole capacity -> FULL (through IOPEN), no resources held', () => {
      const e = eng();
      expect(R(w(e, S(1), ZS))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + ZONE_APPEND filling the capacity -> FULL', () => {
      const e = eng({ cap: 32 });
      expect(R(ap(e, S(1), 32).r)).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(1) + 32 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + zero-length OUT does not open the zone', () => {
      const e = eng();
      expect(R(w(e, S(1), 0))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + zero-length ZONE_APPEND does not open the zone', () => {
      const e = eng();
      expect(R(ap(e, S(1), 0).r)).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + ZONE_OPEN -> EOPEN, open 1 active 1', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(OK);
      expect(st(e, 3)).toEqual({ cond: 'EXP_OPEN', wp: S(3) });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('EMPTY + ZONE_RESET -> stays EMPTY, success', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.RESET, 3))).toBe(OK);
      expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + ZONE_CLOSE is not a listed transition -> INVALID, unchanged', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.CLOSE, 3))).toBe(INVALID);
      expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EMPTY + ZONE_FINISH -> FULL, wp at capacity end (allowed per §1.6 note)', () => {
      const e = eng({ cap: 48 });
      expect(R(mgmt(e, ZoneOp.FINISH, 3))).toBe(OK);
      expect(st(e, 3)).toEqual({ cond: 'FULL', wp: S(3) + 48 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });
  });

  describe('from IOPEN', () => {
    it('IOPEN + ZONE_RESET -> EMPTY, wp = start, resources released', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.RESET, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('IOPEN + ZONE_RESET_ALL -> EMPTY', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('IOPEN + ZONE_OPEN -> EOPEN, counted once, wp kept', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EXP_OPEN', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
      expect(e.implicitOpenZones).toBe(0);
      expect(e.explicitOpenZones).toBe(1);
    });

    it('IOPEN + ZONE_OPEN at the open limit succeeds (no new resource needed)', () => {
      const e = eng({ open: 1 });
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(OK);
      expect(st(e, 1).cond).toBe('EXP_OPEN');
    });

    it('IOPEN + ZONE_CLOSE (wp > start) -> CLOSED, open 0 active 1 closed 1', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
    });

    it('IOPEN + ZONE_FINISH -> FULL, wp at capacity end, resources released', () => {
      const e = eng({ cap: 40 });
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(1) + 40 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('IOPEN + OUT reaching capacity -> FULL', () => {
      const e = eng({ cap: 40 });
      iopen(e, 1);
      expect(R(w(e, S(1) + 8, 32))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(1) + 40 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('IOPEN + ZONE_APPEND reaching capacity -> FULL', () => {
      const e = eng({ cap: 40 });
      iopen(e, 1);
      const a = ap(e, S(1), 32);
      expect(R(a.r)).toBe(OK);
      expect(a.sector).toBe(S(1) + 8);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(1) + 40 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('IOPEN + OUT not reaching capacity stays IOPEN', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(w(e, S(1) + 8, 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('IOPEN implicitly closed when another zone must open at max_open -> CLOSED', () => {
      const e = eng({ open: 1 });
      iopen(e, 1);
      expect(R(w(e, S(2), 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(st(e, 2)).toEqual({ cond: 'IMP_OPEN', wp: S(2) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 2, closed: 1 });
    });
  });

  describe('from EOPEN', () => {
    it('EOPEN + ZONE_RESET -> EMPTY', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(w(e, S(1), 8))).toBe(OK);
      expect(R(mgmt(e, ZoneOp.RESET, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + ZONE_RESET_ALL -> EMPTY', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + ZONE_CLOSE with wp == start -> EMPTY, resources released', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + ZONE_CLOSE with wp > start -> CLOSED', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(w(e, S(1), 8))).toBe(OK);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
    });

    it('EOPEN + ZONE_FINISH -> FULL', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + OUT reaching capacity -> FULL', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(w(e, S(1), ZS))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + ZONE_APPEND reaching capacity -> FULL', () => {
      const e = eng({ cap: 32 });
      eopen(e, 1);
      expect(R(ap(e, S(1), 32).r)).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(1) + 32 });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('EOPEN + ZONE_OPEN -> stays EOPEN, success, counters unchanged', () => {
      const e = eng({ open: 1 });
      eopen(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EXP_OPEN', wp: S(1) });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('EOPEN + OUT (not reaching capacity) stays EOPEN (does not become IOPEN)', () => {
      const e = eng();
      eopen(e, 1);
      expect(R(w(e, S(1), 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EXP_OPEN', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
      expect(e.explicitOpenZones).toBe(1);
    });
  });

  describe('from CLOSED', () => {
    it('CLOSED + ZONE_RESET -> EMPTY', () => {
      const e = eng();
      closed(e, 1);
      expect(R(mgmt(e, ZoneOp.RESET, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('CLOSED + ZONE_RESET_ALL -> EMPTY', () => {
      const e = eng();
      closed(e, 1);
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('CLOSED + OUT at wp -> IOPEN', () => {
      const e = eng();
      closed(e, 1);
      expect(R(w(e, S(1) + 8, 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('CLOSED + ZONE_APPEND -> IOPEN, lands at wp', () => {
      const e = eng();
      closed(e, 1);
      const a = ap(e, S(1), 8);
      expect(R(a.r)).toBe(OK);
      expect(a.sector).toBe(S(1) + 8);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('CLOSED + OUT filling the zone -> FULL', () => {
      const e = eng();
      closed(e, 1);
      expect(R(w(e, S(1) + 8, ZS - 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('CLOSED + ZONE_OPEN -> EOPEN', () => {
      const e = eng();
      closed(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EXP_OPEN', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('CLOSED + ZONE_CLOSE -> stays CLOSED, success', () => {
      const e = eng();
      closed(e, 1);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
    });

    it('CLOSED + ZONE_FINISH -> FULL, active and closed released', () => {
      const e = eng();
      closed(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });
  });

  describe('from FULL', () => {
    it('FULL + ZONE_RESET -> EMPTY', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.RESET, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('FULL + ZONE_RESET_ALL -> EMPTY', () => {
      const e = eng();
      full(e, 1);
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });

    it('FULL + ZONE_FINISH -> stays FULL, success', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('FULL + ZONE_OPEN is not listed -> INVALID, unchanged', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('FULL + ZONE_CLOSE is not listed -> INVALID, unchanged', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
    });

    it('FULL + OUT -> INVALID, unchanged', () => {
      const e = eng();
      full(e, 1);
      expect(R(w(e, S(2) - 8, 8))).not.toBe(OK);
      expect(R(w(e, S(1) + 8, 8))).not.toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
    });

    it('FULL + ZONE_APPEND -> INVALID, unchanged', () => {
      const e = eng();
      full(e, 1);
      expect(R(ap(e, S(1), 8).r)).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
    });
  });

  describe('device-internal failure: RDONLY / OFFLINE', () => {
    it('any condition -> RDONLY by fault injection; open resources released', () => {
      const e = eng();
      iopen(e, 1);
      eopen(e, 2);
      closed(e, 3);
      for (const z of [1, 2, 3, 4]) expect(R(mgmt(e, ZoneOp.SET_READONLY, z))).toBe(OK);
      for (const z of [1, 2, 3, 4]) expect(st(e, z).cond).toBe('READONLY');
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('any condition -> OFFLINE by fault injection; resources released', () => {
      const e = eng();
      iopen(e, 1);
      eopen(e, 2);
      closed(e, 3);
      full(e, 5);
      for (const z of [1, 2, 3, 4, 5]) expect(R(mgmt(e, ZoneOp.SET_OFFLINE, z))).toBe(OK);
      for (const z of [1, 2, 3, 4, 5]) expect(st(e, z).cond).toBe('OFFLINE');
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('RDONLY -> OFFLINE is allowed', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.SET_READONLY, 1))).toBe(OK);
      expect(R(mgmt(e, ZoneOp.SET_OFFLINE, 1))).toBe(OK);
      expect(st(e, 1).cond).toBe('OFFLINE');
    });

    it('OFFLINE is terminal: SET_READONLY is refused and the zone stays OFFLINE', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.SET_OFFLINE, 1))).toBe(OK);
      expect(R(mgmt(e, ZoneOp.SET_READONLY, 1))).not.toBe(OK);
      expect(st(e, 1).cond).toBe('OFFLINE');
    });

    it.each([
      ['OPEN', ZoneOp.OPEN], ['CLOSE', ZoneOp.CLOSE], ['FINISH', ZoneOp.FINISH], ['RESET', ZoneOp.RESET],
    ] as const)('OFFLINE is terminal: ZONE_%s -> INVALID, stays OFFLINE', (_n, op) => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.SET_OFFLINE, 1))).toBe(OK);
      expect(R(mgmt(e, op, 1))).toBe(INVALID);
      expect(st(e, 1).cond).toBe('OFFLINE');
    });

    it.each([
      ['OPEN', ZoneOp.OPEN], ['CLOSE', ZoneOp.CLOSE], ['FINISH', ZoneOp.FINISH], ['RESET', ZoneOp.RESET],
    ] as const)('RDONLY: ZONE_%s -> INVALID, stays RDONLY', (_n, op) => {
      const e = eng();
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.SET_READONLY, 1))).toBe(OK);
      expect(R(mgmt(e, op, 1))).toBe(INVALID);
      expect(st(e, 1).cond).toBe('READONLY');
    });

    it('fault flags are reported by zoneFlags and persistedState', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      mgmt(e, ZoneOp.SET_OFFLINE, 2);
      expect(e.zoneFlags(1) & 1).toBe(1);
      expect(e.zoneFlags(2) & 2).toBe(2);
      expect(e.persistedState(1).flags & 1).toBe(1);
      expect(e.persistedState(2).flags & 2).toBe(2);
    });

    it('fault injection on a conventional zone is refused', () => {
      const e = eng({ conv: 1 });
      expect(R(mgmt(e, ZoneOp.SET_READONLY, 0))).not.toBe(OK);
      expect(st(e, 0).cond).toBe('NOT_WP');
      expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, 0))).toBe(INVALID);
    });
  });

  describe('CLEAR_FAULT (the emulation\'s, no drive has it)', () => {
    it('RDONLY -> the condition its write pointer says: EMPTY, CLOSED (also when it was open) or FULL; data kept', () => {
      const e = eng({ cap: 48 });
      iopen(e, 1);
      eopen(e, 2);
      full(e, 3);
      for (const z of [1, 2, 3, 4]) mgmt(e, ZoneOp.SET_READONLY, z);
      for (const z of [1, 2, 3, 4]) expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, z))).toBe(OK);
      expect([1, 2, 3, 4].map((z) => st(e, z))).toEqual([
        // Zone 2 was explicitly opened at its start: without data it comes back EMPTY.
        { cond: 'CLOSED', wp: S(1) + 8 }, { cond: 'EMPTY', wp: S(2) }, { cond: 'FULL', wp: S(3) + 48 }, { cond: 'EMPTY', wp: S(4) },
      ]);
      expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
      expect(e.persistedState(1)).toEqual({ wp: S(1) + 8, dataEnd: S(1) + 8, flags: 0 });
      expect(R(w(e, S(1) + 8, 8))).toBe(OK);
      expect(e.checkRead(S(3), 48)).toBe(ZoneResult.OK);
      expect(e.readDataSectors).toBe(48);
    });

    it('OFFLINE (also over RDONLY) -> EMPTY, write pointer and data gone, flags cleared', () => {
      const e = eng();
      iopen(e, 1);
      closed(e, 2);
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      mgmt(e, ZoneOp.SET_READONLY, 2);
      mgmt(e, ZoneOp.SET_OFFLINE, 2);
      for (const z of [1, 2]) {
        expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, z))).toBe(OK);
        expect(st(e, z)).toEqual({ cond: 'EMPTY', wp: S(z) });
        expect(e.persistedState(z)).toEqual({ wp: S(z), dataEnd: S(z), flags: 0 });
      }
      expect(e.checkRead(S(1), 8)).toBe(ZoneResult.OK);
      expect(e.readDataSectors).toBe(0);
      expect(R(w(e, S(1), 8))).toBe(OK);
    });

    it('a zone without a fault: OK, nothing changes', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, 1))).toBe(OK);
      expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, 2))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('a read-only zone that would come back CLOSED needs an active resource: ACTIVE_RESOURCE, stays RDONLY', () => {
      const e = eng({ active: 2 });
      closed(e, 1);
      mgmt(e, ZoneOp.SET_READONLY, 1);
      closed(e, 2);
      closed(e, 3);
      expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, 1))).toBe(ACTIVE_RES);
      expect(st(e, 1).cond).toBe('READONLY');
      mgmt(e, ZoneOp.RESET, 3);
      expect(R(mgmt(e, ZoneOp.CLEAR_FAULT, 1))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
    });

    it('clearing marks the zone dirty (the flags are persistent)', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      e.drainDirty(() => undefined);
      mgmt(e, ZoneOp.CLEAR_FAULT, 1);
      const dirty: number[] = [];
      e.drainDirty((z) => dirty.push(z));
      expect(dirty).toEqual([1]);
    });
  });
});

describe('§1.6 resource accounting', () => {
  it('ACTIVE wins when both the open and the active limit block (write to EMPTY)', () => {
    const e = eng({ open: 2, active: 2 });
    eopen(e, 1);
    eopen(e, 2);
    expect(R(w(e, S(3), 8))).toBe(ACTIVE_RES);
    expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
    expect(res(e)).toEqual({ open: 2, active: 2, closed: 0 });
  });

  it('ACTIVE wins when both limits block (ZONE_OPEN of EMPTY)', () => {
    const e = eng({ open: 2, active: 2 });
    eopen(e, 1);
    eopen(e, 2);
    expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(ACTIVE_RES);
    expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
  });

  it('ACTIVE wins even when an IOPEN zone could be implicitly closed (closing frees no active resource)', () => {
    const e = eng({ open: 2, active: 2 });
    iopen(e, 1);
    iopen(e, 2);
    expect(R(w(e, S(3), 8))).toBe(ACTIVE_RES);
    expect(st(e, 1).cond).toBe('IMP_OPEN');
    expect(st(e, 2).cond).toBe('IMP_OPEN');
    expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
    expect(res(e)).toEqual({ open: 2, active: 2, closed: 0 });
  });

  it('active limit alone: CLOSED zones hold active resources, write to EMPTY -> ACTIVE_RESOURCE', () => {
    const e = eng({ active: 2 });
    closed(e, 1);
    closed(e, 2);
    expect(res(e)).toEqual({ open: 0, active: 2, closed: 2 });
    expect(R(w(e, S(3), 8))).toBe(ACTIVE_RES);
    expect(R(ap(e, S(3), 8).r)).toBe(ACTIVE_RES);
    expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
  });

  it('open limit alone with only explicitly open zones: write to EMPTY -> OPEN_RESOURCE', () => {
    const e = eng({ open: 2 });
    eopen(e, 1);
    eopen(e, 2);
    expect(R(w(e, S(3), 8))).toBe(OPEN_RES);
    expect(R(ap(e, S(3), 8).r)).toBe(OPEN_RES);
    expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
    expect(res(e)).toEqual({ open: 2, active: 2, closed: 0 });
  });

  it('closing a zone frees its open resource but keeps the active one', () => {
    const e = eng({ open: 1, active: 2 });
    eopen(e, 1);
    expect(R(w(e, S(1), 8))).toBe(OK);
    expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(OK);
    expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
    eopen(e, 2);
    expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(ACTIVE_RES);
  });

  it('finishing or resetting releases the resources so a blocked open succeeds', () => {
    const e = eng({ open: 1, active: 1 });
    eopen(e, 1);
    expect(R(mgmt(e, ZoneOp.OPEN, 2))).toBe(ACTIVE_RES);
    expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
    expect(R(mgmt(e, ZoneOp.OPEN, 2))).toBe(OK);
    expect(R(mgmt(e, ZoneOp.RESET, 2))).toBe(OK);
    expect(R(w(e, S(3), 8))).toBe(OK);
  });
});

describe('§1.7 device requirements', () => {
  describe('item 5: zone management on a conventional zone -> ZONE_INVALID_CMD', () => {
    it.each([
      ['OPEN', ZoneOp.OPEN], ['CLOSE', ZoneOp.CLOSE], ['FINISH', ZoneOp.FINISH], ['RESET', ZoneOp.RESET],
    ] as const)('ZONE_%s on a conventional zone -> INVALID', (_n, op) => {
      const e = eng({ conv: 2 });
      expect(R(mgmt(e, op, 1))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'NOT_WP', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });
  });

  describe('item 6: ZONE_APPEND to a non-SWR zone', () => {
    it('append to a conventional zone -> INVALID', () => {
      const e = eng({ conv: 2 });
      expect(R(ap(e, S(0), 8).r)).toBe(INVALID);
      expect(R(ap(e, S(1), 8).r)).toBe(INVALID);
    });
  });

  describe('item 7: ZONE_APPEND sector not the zone start', () => {
    it('append at a sector inside the zone -> INVALID', () => {
      const e = eng();
      expect(R(ap(e, S(1) + 8, 8).r)).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });

    it('append at the current wp (not the zone start) -> INVALID', () => {
      const e = eng();
      iopen(e, 1);
      expect(R(ap(e, S(1) + 8, 8).r)).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 8 });
    });
  });

  describe('item 8: ZONE_OPEN', () => {
    it('impossible transition (FULL) -> INVALID', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(INVALID);
    });

    it('insufficient open resources, only explicit opens -> OPEN_RESOURCE, state unchanged', () => {
      const e = eng({ open: 2 });
      eopen(e, 1);
      eopen(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(OPEN_RES);
      expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
      expect(res(e)).toEqual({ open: 2, active: 2, closed: 0 });
    });

    it('CLOSED zone, open limit full of explicit opens -> OPEN_RESOURCE, stays CLOSED', () => {
      const e = eng({ open: 2 });
      closed(e, 3);
      eopen(e, 1);
      eopen(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(OPEN_RES);
      expect(st(e, 3)).toEqual({ cond: 'CLOSED', wp: S(3) + 8 });
      expect(res(e)).toEqual({ open: 2, active: 3, closed: 1 });
    });

    it('insufficient active resources -> ACTIVE_RESOURCE, state unchanged', () => {
      const e = eng({ active: 2 });
      closed(e, 1);
      eopen(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(ACTIVE_RES);
      expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
      expect(res(e)).toEqual({ open: 1, active: 2, closed: 1 });
    });

    it('CLOSED zone at the active limit can be opened (it already holds an active resource)', () => {
      const e = eng({ active: 2 });
      closed(e, 1);
      closed(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 1))).toBe(OK);
      expect(res(e)).toEqual({ open: 1, active: 2, closed: 1 });
    });

    it('explicit open at the open limit implicitly closes an IOPEN zone (§1.6: another zone must become EOPEN)', () => {
      const e = eng({ open: 2 });
      iopen(e, 1);
      eopen(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 3))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(st(e, 2).cond).toBe('EXP_OPEN');
      expect(st(e, 3).cond).toBe('EXP_OPEN');
      expect(res(e)).toEqual({ open: 2, active: 3, closed: 1 });
    });
  });

  describe('item 9: impossible CLOSE / FINISH / RESET -> INVALID, state unchanged', () => {
    it('CLOSE of EMPTY -> INVALID', () => {
      const e = eng();
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });
    it('CLOSE of FULL -> INVALID', () => {
      const e = eng();
      full(e, 1);
      expect(R(mgmt(e, ZoneOp.CLOSE, 1))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'FULL', wp: S(2) });
    });
    it('FINISH of RDONLY -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(INVALID);
      expect(st(e, 1).cond).toBe('READONLY');
    });
    it('RESET of OFFLINE -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(mgmt(e, ZoneOp.RESET, 1))).toBe(INVALID);
      expect(st(e, 1).cond).toBe('OFFLINE');
    });
    it('FINISH of EMPTY at the active limit -> ACTIVE_RESOURCE (needs resources, §6.2), unchanged', () => {
      const e = eng({ active: 1 });
      closed(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 2))).toBe(ACTIVE_RES);
      expect(st(e, 2)).toEqual({ cond: 'EMPTY', wp: S(2) });
      expect(res(e)).toEqual({ open: 0, active: 1, closed: 1 });
    });
    it('FINISH of EMPTY at the open limit with only explicit opens -> OPEN_RESOURCE, unchanged', () => {
      const e = eng({ open: 1 });
      eopen(e, 1);
      expect(R(mgmt(e, ZoneOp.FINISH, 2))).toBe(OPEN_RES);
      expect(st(e, 2)).toEqual({ cond: 'EMPTY', wp: S(2) });
    });
  });

  describe('item 10: ZONE_RESET_ALL', () => {
    it('resets IOPEN, EOPEN, CLOSED and FULL; leaves EMPTY, RDONLY, OFFLINE and conventional alone', () => {
      const e = eng({ nr: 10, conv: 2 });
      iopen(e, 2);
      eopen(e, 3);
      closed(e, 4);
      full(e, 5);
      iopen(e, 6, 16);
      mgmt(e, ZoneOp.SET_READONLY, 6);
      iopen(e, 7, 24);
      mgmt(e, ZoneOp.SET_OFFLINE, 7);
      const wp6 = e.zoneWp(6);
      // The sector is unused (driver sends 0); a nonzero one must not matter.
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, S(5) + 3))).toBe(OK);
      expect([2, 3, 4, 5, 8, 9].map((z) => st(e, z))).toEqual([2, 3, 4, 5, 8, 9].map((z) => ({ cond: 'EMPTY', wp: S(z) })));
      expect(st(e, 0)).toEqual({ cond: 'NOT_WP', wp: S(1) });
      expect(st(e, 1)).toEqual({ cond: 'NOT_WP', wp: S(2) });
      expect(st(e, 6).cond).toBe('READONLY');
      expect(e.zoneWp(6)).toBe(wp6);
      expect(st(e, 7).cond).toBe('OFFLINE');
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('with every zone EMPTY is a successful no-op', () => {
      const e = eng();
      expect(R(e.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe(OK);
      for (let z = 0; z < 8; z++) expect(st(e, z)).toEqual({ cond: 'EMPTY', wp: S(z) });
    });
  });

  describe('item 11: implicit open of EMPTY/CLOSED, implicit close of IOPEN', () => {
    it('write to EMPTY at the open limit implicitly closes the IOPEN zone', () => {
      const e = eng({ open: 2 });
      iopen(e, 1);
      iopen(e, 2);
      expect(R(w(e, S(3), 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
      expect(st(e, 2).cond).toBe('IMP_OPEN');
      expect(st(e, 3).cond).toBe('IMP_OPEN');
      expect(res(e)).toEqual({ open: 2, active: 3, closed: 1 });
    });

    it('append to EMPTY at the open limit implicitly closes the IOPEN zone', () => {
      const e = eng({ open: 1 });
      iopen(e, 1);
      expect(R(ap(e, S(2), 8).r)).toBe(OK);
      expect(st(e, 1).cond).toBe('CLOSED');
      expect(st(e, 2).cond).toBe('IMP_OPEN');
    });

    it('implicit close picks the least recently written IOPEN zone, in order over several zones', () => {
      const e = eng({ nr: 8, open: 3 });
      iopen(e, 1);
      iopen(e, 2);
      iopen(e, 3);
      // Victims must come out in write order 1, 2, 3.
      expect(R(w(e, S(4), 8))).toBe(OK);
      expect([1, 2, 3, 4].map((z) => st(e, z).cond)).toEqual(['CLOSED', 'IMP_OPEN', 'IMP_OPEN', 'IMP_OPEN']);
      expect(R(w(e, S(5), 8))).toBe(OK);
      expect([2, 3, 4, 5].map((z) => st(e, z).cond)).toEqual(['CLOSED', 'IMP_OPEN', 'IMP_OPEN', 'IMP_OPEN']);
      expect(R(w(e, S(6), 8))).toBe(OK);
      expect([3, 4, 5, 6].map((z) => st(e, z).cond)).toEqual(['CLOSED', 'IMP_OPEN', 'IMP_OPEN', 'IMP_OPEN']);
      expect(res(e)).toEqual({ open: 3, active: 6, closed: 3 });
    });

    it('writing to an IOPEN zone refreshes its LRU position', () => {
      const e = eng({ nr: 8, open: 3 });
      iopen(e, 1);
      iopen(e, 2);
      iopen(e, 3);
      expect(R(w(e, e.zoneWp(1), 8))).toBe(OK); // 1 becomes most recent: order 2, 3, 1
      expect(R(w(e, S(4), 8))).toBe(OK);
      expect(st(e, 2).cond).toBe('CLOSED');
      expect(st(e, 1).cond).toBe('IMP_OPEN');
      expect(R(ap(e, S(3), 8).r)).toBe(OK); // append refreshes too: order 1, 4, 3
      expect(R(w(e, S(5), 8))).toBe(OK);
      expect(st(e, 1).cond).toBe('CLOSED');
      expect(st(e, 3).cond).toBe('IMP_OPEN');
      expect(st(e, 4).cond).toBe('IMP_OPEN');
      expect(R(w(e, S(6), 8))).toBe(OK);
      expect(st(e, 4).cond).toBe('CLOSED');
      expect(st(e, 3).cond).toBe('IMP_OPEN');
    });

    it('a CLOSED zone reopened by a write becomes the most recently written', () => {
      const e = eng({ nr: 8, open: 2 });
      iopen(e, 1);
      iopen(e, 2);
      expect(R(w(e, S(3), 8))).toBe(OK); // closes 1; order 2, 3
      expect(R(w(e, e.zoneWp(1), 8))).toBe(OK); // reopens 1, closes 2; order 3, 1
      expect(st(e, 2).cond).toBe('CLOSED');
      expect(R(w(e, S(4), 8))).toBe(OK); // closes 3
      expect(st(e, 3).cond).toBe('CLOSED');
      expect(st(e, 1).cond).toBe('IMP_OPEN');
    });

    it('explicitly opened zones are never implicitly closed: all open zones explicit -> OPEN_RESOURCE', () => {
      const e = eng({ open: 2 });
      eopen(e, 1);
      iopen(e, 2);
      expect(R(mgmt(e, ZoneOp.OPEN, 2))).toBe(OK); // 2: IOPEN -> EOPEN
      expect(R(w(e, S(3), 8))).toBe(OPEN_RES);
      expect(st(e, 1).cond).toBe('EXP_OPEN');
      expect(st(e, 2).cond).toBe('EXP_OPEN');
      expect(st(e, 3)).toEqual({ cond: 'EMPTY', wp: S(3) });
    });

    it('with mixed explicit and implicit opens only the IOPEN zone is closed, even if the EOPEN one is older', () => {
      const e = eng({ open: 2 });
      eopen(e, 1);
      expect(R(w(e, S(1), 8))).toBe(OK);
      iopen(e, 2);
      expect(R(w(e, S(3), 8))).toBe(OK);
      expect(st(e, 1).cond).toBe('EXP_OPEN');
      expect(st(e, 2).cond).toBe('CLOSED');
      expect(st(e, 3).cond).toBe('IMP_OPEN');
    });

    it('write to a CLOSED zone at the open limit implicitly closes an IOPEN zone', () => {
      const e = eng({ open: 2 });
      closed(e, 1);
      iopen(e, 2);
      iopen(e, 3);
      expect(R(w(e, S(1) + 8, 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
      expect(st(e, 2)).toEqual({ cond: 'CLOSED', wp: S(2) + 8 });
      expect(st(e, 3).cond).toBe('IMP_OPEN');
      expect(res(e)).toEqual({ open: 2, active: 3, closed: 1 });
    });

    it('write to a CLOSED zone at the active limit succeeds (CLOSED already holds an active resource)', () => {
      const e = eng({ active: 2 });
      closed(e, 1);
      closed(e, 2);
      expect(R(w(e, S(1) + 8, 8))).toBe(OK);
      expect(st(e, 1).cond).toBe('IMP_OPEN');
      expect(res(e)).toEqual({ open: 1, active: 2, closed: 1 });
    });

    it('write to a CLOSED zone with the open limit full of explicit opens -> OPEN_RESOURCE, stays CLOSED', () => {
      const e = eng({ open: 1 });
      closed(e, 1);
      eopen(e, 2);
      expect(R(w(e, S(1) + 8, 8))).toBe(OPEN_RES);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
    });

    it('an implicitly closed zone keeps its wp and accepts the next write there', () => {
      const e = eng({ open: 1 });
      iopen(e, 1, 24);
      iopen(e, 2);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 24 });
      expect(R(w(e, S(1) + 16, 8))).toBe(UNALIGNED);
      expect(R(w(e, S(1) + 24, 8))).toBe(OK);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 32 });
      expect(st(e, 2).cond).toBe('CLOSED');
    });

    it('an open limit of 1: a write to the already-open zone never closes anything', () => {
      const e = eng({ open: 1 });
      iopen(e, 1);
      for (let i = 0; i < 5; i++) expect(R(w(e, e.zoneWp(1), 8))).toBe(OK);
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });
  });

  describe('item 12: range beyond the remaining writable capacity -> INVALID', () => {
    it('OUT at wp with wp + len > start + z_cap -> INVALID, unchanged', () => {
      const e = eng({ cap: 48 });
      iopen(e, 1, 40);
      expect(R(w(e, S(1) + 40, 16))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 40 });
      expect(res(e)).toEqual({ open: 1, active: 1, closed: 0 });
    });

    it('OUT to an EMPTY zone larger than its capacity -> INVALID, stays EMPTY (no resource taken)', () => {
      const e = eng({ cap: 48 });
      expect(R(w(e, S(1), 56))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(res(e)).toEqual({ open: 0, active: 0, closed: 0 });
    });

    it('ZONE_APPEND with wp + len > start + z_cap -> INVALID, unchanged', () => {
      const e = eng({ cap: 48 });
      iopen(e, 1, 40);
      expect(R(ap(e, S(1), 16).r)).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 40 });
    });

    it('OUT into the gap between zone capacity and zone size -> INVALID', () => {
      const e = eng({ cap: 48 });
      full(e, 1);
      expect(R(w(e, S(1) + 48, 8))).toBe(INVALID);
    });

    it('the short last zone: OUT beyond its length but within the device is impossible, beyond the device is refused', () => {
      const e = eng({ capacity: 2 * ZS + 16 });
      iopen(e, 2, 8);
      expect(R(w(e, S(2) + 8, 16))).not.toBe(OK);
      expect(st(e, 2)).toEqual({ cond: 'IMP_OPEN', wp: S(2) + 8 });
      expect(R(w(e, S(2) + 8, 8))).toBe(OK);
      expect(st(e, 2)).toEqual({ cond: 'FULL', wp: S(2) + 16 });
    });
  });

  describe('item 13: ZONE_APPEND larger than max_append_sectors', () => {
    it('append > max_append (non-zero) -> INVALID, unchanged', () => {
      const e = eng({ append: 16 });
      expect(R(ap(e, S(1), 24).r)).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(R(ap(e, S(1), 16).r)).toBe(OK);
    });

    it('max_append_sectors == 0 -> UNSUPPORTED', () => {
      const g = { ...makeGeometry({ capacitySectors: 4 * ZS, zoneSectors: ZS }), maxAppendSectors: 0 };
      const e = new Engine(g);
      expect(R(e.beginAppend(S(1), 8))).toBe('UNSUPPORTED');
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });
  });

  describe('item 14: a range spanning more than one zone', () => {
    it('OUT spanning two sequential zones -> INVALID, neither zone changes', () => {
      const e = eng();
      iopen(e, 1, ZS - 8);
      expect(R(w(e, S(2) - 8, 16))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(2) - 8 });
      expect(st(e, 2)).toEqual({ cond: 'EMPTY', wp: S(2) });
    });

    it('OUT from a conventional zone into a sequential zone -> INVALID', () => {
      const e = eng({ conv: 1 });
      expect(R(w(e, S(1) - 8, 16))).toBe(INVALID);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });

    it('OUT spanning only conventional zones is fine (no write pointer)', () => {
      const e = eng({ conv: 2 });
      expect(R(w(e, S(1) - 8, 16))).toBe(OK);
      expect(R(w(e, 3, 5))).toBe(OK);
      expect(st(e, 0).cond).toBe('NOT_WP');
    });

    it('IN spanning two conventional zones -> OK, all data', () => {
      const e = eng({ conv: 2 });
      expect(R(e.checkRead(S(1) - 8, 16))).toBe(OK);
      expect(e.readDataSectors).toBe(16);
    });

    it('IN spanning a conventional and a sequential zone -> INVALID', () => {
      const e = eng({ conv: 2 });
      expect(R(e.checkRead(S(2) - 8, 16))).toBe(INVALID);
    });

    it('IN spanning two sequential zones -> INVALID', () => {
      const e = eng();
      full(e, 1);
      full(e, 2);
      expect(R(e.checkRead(S(2) - 8, 16))).toBe(INVALID);
    });

    it('IN covering exactly one whole sequential zone -> OK', () => {
      const e = eng();
      expect(R(e.checkRead(S(1), ZS))).toBe(OK);
    });

    it('ZONE_APPEND crossing into the next zone -> INVALID', () => {
      const e = eng();
      iopen(e, 1, ZS - 8);
      expect(R(ap(e, S(1), 16).r)).toBe(INVALID);
      expect(st(e, 2)).toEqual({ cond: 'EMPTY', wp: S(2) });
    });
  });

  describe('item 15: OUT not at the write pointer / not aligned -> UNALIGNED_WP', () => {
    it('OUT behind the wp -> UNALIGNED_WP, unchanged', () => {
      const e = eng();
      iopen(e, 1, 16);
      expect(R(w(e, S(1) + 8, 8))).toBe(UNALIGNED);
      expect(R(w(e, S(1), 8))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
    });

    it('OUT ahead of the wp -> UNALIGNED_WP, unchanged', () => {
      const e = eng();
      iopen(e, 1, 16);
      expect(R(w(e, S(1) + 24, 8))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'IMP_OPEN', wp: S(1) + 16 });
    });

    it('OUT to an EMPTY zone not at its start -> UNALIGNED_WP, stays EMPTY without resources', () => {
      const e = eng({ open: 1 });
      iopen(e, 2);
      expect(R(w(e, S(1) + 8, 8))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(st(e, 2).cond).toBe('IMP_OPEN'); // nothing was implicitly closed for it
    });

    it('OUT to a CLOSED zone not at its wp -> UNALIGNED_WP, stays CLOSED', () => {
      const e = eng();
      closed(e, 1);
      expect(R(w(e, S(1) + 16, 8))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'CLOSED', wp: S(1) + 8 });
    });

    it('4096-byte granularity: OUT at a sector not aligned to 8 -> UNALIGNED_WP', () => {
      const e = eng({ bs: 4096 });
      expect(R(w(e, S(1) + 4, 8))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });

    it('4096-byte granularity: OUT at wp whose length is not a multiple of 8 sectors -> UNALIGNED_WP', () => {
      const e = eng({ bs: 4096 });
      expect(R(w(e, S(1), 4))).toBe(UNALIGNED);
      expect(R(w(e, S(1), 12))).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
      expect(R(w(e, S(1), 16))).toBe(OK);
    });

    it('4096-byte granularity: ZONE_APPEND whose length is not a multiple of 8 sectors -> UNALIGNED_WP', () => {
      const e = eng({ bs: 4096 });
      expect(R(ap(e, S(1), 4).r)).toBe(UNALIGNED);
      expect(st(e, 1)).toEqual({ cond: 'EMPTY', wp: S(1) });
    });
  });

  describe('item 16: RDONLY and OFFLINE zones', () => {
    it('OUT to an RDONLY zone -> INVALID', () => {
      const e = eng();
      iopen(e, 1);
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(w(e, S(1) + 8, 8))).toBe(INVALID);
      expect(R(w(e, S(1), 8))).toBe(INVALID);
      expect(st(e, 1).cond).toBe('READONLY');
    });

    it('ZONE_APPEND to an RDONLY zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(ap(e, S(1), 8).r)).toBe(INVALID);
    });

    it('IN from an RDONLY zone -> OK, with the written data', () => {
      const e = eng();
      iopen(e, 1, 16);
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(e.checkRead(S(1), ZS))).toBe(OK);
      expect(e.readDataSectors).toBe(16);
    });

    it('IN from an OFFLINE zone -> INVALID', () => {
      const e = eng();
      iopen(e, 1, 16);
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(e.checkRead(S(1), 8))).toBe(INVALID);
      expect(R(e.checkRead(S(1) + 32, 8))).toBe(INVALID);
    });

    it('OUT to an OFFLINE zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(w(e, S(1), 8))).toBe(INVALID);
    });

    it('ZONE_APPEND to an OFFLINE zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(ap(e, S(1), 8).r)).toBe(INVALID);
    });

    // Edge cases: item 16 has no exemption for zero-length requests ("Any request ... to an
    // OFFLINE zone"; "OUT/APPEND to an RDONLY zone").
    it('zero-length IN to an OFFLINE zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(e.checkRead(S(1), 0))).toBe(INVALID);
    });

    it('zero-length OUT to an OFFLINE zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(w(e, S(1), 0))).toBe(INVALID);
    });

    it('zero-length ZONE_APPEND to an OFFLINE zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_OFFLINE, 1);
      expect(R(ap(e, S(1), 0).r)).toBe(INVALID);
    });

    it('zero-length OUT to an RDONLY zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(w(e, S(1), 0))).toBe(INVALID);
    });

    it('zero-length ZONE_APPEND to an RDONLY zone -> INVALID', () => {
      const e = eng();
      mgmt(e, ZoneOp.SET_READONLY, 1);
      expect(R(ap(e, S(1), 0).r)).toBe(INVALID);
    });
  });

  describe('item 17: other zone-model violations -> INVALID', () => {
    it.each([
      ['OPEN', ZoneOp.OPEN], ['CLOSE', ZoneOp.CLOSE], ['FINISH', ZoneOp.FINISH], ['RESET', ZoneOp.RESET],
    ] as const)('ZONE_%s with a sector that is not a zone start -> INVALID', (_n, op) => {
      const e = eng();
      iopen(e, 1);
      const before = st(e, 1);
      expect(R(e.zoneMgmt(op, S(1) + 8))).toBe(INVALID);
      expect(st(e, 1)).toEqual(before);
    });

    it('OUT at the wp of a FULL zone (= zone end) -> INVALID', () => {
      const e = eng({ cap: 48 });
      full(e, 1);
      expect(R(w(e, S(1) + 48, 8))).toBe(INVALID);
    });
  });

  describe('requests beyond the device capacity', () => {
    it('IN beyond capacity -> OUT_OF_RANGE (IOERR)', () => {
      const e = eng();
      expect(R(e.checkRead(S(8) - 8, 16))).toBe('OUT_OF_RANGE');
      expect(R(e.checkRead(S(8), 8))).toBe('OUT_OF_RANGE');
    });
    it('OUT beyond capacity -> OUT_OF_RANGE (IOERR)', () => {
      const e = eng();
      expect(R(w(e, S(8), 8))).toBe('OUT_OF_RANGE');
      expect(R(w(e, -8, 8))).toBe('OUT_OF_RANGE');
    });
  });

  describe('reads of unwritten data (item 19, data end)', () => {
    it('read of an EMPTY zone has no data sectors', () => {
      const e = eng();
      expect(R(e.checkRead(S(1), 16))).toBe(OK);
      expect(e.readDataSectors).toBe(0);
    });
    it('read straddling the wp: only the part below the wp is data', () => {
      const e = eng();
      iopen(e, 1, 24);
      expect(R(e.checkRead(S(1) + 16, 16))).toBe(OK);
      expect(e.readDataSectors).toBe(8);
    });
    it('after FINISH the finished-but-unwritten range is not data', () => {
      const e = eng();
      iopen(e, 1, 24);
      expect(R(mgmt(e, ZoneOp.FINISH, 1))).toBe(OK);
      expect(R(e.checkRead(S(1), ZS))).toBe(OK);
      expect(e.readDataSectors).toBe(24);
      expect(R(e.checkRead(S(1) + 32, 8))).toBe(OK);
      expect(e.readDataSectors).toBe(0);
    });
    it('after RESET nothing is data', () => {
      const e = eng();
      iopen(e, 1, 24);
      mgmt(e, ZoneOp.RESET, 1);
      expect(R(e.checkRead(S(1), 24))).toBe(OK);
      expect(e.readDataSectors).toBe(0);
    });
  });
});

describe('report()', () => {
  it('reports every zone with type, condition, capacity and write pointer', () => {
    const e = eng({ nr: 10, conv: 2, cap: 48 });
    iopen(e, 2, 8);
    eopen(e, 3);
    expect(R(w(e, S(3), 16))).toBe(OK);
    closed(e, 4, 24);
    full(e, 5);
    iopen(e, 6, 32);
    mgmt(e, ZoneOp.SET_READONLY, 6);
    mgmt(e, ZoneOp.SET_OFFLINE, 7);
    const rows = report(e);
    const conv = ZoneType.CONVENTIONAL, seq = ZoneType.SEQ_WRITE_REQUIRED;
    expect(rows).toEqual([
      { start: S(0), len: ZS, cap: ZS, wp: S(1), type: conv, cond: 'NOT_WP' },
      { start: S(1), len: ZS, cap: ZS, wp: S(2), type: conv, cond: 'NOT_WP' },
      { start: S(2), len: ZS, cap: 48, wp: S(2) + 8, type: seq, cond: 'IMP_OPEN' },
      { start: S(3), len: ZS, cap: 48, wp: S(3) + 16, type: seq, cond: 'EXP_OPEN' },
      { start: S(4), len: ZS, cap: 48, wp: S(4) + 24, type: seq, cond: 'CLOSED' },
      // FULL reports wp at the zone end (not at the capacity end), as Linux does.
      { start: S(5), len: ZS, cap: 48, wp: S(6), type: seq, cond: 'FULL' },
      { start: S(6), len: ZS, cap: 48, wp: -1, type: seq, cond: 'READONLY' },
      { start: S(7), len: ZS, cap: 48, wp: -1, type: seq, cond: 'OFFLINE' },
      { start: S(8), len: ZS, cap: 48, wp: S(8), type: seq, cond: 'EMPTY' },
      { start: S(9), len: ZS, cap: 48, wp: S(9), type: seq, cond: 'EMPTY' },
    ]);
  });

  it('a finished zone reports FULL with wp at the zone end', () => {
    const e = eng({ cap: 48 });
    iopen(e, 1, 8);
    mgmt(e, ZoneOp.FINISH, 1);
    expect(report(e, S(1), 1)).toEqual([{ start: S(1), len: ZS, cap: 48, wp: S(2), type: ZoneType.SEQ_WRITE_REQUIRED, cond: 'FULL' }]);
  });

  it('partial report: at most maxZones zones, from the zone containing the sector', () => {
    const e = eng();
    const rows = report(e, S(3) + 17, 2);
    expect(rows.map((r) => r.start)).toEqual([S(3), S(4)]);
  });

  it('report from the last zone returns only the remaining zones', () => {
    const e = eng();
    expect(report(e, S(6), 100).map((r) => r.start)).toEqual([S(6), S(7)]);
  });

  it('maxZones 0 reports nothing', () => {
    const e = eng();
    let calls = 0;
    expect(e.report(0, 0, () => { calls++; return true; })).toBe(0);
    expect(calls).toBe(0);
  });

  it('report starting beyond the capacity reports nothing', () => {
    const e = eng();
    let calls = 0;
    expect(e.report(S(8), 10, () => { calls++; return true; })).toBe(0);
    expect(calls).toBe(0);
  });

  it('a sink returning false stops the report; the refused zone is not counted', () => {
    const e = eng();
    const seen: number[] = [];
    const n = e.report(0, 100, (start) => { seen.push(start); return seen.length < 3; });
    expect(seen).toEqual([S(0), S(1), S(2)]);
    expect(n).toBe(2);
  });

  it('a shorter last zone is reported with its own length and capacity min(cap, len)', () => {
    const e = eng({ capacity: 3 * ZS + 16, cap: 48 });
    const rows = report(e);
    expect(rows).toHaveLength(4);
    expect(rows[3]).toMatchObject({ start: S(3), len: 16, cap: 16, wp: S(3), cond: 'EMPTY' });
    full(e, 3);
    expect(report(e, S(3))[0]).toMatchObject({ len: 16, cap: 16, wp: S(3) + 16, cond: 'FULL' });
  });
});

describe('sanity of the helpers themselves', () => {
  it('const enum values match the virtio wire values', () => {
    expect([ZoneCond.EMPTY, ZoneCond.IMP_OPEN, ZoneCond.EXP_OPEN, ZoneCond.CLOSED, ZoneCond.READONLY, ZoneCond.FULL, ZoneCond.OFFLINE])
      .toEqual([1, 2, 3, 4, 13, 14, 15]);
    expect([ZoneType.CONVENTIONAL, ZoneType.SEQ_WRITE_REQUIRED]).toEqual([1, 2]);
  });
});
