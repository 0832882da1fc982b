// Zone conformance at the Backend interface, one suite for every backend: the memory and
// file emulations on the host, a real kernel zoned device (null_blk, scsi_debug) inside the
// UML guest. Expectations are the virtio-blk zoned spec's (§1.6-1.7 of the spec digest);
// where a real device legitimately differs it is a documented quirk of the target.
//
// Targets are opened once and every test starts from a reset of all zones, because a real
// device keeps its state between tests.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, ZoneDescriptor, ZonedInfo } from '../../src/backends/backend.js';
import { ZoneCond, ZoneOp, ZoneResult, ZoneType } from '../../src/zoned/types.js';

export interface SuiteQuirks {
  /**
   * Finishing an EMPTY zone passes through an open state and so needs an open resource
   * (the emulation, null_blk). scsi_debug finishes an empty zone without checking its open
   * limit (drivers/scsi/scsi_debug.c zbc_finish_zone), so the test of that rule is not run on it.
   */
  finishEmptyUncounted?: boolean;
}

export interface SuiteTarget {
  name: string;
  open(): Promise<Backend> | Backend;
  /** Releases what open() made (the backend is closed by the suite). */
  cleanup?(): Promise<void> | void;
  quirks?: SuiteQuirks;
}

const S = 512;

/** Deterministic bytes for (seed, length): a different seed gives different data. */
export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const w = new Uint32Array(out.buffer, 0, bytes >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    w[i] = x;
  }
  return out;
}

export async function reportAll(b: Backend, sector = 0, max = Number.MAX_SAFE_INTEGER): Promise<ZoneDescriptor[]> {
  const out: ZoneDescriptor[] = [];
  await b.reportZones(sector, max, (start, len, cap, wp, type, cond) => { out.push({ start, len, cap, wp, type, cond }); return true; });
  return out;
}

export async function zoneAt(b: Backend, sector: number): Promise<ZoneDescriptor> {
  const [z] = await reportAll(b, sector, 1);
  if (!z) throw new Error(`no zone reported at sector ${sector}`);
  return z;
}

const isOpenCond = (c: number): boolean => c === ZoneCond.IMP_OPEN || c === ZoneCond.EXP_OPEN;

