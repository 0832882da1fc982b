// Geometry validation and normalisation (spec §1.5, §2.2 Linux checks, §6.2 null_blk limits).
import { describe, expect, it } from 'vitest';
import { makeGeometry, MAX_ZONES, MAX_CAPACITY_SECTORS, type GeometryInput } from '../../src/zoned/geometry.js';
import { ZbdError } from '../../src/errors.js';
import { ZoneEngine } from '../../src/zoned/zone-engine.js';

const MiB = 2048; // sectors

/** Expect makeGeometry to refuse the input with EZONEGEOM and a message matching all patterns. */
function expectGeomError(input: GeometryInput, ...patterns: RegExp[]): ZbdError {
  let err: unknown;
  try { makeGeometry(input); } catch (e) { err = e; }
  expect(err, `makeGeometry(${JSON.stringify(input)}) should throw`).toBeInstanceOf(ZbdError);
  const z = err as ZbdError;
  expect(z.code).toBe('EZONEGEOM');
  for (const p of patterns) expect(z.message).toMatch(p);
  return z;
}

const base: GeometryInput = { capacitySectors: 16 * MiB, zoneSectors: MiB };

describe('valid geometry', () => {
  it('defaults: zone capacity = zone size, 512-byte blocks, no conventional zones, no limits', () => {
    const g = makeGeometry(base);
    expect(g).toMatchObject({
      capacitySectors: 16 * MiB, zoneSectors: MiB, zoneShift: 11, zoneCapacitySectors: MiB,
      conventionalZones: 0, blockSize: 512, blockSectors: 1, nrZones: 16, nrSeqZones: 16,
      maxOpenZones: 0, maxActiveZones: 0,
    });
    expect(g.maxAppendSectors).toBeGreaterThanOrEqual(1);
    expect(g.maxAppendSectors).toBeLessThanOrEqual(g.zoneCapacitySectors);
  });

  it('4096-byte blocks give a write granularity of 8 sectors', () => {
    const g = makeGeometry({ ...base, blockSize: 4096 });
    expect(g.blockSize).toBe(4096);
    expect(g.blockSectors).toBe(8);
  });

  it('conventional zones reduce the sequential zone count', () => {
    const g = makeGeometry({ ...base, conventionalZones: 3 });
    expect(g.conventionalZones).toBe(3);
    expect(g.nrSeqZones).toBe(13);
  });

  it('conventional = nr_zones - 1 is the maximum accepted', () => {
    expect(makeGeometry({ ...base, conventionalZones: 15 }).nrSeqZones).toBe(1);
  });

  it('capacity of exactly one zone is accepted', () => {
    const g = makeGeometry({ capacitySectors: MiB, zoneSectors: MiB });
    expect(g.nrZones).toBe(1);
  });

  it('zone capacity smaller than the zone size is kept', () => {
    expect(makeGeometry({ ...base, zoneCapacitySectors: MiB / 2 }).zoneCapacitySectors).toBe(MiB / 2);
  });

  it('an explicit max append within the zone capacity is kept', () => {
    expect(makeGeometry({ ...base, maxAppendSectors: 256 }).maxAppendSectors).toBe(256);
    expect(makeGeometry({ ...base, maxAppendSectors: MiB }).maxAppendSectors).toBe(MiB);
  });

  it('the geometry is immutable', () => {
    const g = makeGeometry(base);
    expect(Object.isFrozen(g)).toBe(true);
  });
});

