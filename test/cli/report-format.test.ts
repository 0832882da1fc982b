// The JSON report has two writers (bytes for streaming, objects for the control API): they
// must produce the same document for every zone type and condition.
import { describe, expect, it } from 'vitest';
import { writeZoneJson, zoneJson, ZONE_LINE_MAX } from '../../src/cli/report-format.js';
import { ZoneCond, ZoneType } from '../../src/zoned/types.js';

describe('zone JSON', () => {
  const conds = [ZoneCond.NOT_WP, ZoneCond.EMPTY, ZoneCond.IMP_OPEN, ZoneCond.EXP_OPEN, ZoneCond.CLOSED,
    ZoneCond.READONLY, ZoneCond.FULL, ZoneCond.OFFLINE];
  const cases: [number, number, number, number, number, ZoneType, ZoneCond][] = [
    [0, 0, 131072, 131072, -1, ZoneType.CONVENTIONAL, ZoneCond.NOT_WP],
    ...conds.map((c, i): [number, number, number, number, number, ZoneType, ZoneCond] =>
      [i + 1, (i + 1) * 131072, 131072, 126976, (i + 1) * 131072 + 4096 * i, ZoneType.SEQ_WRITE_REQUIRED, c]),
    [1048575, 137438822400, 131072, 131072, -1, ZoneType.SEQ_WRITE_REQUIRED, ZoneCond.OFFLINE],
    [7, 2 ** 52, 2 ** 31, 2 ** 31, 2 ** 52 + 1, ZoneType.SEQ_WRITE_REQUIRED, ZoneCond.IMP_OPEN],
  ];
  it.each(cases)('zone %i: the streamed bytes equal JSON.stringify of the object', (zone, start, len, cap, wp, type, cond) => {
    const buf = new Uint8Array(ZONE_LINE_MAX);
    const end = writeZoneJson(buf, 0, zone, start, len, cap, wp, type, cond);
    const text = Buffer.from(buf.subarray(0, end)).toString();
    expect(JSON.parse(text)).toEqual(zoneJson(zone, start, len, cap, wp, type, cond));
    expect(text).toBe(JSON.stringify(zoneJson(zone, start, len, cap, wp, type, cond)));
  });
});