export function zoneConformanceSuite(t: SuiteTarget): void {
  describe(`zone conformance: ${t.name}`, () => {
    let b: Backend;
    let g: ZonedInfo;
    let bs: number;
    let bsS: number;
    /** Start sector of the i-th sequential zone. */
    const seq = (i: number): number => (g.conventionalZones + i) * g.zoneSectors;
    const conv = (i: number): number => i * g.zoneSectors;
    const nrSeq = (): number => g.nrZones - g.conventionalZones;

    const write = (sector: number, bytes: number, seed = sector): Promise<ZoneResult> => b.write(sector, [pattern(bytes, seed)]);
    async function readBytes(sector: number, bytes: number): Promise<Uint8Array> {
      const buf = new Uint8Array(bytes).fill(0x5a);
      expect(await b.read(sector, [buf])).toBe(ZoneResult.OK);
      return buf;
    }
    async function fill(start: number, sectors: number, chunkSectors = 2048): Promise<void> {
      for (let s = start; s < start + sectors; s += chunkSectors) {
        const n = Math.min(chunkSectors, start + sectors - s);
        expect(await write(s, n * S, s), `write at ${s}`).toBe(ZoneResult.OK);
      }
    }
    const openCount = async (): Promise<number> => (await reportAll(b)).filter((z) => isOpenCond(z.cond)).length;
    const activeCount = async (): Promise<number> => (await reportAll(b)).filter((z) => isOpenCond(z.cond) || z.cond === ZoneCond.CLOSED).length;

    beforeAll(async () => {
      b = await t.open();
      if (!b.info.zoned) throw new Error(`${t.name} is not zoned`);
      g = b.info.zoned;
      bs = b.info.blockSize;
      bsS = bs / S;
    }, 60_000);
    afterAll(async () => {
      await b?.close();
      await t.cleanup?.();
    });
    beforeEach(async () => {
      expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
    });

    it('reports every zone: contiguous, the advertised geometry, conventional zones first, all sequential zones empty after reset-all', async () => {
      const zones = await reportAll(b);
      expect(zones.length).toBe(g.nrZones);
      let conventional = 0;
      zones.forEach((z, i) => {
        expect(z.start).toBe(i * g.zoneSectors);
        expect(z.len).toBe(i === g.nrZones - 1 ? b.info.capacitySectors - z.start : g.zoneSectors);
        if (z.type === ZoneType.CONVENTIONAL) {
          conventional++;
          expect(i).toBeLessThan(g.conventionalZones);
          expect(z.cap).toBe(z.len);
          expect(z.cond).toBe(ZoneCond.NOT_WP);
          expect(z.wp).toBe(z.start + z.len);
        } else {
          expect(z.type).toBe(ZoneType.SEQ_WRITE_REQUIRED);
          expect(z.cap).toBe(Math.min(g.zoneCapacitySectors, z.len));
          expect(z.cond).toBe(ZoneCond.EMPTY);
          expect(z.wp).toBe(z.start);
        }
      });
      expect(conventional).toBe(g.conventionalZones);
      // A report from inside a zone starts with that zone; maxZones bounds it; nothing at the end.
      const mid = await reportAll(b, seq(1) + 8, 2);
      expect(mid.map((z) => z.start)).toEqual([seq(1), seq(2)]);
      expect(await reportAll(b, b.info.capacitySectors)).toEqual([]);
      expect(g.maxAppendSectors).toBeGreaterThanOrEqual(bsS);
    });

    it('a write at the write pointer opens the zone implicitly and moves the write pointer', async () => {
      expect(await write(seq(0), 4 * bs)).toBe(ZoneResult.OK);
      const z = await zoneAt(b, seq(0));
      expect(z.cond).toBe(ZoneCond.IMP_OPEN);
      expect(z.wp).toBe(seq(0) + 4 * bsS);
      expect(await write(seq(0) + 4 * bsS, 2 * bs)).toBe(ZoneResult.OK);
      expect((await zoneAt(b, seq(0))).wp).toBe(seq(0) + 6 * bsS);
    });

    it('data reads back; sectors above the write pointer read as zeroes, also after a reset of written data', async () => {
      const s = seq(1);
      expect(await write(s, 64 * 1024, 11)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.RESET, s)).toBe(ZoneResult.OK);
      expect(await write(s, 32 * 1024, 12)).toBe(ZoneResult.OK);
      const got = await readBytes(s, 64 * 1024);
      expect(Buffer.from(got.subarray(0, 32 * 1024)).equals(Buffer.from(pattern(32 * 1024, 12)))).toBe(true);
      expect(got.subarray(32 * 1024).every((v) => v === 0)).toBe(true);
      // Entirely above the write pointer.
      expect((await readBytes(s + 128, 4096)).every((v) => v === 0)).toBe(true);
    });

    it('a write off the write pointer fails with UNALIGNED_WP and changes nothing', async () => {
      const s = seq(2);
      expect(await write(s + 8 * bsS, bs)).toBe(ZoneResult.UNALIGNED_WP);
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.EMPTY, wp: s });
      expect(await write(s, 4 * bs)).toBe(ZoneResult.OK);
      expect(await write(s, bs)).toBe(ZoneResult.UNALIGNED_WP); // behind the write pointer
      expect(await write(s + 8 * bsS, bs)).toBe(ZoneResult.UNALIGNED_WP); // ahead of it
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.IMP_OPEN, wp: s + 4 * bsS });
    });

    it('a write that is not a whole number of blocks fails with UNALIGNED_WP', async (ctx) => {
      if (bs === S) ctx.skip(); // with 512-byte blocks every sector-sized write is whole blocks
      expect(await write(seq(0), S)).toBe(ZoneResult.UNALIGNED_WP);
      expect(await write(seq(0), bs + S)).toBe(ZoneResult.UNALIGNED_WP);
      expect((await zoneAt(b, seq(0))).cond).toBe(ZoneCond.EMPTY);
    });

    it('writes across a zone boundary, beyond the zone capacity or into a full zone are INVALID', async () => {
      const s = seq(3);
      const capEnd = s + g.zoneCapacitySectors;
      // Across into the next sequential zone (from the write pointer of a full-capacity zone,
      // or past the capacity end of a smaller-capacity one).
      await fill(s, g.zoneCapacitySectors - bsS);
      expect(await write(capEnd - bsS, 2 * bs)).toBe(ZoneResult.INVALID);
      expect(await write(s + g.zoneSectors - bsS, 2 * bs)).toBe(ZoneResult.INVALID);
      expect((await zoneAt(b, s)).wp).toBe(capEnd - bsS);
      expect(await write(capEnd - bsS, bs)).toBe(ZoneResult.OK);
      const z = await zoneAt(b, s);
      expect(z.cond).toBe(ZoneCond.FULL);
      expect(z.wp).toBe(s + z.len); // reported at the zone end, as Linux guests expect
      if (g.zoneCapacitySectors < g.zoneSectors) expect(await write(capEnd, bs)).toBe(ZoneResult.INVALID); // between capacity and zone end
      expect(await write(s, bs)).toBe(ZoneResult.INVALID);
      // Out of the device altogether.
      expect(await write(b.info.capacitySectors - bsS, 2 * bs)).toBe(ZoneResult.OUT_OF_RANGE);
      expect(await b.read(b.info.capacitySectors, [new Uint8Array(bs)])).toBe(ZoneResult.OUT_OF_RANGE);
    });

    it('a zone written to its capacity is FULL; sectors between capacity and zone length read as zeroes', async () => {
      const s = seq(4);
      await fill(s, g.zoneCapacitySectors);
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.FULL, wp: s + g.zoneSectors, cap: g.zoneCapacitySectors });
      const gap = g.zoneCapacitySectors < g.zoneSectors;
      const tail = await readBytes(s + g.zoneCapacitySectors - bsS, (gap ? 2 : 1) * bs);
      expect(tail.subarray(0, bs).some((v) => v !== 0)).toBe(true); // the last written block holds data
      if (gap) expect(tail.subarray(bs).every((v) => v === 0)).toBe(true);
    });

    it('conventional zones take writes anywhere and across conventional zones, not across into a sequential zone', async (ctx) => {
      if (g.conventionalZones < 2) ctx.skip();
      const at = conv(0) + 13 * bsS;
      expect(await write(at, 8 * bs, 21)).toBe(ZoneResult.OK);
      expect(await write(at, 8 * bs, 22)).toBe(ZoneResult.OK); // overwrite
      expect(Buffer.from(await readBytes(at, 8 * bs)).equals(Buffer.from(pattern(8 * bs, 22)))).toBe(true);
      const across = conv(1) - 2 * bsS;
      expect(await write(across, 4 * bs, 23)).toBe(ZoneResult.OK);
      expect(Buffer.from(await readBytes(across, 4 * bs)).equals(Buffer.from(pattern(4 * bs, 23)))).toBe(true);
      const lastConv = conv(g.conventionalZones) - 2 * bsS;
      expect(await write(lastConv, 4 * bs)).toBe(ZoneResult.INVALID);
      expect((await zoneAt(b, seq(0))).cond).toBe(ZoneCond.EMPTY);
    });

    it('reads across sequential zones are INVALID; across conventional zones they are fine', async () => {
      expect(await b.read(seq(1) - bsS, [new Uint8Array(2 * bs)])).toBe(ZoneResult.INVALID);
      expect(await b.read(seq(0) - bsS, [new Uint8Array(2 * bs)])).toBe(ZoneResult.INVALID);
      if (g.conventionalZones >= 2) expect(await b.read(conv(1) - bsS, [new Uint8Array(2 * bs)])).toBe(ZoneResult.OK);
    });

    it('zone append lands at the write pointer and returns that sector', async () => {
      const s = seq(5);
      const a = await b.append(s, [pattern(2 * bs, 31)]);
      expect(a).toEqual({ result: ZoneResult.OK, sector: s });
      const a2 = await b.append(s, [pattern(bs, 32)]);
      expect(a2).toEqual({ result: ZoneResult.OK, sector: s + 2 * bsS });
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.IMP_OPEN, wp: s + 3 * bsS });
      expect(Buffer.from(await readBytes(s + 2 * bsS, bs)).equals(Buffer.from(pattern(bs, 32)))).toBe(true);
    });

    it('concurrent appends to one zone get distinct, contiguous sectors and keep their data', async () => {
      const s = seq(6);
      const sizes = Array.from({ length: 24 }, (_, i) => Math.min(g.maxAppendSectors, (1 + (i * 7) % 5) * bsS) * S);
      const results = await Promise.all(sizes.map((bytes, i) => b.append(s, [pattern(bytes, 100 + i)])));
      for (const r of results) expect(r.result).toBe(ZoneResult.OK);
      const order = results.map((r, i) => ({ sector: r.sector, i })).sort((x, y) => x.sector - y.sector);
      let next = s;
      for (const { sector, i } of order) {
        expect(sector).toBe(next);
        next += sizes[i] / S;
      }
      expect((await zoneAt(b, s)).wp).toBe(next);
      for (const { sector, i } of order) {
        expect(Buffer.from(await readBytes(sector, sizes[i])).equals(Buffer.from(pattern(sizes[i], 100 + i))), `append ${i}`).toBe(true);
      }
    });

    it('zone append rules: zone start only, sequential zones only, max append size, capacity, full zones', async () => {
      const s = seq(7);
      expect((await b.append(s + bsS, [new Uint8Array(bs)])).result).toBe(ZoneResult.INVALID);
      expect((await b.append(conv(0), [new Uint8Array(bs)])).result).toBe(g.conventionalZones ? ZoneResult.INVALID : ZoneResult.OK);
      expect((await b.append(s, [new Uint8Array((g.maxAppendSectors + bsS) * S)])).result).toBe(ZoneResult.INVALID);
      if (bs > S) expect((await b.append(s, [new Uint8Array(S)])).result).toBe(ZoneResult.UNALIGNED_WP);
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.EMPTY);
      // Fill to one append short of the capacity, then the last append makes the zone FULL.
      const chunk = g.maxAppendSectors - (g.maxAppendSectors % bsS);
      let wp = s;
      const capEnd = s + g.zoneCapacitySectors;
      while (capEnd - wp > chunk) {
        const r = await b.append(s, [new Uint8Array(chunk * S)]);
        expect(r).toEqual({ result: ZoneResult.OK, sector: wp });
        wp += chunk;
      }
      // One block more than fits: beyond the capacity (or above the append limit), INVALID either way.
      expect((await b.append(s, [new Uint8Array((capEnd - wp + bsS) * S)])).result).toBe(ZoneResult.INVALID);
      expect(await b.append(s, [new Uint8Array((capEnd - wp) * S)])).toEqual({ result: ZoneResult.OK, sector: wp });
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.FULL);
      expect((await b.append(s, [new Uint8Array(bs)])).result).toBe(ZoneResult.INVALID);
    });

    it('open, close, finish and reset follow the zone state machine', async () => {
      const s = seq(8);
      expect(await b.zoneMgmt(ZoneOp.CLOSE, s)).toBe(ZoneResult.INVALID); // EMPTY cannot be closed
      expect(await b.zoneMgmt(ZoneOp.OPEN, s)).toBe(ZoneResult.OK);
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.EXP_OPEN);
      expect(await b.zoneMgmt(ZoneOp.OPEN, s)).toBe(ZoneResult.OK); // EOPEN stays EOPEN
      expect(await b.zoneMgmt(ZoneOp.CLOSE, s)).toBe(ZoneResult.OK);
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.EMPTY); // wp at the start: back to EMPTY
      expect(await write(s, 2 * bs)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.CLOSE, s)).toBe(ZoneResult.OK);
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.CLOSED, wp: s + 2 * bsS });
      expect(await b.zoneMgmt(ZoneOp.CLOSE, s)).toBe(ZoneResult.OK); // CLOSED stays CLOSED
      expect(await write(s + 2 * bsS, bs)).toBe(ZoneResult.OK); // CLOSED + write → IOPEN
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.IMP_OPEN);
      expect(await b.zoneMgmt(ZoneOp.OPEN, s)).toBe(ZoneResult.OK); // IOPEN → EOPEN
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.EXP_OPEN);
      expect(await b.zoneMgmt(ZoneOp.FINISH, s)).toBe(ZoneResult.OK);
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.FULL, wp: s + g.zoneSectors });
      expect(await b.zoneMgmt(ZoneOp.FINISH, s)).toBe(ZoneResult.OK); // FULL stays FULL
      expect(await b.zoneMgmt(ZoneOp.OPEN, s)).toBe(ZoneResult.INVALID);
      expect(await b.zoneMgmt(ZoneOp.CLOSE, s)).toBe(ZoneResult.INVALID);
      expect(await b.zoneMgmt(ZoneOp.RESET, s)).toBe(ZoneResult.OK);
      expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.EMPTY, wp: s });
      expect(await b.zoneMgmt(ZoneOp.RESET, s)).toBe(ZoneResult.OK); // EMPTY stays EMPTY
      expect(await b.zoneMgmt(ZoneOp.FINISH, s)).toBe(ZoneResult.OK); // EMPTY → FULL
      expect((await zoneAt(b, s)).cond).toBe(ZoneCond.FULL);
    });

    it('zone management of conventional zones, off a zone start or beyond the device is INVALID', async () => {
      for (const op of [ZoneOp.OPEN, ZoneOp.CLOSE, ZoneOp.FINISH, ZoneOp.RESET]) {
        if (g.conventionalZones) expect(await b.zoneMgmt(op, conv(0))).toBe(ZoneResult.INVALID);
        expect(await b.zoneMgmt(op, seq(0) + bsS)).toBe(ZoneResult.INVALID);
        expect(await b.zoneMgmt(op, b.info.capacitySectors)).toBe(ZoneResult.INVALID);
      }
    });

    it('a finished zone reads back what was written and zeroes after it', async () => {
      const s = seq(9);
      expect(await write(s, 8 * bs, 41)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.FINISH, s)).toBe(ZoneResult.OK);
      const got = await readBytes(s, 16 * bs);
      expect(Buffer.from(got.subarray(0, 8 * bs)).equals(Buffer.from(pattern(8 * bs, 41)))).toBe(true);
      expect(got.subarray(8 * bs).every((v) => v === 0)).toBe(true);
    });

    it('reset-all empties every sequential zone and leaves conventional zones and their data alone', async () => {
      expect(await write(seq(0), bs)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.OPEN, seq(1))).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.FINISH, seq(2))).toBe(ZoneResult.OK);
      expect(await write(seq(3), bs)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.CLOSE, seq(3))).toBe(ZoneResult.OK);
      if (g.conventionalZones) expect(await write(conv(0), 2 * bs, 51)).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
      for (const z of await reportAll(b)) {
        if (z.type === ZoneType.CONVENTIONAL) expect(z.cond).toBe(ZoneCond.NOT_WP);
        else expect(z, `zone at ${z.start}`).toMatchObject({ cond: ZoneCond.EMPTY, wp: z.start });
      }
      if (g.conventionalZones) expect(Buffer.from(await readBytes(conv(0), 2 * bs)).equals(Buffer.from(pattern(2 * bs, 51)))).toBe(true);
      expect(await write(seq(0), bs)).toBe(ZoneResult.OK); // writable from the start again
    });

    it('open limit: max_open explicit opens succeed, one more and a write needing an open fail with OPEN_RESOURCE', async (ctx) => {
      if (g.maxOpenZones === 0 || nrSeq() < g.maxOpenZones + 2) ctx.skip();
      for (let i = 0; i < g.maxOpenZones; i++) expect(await b.zoneMgmt(ZoneOp.OPEN, seq(i)), `open ${i}`).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.OPEN, seq(g.maxOpenZones))).toBe(ZoneResult.OPEN_RESOURCE);
      expect(await write(seq(g.maxOpenZones), bs)).toBe(ZoneResult.OPEN_RESOURCE);
      expect((await b.append(seq(g.maxOpenZones), [new Uint8Array(bs)])).result).toBe(ZoneResult.OPEN_RESOURCE);
      expect(await zoneAt(b, seq(g.maxOpenZones))).toMatchObject({ cond: ZoneCond.EMPTY, wp: seq(g.maxOpenZones) });
      // Writes into the explicitly open zones are fine.
      expect(await write(seq(0), bs)).toBe(ZoneResult.OK);
      // Closing one frees an open resource.
      expect(await b.zoneMgmt(ZoneOp.CLOSE, seq(1))).toBe(ZoneResult.OK);
      expect(await write(seq(g.maxOpenZones), bs)).toBe(ZoneResult.OK);
      expect(await openCount()).toBe(g.maxOpenZones);
    });

    it('implicit opens beyond the open limit close an implicitly open zone instead of failing', async (ctx) => {
      const limit = g.maxOpenZones;
      const active = g.maxActiveZones || Infinity;
      if (limit === 0 || active < limit + 2 || nrSeq() < limit + 2) ctx.skip();
      for (let i = 0; i < limit + 2; i++) expect(await write(seq(i), bs), `write zone ${i}`).toBe(ZoneResult.OK);
      const zones = (await reportAll(b, seq(0), limit + 2));
      expect(zones.filter((z) => isOpenCond(z.cond)).length).toBe(limit);
      expect(zones.filter((z) => z.cond === ZoneCond.CLOSED).length).toBe(2);
      // The zone written last is open; which older ones were closed is the device's choice.
      expect(zones[limit + 1].cond).toBe(ZoneCond.IMP_OPEN);
      for (const z of zones) expect(z.wp).toBe(z.start + bsS);
    });

    it('active limit: a zone that would exceed max_active fails with ACTIVE_RESOURCE (which wins over OPEN_RESOURCE)', async (ctx) => {
      const active = g.maxActiveZones;
      if (active === 0 || nrSeq() < active + 2) ctx.skip();
      // Make max_active zones active: written and closed (CLOSED still holds an active resource).
      for (let i = 0; i < active; i++) {
        expect(await write(seq(i), bs), `write zone ${i}`).toBe(ZoneResult.OK);
        expect(await b.zoneMgmt(ZoneOp.CLOSE, seq(i))).toBe(ZoneResult.OK);
      }
      expect(await activeCount()).toBe(active);
      const fresh = seq(active);
      expect(await write(fresh, bs)).toBe(ZoneResult.ACTIVE_RESOURCE);
      expect(await b.zoneMgmt(ZoneOp.OPEN, fresh)).toBe(ZoneResult.ACTIVE_RESOURCE);
      expect((await b.append(fresh, [new Uint8Array(bs)])).result).toBe(ZoneResult.ACTIVE_RESOURCE);
      expect(await zoneAt(b, fresh)).toMatchObject({ cond: ZoneCond.EMPTY, wp: fresh });
      // A CLOSED zone may be written again: it is active already.
      expect(await write(seq(0) + bsS, bs)).toBe(ZoneResult.OK);
      // Finishing one active zone frees its resource.
      expect(await b.zoneMgmt(ZoneOp.FINISH, seq(1))).toBe(ZoneResult.OK);
      expect(await write(fresh, bs)).toBe(ZoneResult.OK);
      expect(await activeCount()).toBe(active);
    });

    it('finishing an EMPTY zone needs an open resource like any open', async (ctx) => {
      if (t.quirks?.finishEmptyUncounted || g.maxOpenZones === 0 || nrSeq() < g.maxOpenZones + 1) ctx.skip();
      for (let i = 0; i < g.maxOpenZones; i++) expect(await b.zoneMgmt(ZoneOp.OPEN, seq(i))).toBe(ZoneResult.OK);
      expect(await b.zoneMgmt(ZoneOp.FINISH, seq(g.maxOpenZones))).toBe(ZoneResult.OPEN_RESOURCE);
      expect((await zoneAt(b, seq(g.maxOpenZones))).cond).toBe(ZoneCond.EMPTY);
      // A zone that is open already can always be finished.
      expect(await b.zoneMgmt(ZoneOp.FINISH, seq(0))).toBe(ZoneResult.OK);
    });

    it('flush succeeds', async () => {
      expect(await write(seq(0), bs)).toBe(ZoneResult.OK);
      expect(await b.flush()).toBe(ZoneResult.OK);
    });
  });
}