describe('validation errors', () => {
  it('non power-of-two zone size (3 MiB) names the field and the value', () => {
    expectGeomError({ capacitySectors: 30 * MiB, zoneSectors: 3 * MiB }, /zone size/i, /3145728|3\s*MiB|6144/, /power of two/i);
  });

  it.each([3, 6, 100, 1000, 5 * MiB, 2 ** 31 - 2])('non power-of-two zone size %i sectors is refused', (zs) => {
    expectGeomError({ capacitySectors: zs * 8, zoneSectors: zs }, /zone size/i);
  });

  it('zone size 0 is refused', () => {
    expectGeomError({ capacitySectors: MiB, zoneSectors: 0 }, /zone size/i);
  });

  it('negative zone size is refused', () => {
    expectGeomError({ capacitySectors: MiB, zoneSectors: -MiB }, /zone size/i);
  });

  it('capacity smaller than one zone is refused and names the capacity', () => {
    expectGeomError({ capacitySectors: MiB - 1, zoneSectors: MiB }, /capacity/i);
    expectGeomError({ capacitySectors: 8, zoneSectors: 16 }, /capacity/i);
  });

  it('capacity 0 is refused', () => {
    expectGeomError({ capacitySectors: 0, zoneSectors: MiB }, /capacity/i);
  });

  it('capacity beyond the maximum is refused', () => {
    expectGeomError({ capacitySectors: MAX_CAPACITY_SECTORS * 2, zoneSectors: 2 ** 31 }, /capacity/i);
  });

  it('zone capacity larger than the zone size is refused and names the zone capacity', () => {
    expectGeomError({ ...base, zoneCapacitySectors: MiB + 1 }, /zone capacity/i);
    expectGeomError({ ...base, zoneCapacitySectors: 2 * MiB }, /zone capacity/i);
  });

  it('zone capacity 0 is refused', () => {
    expectGeomError({ ...base, zoneCapacitySectors: 0 }, /zone capacity/i);
  });

  it('conventional zones = nr_zones is refused (no sequential zone left)', () => {
    expectGeomError({ ...base, conventionalZones: 16 }, /conventional/i);
  });

  it('conventional zones > nr_zones is refused', () => {
    expectGeomError({ ...base, conventionalZones: 17 }, /conventional/i);
  });

  it('negative conventional zone count is refused', () => {
    expectGeomError({ ...base, conventionalZones: -1 }, /conventional/i);
  });

  it.each([0, 256, 1024, 2048, 8192, 513, 4095])('block size %i is refused', (bs) => {
    expectGeomError({ ...base, blockSize: bs }, /block size/i, new RegExp(String(bs)));
  });

  it('zone size not a multiple of the 4096-byte block is refused', () => {
    // 4 sectors = 2 KiB zone: a power of two but smaller than one 4 KiB block.
    expectGeomError({ capacitySectors: 64, zoneSectors: 4, blockSize: 4096 }, /zone size/i);
  });

  it('capacity not a multiple of the 4096-byte block is refused', () => {
    expectGeomError({ capacitySectors: 16 * MiB + 4, zoneSectors: MiB, blockSize: 4096 }, /capacity/i);
  });

  it('zone capacity not a multiple of the 4096-byte block is refused', () => {
    expectGeomError({ ...base, zoneCapacitySectors: MiB - 4, blockSize: 4096 }, /zone capacity/i);
  });

  it('max append not a multiple of the 4096-byte block is refused', () => {
    expectGeomError({ ...base, maxAppendSectors: 12, blockSize: 4096 }, /append/i);
  });

  it('max append smaller than the write granularity is refused (Linux: max_append*512 >= wg)', () => {
    expectGeomError({ ...base, maxAppendSectors: 4, blockSize: 4096 }, /append/i);
  });

  it('max append larger than the zone capacity is refused', () => {
    expectGeomError({ ...base, zoneCapacitySectors: MiB / 2, maxAppendSectors: MiB }, /append/i);
  });

  it('too many zones is refused and names the zone count', () => {
    expectGeomError({ capacitySectors: (MAX_ZONES + 1) * 8, zoneSectors: 8 }, /zone count|zones/i);
  });

  it('exactly MAX_ZONES zones is accepted', () => {
    expect(makeGeometry({ capacitySectors: MAX_ZONES * 8, zoneSectors: 8 }).nrZones).toBe(MAX_ZONES);
  });

  const nonIntegers: [string, Partial<GeometryInput>, RegExp][] = [
    ['capacity with a fractional sector', { capacitySectors: 16 * MiB + 0.5 }, /capacity/i],
    ['capacity NaN', { capacitySectors: NaN }, /capacity/i],
    ['capacity Infinity', { capacitySectors: Infinity }, /capacity/i],
    ['capacity as a string', { capacitySectors: '32768' as unknown as number }, /capacity/i],
    ['zone size 2048.5', { zoneSectors: 2048.5 }, /zone size/i],
    ['zone size NaN', { zoneSectors: NaN }, /zone size/i],
    ['zone capacity 1000.25', { zoneCapacitySectors: 1000.25 }, /zone capacity/i],
    ['conventional zones 1.5', { conventionalZones: 1.5 }, /conventional/i],
    ['max open 1.5', { maxOpenZones: 1.5 }, /open/i],
    ['max active NaN', { maxActiveZones: NaN }, /active/i],
    ['max append 2.5', { maxAppendSectors: 2.5 }, /append/i],
    ['block size 512.5', { blockSize: 512.5 }, /block size/i],
    ['max open -1', { maxOpenZones: -1 }, /open/i],
    ['max active -1', { maxActiveZones: -1 }, /active/i],
  ];
  it.each(nonIntegers)('invalid number: %s', (_name, patch, re) => {
    expectGeomError({ ...base, ...patch }, re);
  });
});

