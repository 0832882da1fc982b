// The zone table and the pure zone rules on their own, for what the engine tests cannot show:
// the rules change nothing, a table whose zone types and last capacity come from a device
// (the host-device mirror), and the small shared decisions (resting condition, reported wp).
import { describe, expect, it } from 'vitest';
import { makeGeometry } from '../../src/zoned/geometry.js';
import { ZoneCond, ZoneOp, ZoneResult, ZoneType } from '../../src/zoned/types.js';
import {
  checkAppendShape, checkRead, checkWriteAt, checkWriteShape, mgmtStep, readableSectors, reportedWp,
} from '../../src/zoned/zone-rules.js';
import { ZONE_FLAG_OFFLINE, ZONE_FLAG_READONLY, ZoneTable, persistedCond, restingCond } from '../../src/zoned/zone-table.js';
import { rn } from './helpers.js';

const ZS = 64;
const geo = makeGeometry({ capacitySectors: 8 * ZS - 16, zoneSectors: ZS, zoneCapacitySectors: 48, conventionalZones: 1 });

/** A table as a device might report it: zone 0 sequential, zones 5 and 6 conventional. */
function deviceTable(lastCap?: number): ZoneTable {
  const t = new ZoneTable({ ...geo, conventionalZones: 0 }, lastCap);
  t.setConventional(5);
  t.setConventional(6);
  return t;
}

describe('zone table', () => {
  it('geometry: the last zone is shorter, its capacity what fits unless the device gives its own', () => {
    const t = new ZoneTable(geo);
    expect([t.zoneLen(7), t.zoneCap(7), t.zoneCap(6), t.zoneCap(0)]).toEqual([48, 48, 48, ZS]);
    expect(new ZoneTable(geo, 40).zoneCap(7)).toBe(40);
    expect([t.type[0], t.cond[0], t.wp(0), t.dataEnd(0)]).toEqual([ZoneType.CONVENTIONAL, ZoneCond.NOT_WP, ZS, ZS]);
    expect([t.type[1], t.cond[1], t.wp(1)]).toEqual([ZoneType.SEQ_WRITE_REQUIRED, ZoneCond.EMPTY, ZS]);
  });

  it('resting condition: faults first (offline over read-only), then EMPTY / FULL / CLOSED by write pointer', () => {
    expect(restingCond(ZONE_FLAG_OFFLINE | ZONE_FLAG_READONLY, 8, 48)).toBe(ZoneCond.OFFLINE);
    expect(restingCond(ZONE_FLAG_READONLY, 0, 48)).toBe(ZoneCond.READONLY);
    expect([restingCond(0, 0, 48), restingCond(0, 48, 48), restingCond(0, 8, 48)]).toEqual([ZoneCond.EMPTY, ZoneCond.FULL, ZoneCond.CLOSED]);
    expect(persistedCond({ wp: 2 * ZS + 8, dataEnd: 2 * ZS + 8, flags: 0 }, 2 * ZS, 2 * ZS + 48)).toBe(ZoneCond.CLOSED);
  });
});

describe('zone rules', () => {
  it('conventional zones wherever the device has them: reads and writes across them only', () => {
    const t = deviceTable();
    expect(rn(checkRead(t, 5 * ZS + 8, ZS))).toBe('OK');
    expect(rn(checkWriteShape(t, 5 * ZS + 8, ZS))).toBe('OK');
    expect(rn(checkRead(t, 4 * ZS + 8, ZS))).toBe('INVALID');
    expect(rn(checkWriteShape(t, 6 * ZS + 8, ZS))).toBe('INVALID');
    expect(rn(checkAppendShape(t, 5 * ZS, 8))).toBe('INVALID');
    expect(rn(checkAppendShape(t, 0, 8))).toBe('OK');
    expect(readableSectors(t, 5 * ZS, 8)).toBe(8);
    expect(readableSectors(t, 0, 8)).toBe(0);
  });

  it('a write is checked against the zone capacity the device reported for its last zone', () => {
    const t = deviceTable(40);
    expect(rn(checkWriteAt(t, 7, 7 * ZS, 40, false))).toBe('OK');
    expect(rn(checkWriteAt(t, 7, 7 * ZS, 48, false))).toBe('INVALID');
    expect(rn(checkWriteAt(t, 7, 7 * ZS + 8, 8, false))).toBe('UNALIGNED_WP');
    expect(rn(checkWriteAt(t, 7, 7 * ZS, 8, true))).toBe('IO_ERROR');
  });

  it('mgmtStep decides without changing the table', () => {
    const t = new ZoneTable(geo);
    t.cond[2] = ZoneCond.IMP_OPEN;
    t.wpOff[2] = t.dataOff[2] = 8;
    const before = [t.cond.slice(), t.wpOff.slice(), t.dataOff.slice(), t.flags.slice()];
    const steps = [ZoneOp.OPEN, ZoneOp.CLOSE, ZoneOp.FINISH, ZoneOp.RESET, ZoneOp.SET_READONLY, ZoneOp.SET_OFFLINE, ZoneOp.CLEAR_FAULT]
      .map((op) => mgmtStep(op, t, 2));
    expect([t.cond, t.wpOff, t.dataOff, t.flags]).toEqual(before);
    expect(steps.map((s) => [rn(s.result), s.changed, s.cond])).toEqual([
      ['OK', true, ZoneCond.EXP_OPEN], ['OK', true, ZoneCond.CLOSED], ['OK', true, ZoneCond.FULL], ['OK', true, ZoneCond.EMPTY],
      ['OK', true, ZoneCond.READONLY], ['OK', true, ZoneCond.OFFLINE], ['OK', false, ZoneCond.IMP_OPEN],
    ]);
    expect(steps[2]).toMatchObject({ wpOff: 48, dataOff: 8 });
    expect(mgmtStep(ZoneOp.OPEN, t, 3)).toMatchObject({ result: ZoneResult.OK, opens: true });
    expect(mgmtStep(99 as ZoneOp, t, 3)).toMatchObject({ result: ZoneResult.UNSUPPORTED, changed: false });
  });

  it('reported write pointer: zone end for conventional and full zones, none for read-only and offline', () => {
    expect(reportedWp(ZoneCond.NOT_WP, 0, 64, 64)).toBe(64);
    expect(reportedWp(ZoneCond.FULL, 64, 64, 112)).toBe(128);
    expect(reportedWp(ZoneCond.READONLY, 64, 64, 72)).toBe(-1);
    expect(reportedWp(ZoneCond.OFFLINE, 64, 64, 72)).toBe(-1);
    expect(reportedWp(ZoneCond.CLOSED, 64, 64, 72)).toBe(72);
  });
});
