// Decoding BLKREPORTZONE buffers (runs anywhere: buffers are built here as the kernel fills them).
import { describe, expect, it } from 'vitest';
import { BLK_ZONE_REP_CAPACITY, decodeReport, newReportBuffer, type HostZone } from '../../src/backends/host-zone-report.js';
import { ZbdError } from '../../src/errors.js';

function fill(zones: Array<Partial<HostZone> & { start: number; len: number }>, flags = BLK_ZONE_REP_CAPACITY, room = zones.length): Uint8Array {
  const buf = newReportBuffer(room);
  const dv = new DataView(buf.buffer);
  dv.setUint32(8, zones.length, true);
  dv.setUint32(12, flags, true);
  zones.forEach((z, i) => {
    const o = 16 + 64 * i;
    dv.setBigUint64(o, BigInt(z.start), true);
    dv.setBigUint64(o + 8, BigInt(z.len), true);
    dv.setBigUint64(o + 16, z.wp === undefined ? 0xffffffffffffffffn : BigInt(z.wp), true);
    dv.setUint8(o + 24, z.type ?? 2);
    dv.setUint8(o + 25, z.cond ?? 1);
    dv.setBigUint64(o + 32, BigInt(z.cap ?? z.len), true);
  });
  return buf;
}

describe('decodeReport', () => {
  it('decodes start, length, capacity, write pointer, type and condition', () => {
    const buf = fill([
      { start: 0, len: 8192, type: 1, cond: 0, wp: 8192 },
      { start: 8192, len: 8192, cap: 6144, wp: 8192 + 64, type: 2, cond: 2 },
    ]);
    const got: HostZone[] = [];
    expect(decodeReport(buf, 2, (z) => { got.push(z); })).toBe(2);
    expect(got).toEqual([
      { start: 0, len: 8192, cap: 8192, wp: 8192, type: 1, cond: 0 },
      { start: 8192, len: 8192, cap: 6144, wp: 8256, type: 2, cond: 2 },
    ]);
  });

  it('without BLK_ZONE_REP_CAPACITY the capacity is the zone length', () => {
    const buf = fill([{ start: 0, len: 4096, cap: 1 }], 0);
    const got: HostZone[] = [];
    decodeReport(buf, 1, (z) => { got.push(z); });
    expect(got[0].cap).toBe(4096);
  });

  it('a write pointer of all ones (offline, read-only zones) becomes -1', () => {
    const buf = fill([{ start: 0, len: 4096, cond: 15 }]);
    const got: HostZone[] = [];
    decodeReport(buf, 1, (z) => { got.push(z); });
    expect(got[0].wp).toBe(-1);
  });

  it('the sink stops the decoding by returning false', () => {
    const buf = fill([{ start: 0, len: 8 }, { start: 8, len: 8 }, { start: 16, len: 8 }]);
    let seen = 0;
    expect(decodeReport(buf, 3, () => { seen++; return seen < 2; })).toBe(2);
  });

  it('refuses a count beyond the buffer and sectors beyond 2^53', () => {
    const buf = fill([{ start: 0, len: 8 }]);
    expect(() => decodeReport(buf, 2, () => true)).toThrow(ZbdError);
    const big = fill([{ start: 0, len: 8 }]);
    new DataView(big.buffer).setBigUint64(16, 1n << 60n, true);
    expect(() => decodeReport(big, 1, () => true)).toThrow(/start .* beyond 2\^53/);
  });
});