describe('limit normalisation (null_blk rules, spec §6.2)', () => {
  const cases: [string, GeometryInput, number, number][] = [
    // name, input, expected open, expected active
    ['no limits', { ...base }, 0, 0],
    ['open and active below nr_seq are kept', { ...base, maxOpenZones: 4, maxActiveZones: 6 }, 4, 6],
    ['active >= nr_seq -> 0 (disabled)', { ...base, maxActiveZones: 16 }, 0, 0],
    ['active > nr_seq -> 0', { ...base, maxActiveZones: 100, maxOpenZones: 3 }, 3, 0],
    ['active >= nr_seq counts only sequential zones', { ...base, conventionalZones: 4, maxActiveZones: 12 }, 0, 0],
    ['active just below nr_seq with conventional zones is kept', { ...base, conventionalZones: 4, maxActiveZones: 11 }, 0, 11],
    ['open > active -> clamped to active', { ...base, maxOpenZones: 8, maxActiveZones: 5 }, 5, 5],
    ['open == active is kept', { ...base, maxOpenZones: 5, maxActiveZones: 5 }, 5, 5],
    ['open >= nr_seq -> 0 (disabled)', { ...base, maxOpenZones: 16 }, 0, 0],
    ['open > nr_seq -> 0', { ...base, maxOpenZones: 40 }, 0, 0],
    ['open >= nr_seq with conventional zones -> 0', { ...base, conventionalZones: 10, maxOpenZones: 6 }, 0, 0],
    ['open just below nr_seq is kept', { ...base, conventionalZones: 10, maxOpenZones: 5 }, 5, 0],
    ['open with active disabled by normalisation: open >= nr_seq -> 0', { ...base, maxOpenZones: 20, maxActiveZones: 20 }, 0, 0],
    ['open with active disabled by normalisation: open below nr_seq kept', { ...base, maxOpenZones: 3, maxActiveZones: 20 }, 3, 0],
    ['tiny: 3 seq zones, active 2, open 3 -> open clamped to 2', { capacitySectors: 3 * 8, zoneSectors: 8, maxActiveZones: 2, maxOpenZones: 3 }, 2, 2],
    ['tiny: 3 seq zones, open 1 kept', { capacitySectors: 3 * 8, zoneSectors: 8, maxOpenZones: 1 }, 1, 0],
  ];
  it.each(cases)('%s', (_name, input, open, active) => {
    const g = makeGeometry(input);
    expect({ open: g.maxOpenZones, active: g.maxActiveZones }).toEqual({ open, active });
  });
});

describe('last zone shorter than the others', () => {
  it('capacity not a multiple of the zone size: nr_zones = ceil, last zone = remainder', () => {
    const g = makeGeometry({ capacitySectors: 3 * MiB + MiB / 4, zoneSectors: MiB });
    expect(g.nrZones).toBe(4);
    const e = new ZoneEngine(g);
    expect([0, 1, 2].map((z) => e.zoneLen(z))).toEqual([MiB, MiB, MiB]);
    expect(e.zoneStart(3)).toBe(3 * MiB);
    expect(e.zoneLen(3)).toBe(MiB / 4);
    expect(e.zoneCap(3)).toBe(MiB / 4); // min(zone capacity = zone size, len)
  });

  it('zone capacity larger than the short last zone: last zone cap = its length', () => {
    const g = makeGeometry({ capacitySectors: 3 * MiB + 256, zoneSectors: MiB, zoneCapacitySectors: 1024 });
    const e = new ZoneEngine(g);
    expect(e.zoneCap(0)).toBe(1024);
    expect(e.zoneLen(3)).toBe(256);
    expect(e.zoneCap(3)).toBe(256);
  });

  it('zone capacity smaller than the short last zone: last zone cap = zone capacity', () => {
    const g = makeGeometry({ capacitySectors: 3 * MiB + 1536, zoneSectors: MiB, zoneCapacitySectors: 1024 });
    const e = new ZoneEngine(g);
    expect(e.zoneLen(3)).toBe(1536);
    expect(e.zoneCap(3)).toBe(1024);
  });

  it('the short last zone is writable up to its capacity and then FULL', () => {
    const g = makeGeometry({ capacitySectors: 2 * 64 + 16, zoneSectors: 64 });
    const e = new ZoneEngine(g);
    expect(e.beginWrite(128, 16)).toBe(0);
    e.completeWrite(2, 128, true);
    expect(e.zoneCond(2)).toBe(14); // FULL
    expect(e.checkInvariants()).toEqual([]);
  });
});
