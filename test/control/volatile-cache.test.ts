// The volatile-cache wrapper on a RAM disk: what a flush covers, the undo log's limit
// (oldest overwrites destaged), reset/finish making a zone durable, and the zone engine's
// state after the cut (open zones closed, invariants hold).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { VolatileCacheBackend } from '../../src/control/volatile-cache.js';
import { Rng } from '../../src/control/rng.js';
import { ZoneOp, ZoneResult } from '../../src/zoned/types.js';

const ZS = 2048; // 1 MiB zones
const block = (v: number): Uint8Array => new Uint8Array(4096).fill(v);

function setup(maxUndoBytes?: number) {
  const disk = createMemoryBackend({ capacitySectors: 16 * ZS, zoneSectors: ZS, conventionalZones: 2, blockSize: 4096 });
  let writeback = true;
  const cache = new VolatileCacheBackend(disk, { writeback: () => writeback, logger: pino({ level: 'silent' }), maxUndoBytes });
  return { disk, cache, setWriteback: (v: boolean) => { writeback = v; } };
}
const first = async (c: VolatileCacheBackend, sector: number): Promise<number> => {
  const b = new Uint8Array(4096);
  expect(await c.read(sector, [b])).toBe(ZoneResult.OK);
  return b[0];
};

describe('volatile cache', () => {
  it('a flush covers the writes completed before it; only later ones are lost', async () => {
    const { cache, disk } = setup();
    expect(await cache.write(2 * ZS, [block(1)])).toBe(ZoneResult.OK);
    expect(await cache.write(0, [block(1)])).toBe(ZoneResult.OK);
    expect(await cache.flush()).toBe(ZoneResult.OK);
    expect(await cache.write(2 * ZS + 8, [block(2)])).toBe(ZoneResult.OK);
    expect(await cache.write(0, [block(2)])).toBe(ZoneResult.OK);
    expect(cache.unflushedWrites).toBe(2);
    const losses = await cache.cut('all', new Rng(1));
    expect(losses).toEqual([
      { zone: 0, type: 'conventional', unflushedWrites: 1, lostWrites: 1, lostBytes: 4096 },
      { zone: 2, type: 'sequential', unflushedWrites: 1, lostWrites: 1, lostBytes: 4096, wpBefore: 2 * ZS + 16, wpAfter: 2 * ZS + 8 },
    ]);
    expect(await first(cache, 0)).toBe(1);
    expect(await first(cache, 2 * ZS)).toBe(1);
    expect(await first(cache, 2 * ZS + 8)).toBe(0);
    expect(disk.engine.zoneWp(2)).toBe(2 * ZS + 8);
    expect(disk.engine.zoneCond(2)).toBe(4); // closed, as after a restart
    expect(disk.engine.checkInvariants()).toEqual([]);
    expect(cache.unflushedWrites).toBe(0);
  });

  it('over the undo limit the oldest overwrites count as written (destaged); the newest are undone in reverse', async () => {
    const { cache } = setup(2 * 4096);
    for (let v = 1; v <= 5; v++) expect(await cache.write(0, [block(v)])).toBe(ZoneResult.OK);
    expect(cache.unflushedWrites).toBe(2);
    expect(cache.unflushedBytes).toBe(8192);
    const losses = await cache.cut('all', new Rng(1));
    expect(losses[0]).toMatchObject({ zone: 0, lostWrites: 2 });
    // Writes 4 and 5 lost: the block holds write 3's data.
    expect(await first(cache, 0)).toBe(3);
  });

  it('random keeps a later overlapping write over an earlier lost one', async () => {
    // Find a seed whose choice for 2 writes is [lost, kept].
    let seed = 0;
    for (; seed < 1000; seed++) { const r = new Rng(seed); if (r.next() < 0.5 && !(r.next() < 0.5)) break; }
    const { cache } = setup();
    expect(await cache.write(0, [block(1), block(1)])).toBe(ZoneResult.OK);
    expect(await cache.write(8, [block(2)])).toBe(ZoneResult.OK);
    const losses = await cache.cut('random', new Rng(seed));
    expect(losses[0]).toMatchObject({ lostWrites: 1, lostBytes: 4096 });
    expect(await first(cache, 0)).toBe(0); // the lost write's first block: old contents
    expect(await first(cache, 8)).toBe(2); // covered by the kept later write
  });

  it('zone reset and finish make the zone durable; write-through records nothing', async () => {
    const { cache, disk, setWriteback } = setup();
    expect(await cache.write(3 * ZS, [block(1)])).toBe(ZoneResult.OK);
    expect(await cache.zoneMgmt(ZoneOp.FINISH, 3 * ZS)).toBe(ZoneResult.OK);
    expect(await cache.write(4 * ZS, [block(1)])).toBe(ZoneResult.OK);
    expect(await cache.zoneMgmt(ZoneOp.RESET, 4 * ZS)).toBe(ZoneResult.OK);
    setWriteback(false);
    expect(await cache.write(5 * ZS, [block(1)])).toBe(ZoneResult.OK);
    expect(await cache.write(0, [block(7)])).toBe(ZoneResult.OK);
    expect(cache.unflushedWrites).toBe(0);
    expect(await cache.cut('all', new Rng(1))).toEqual([]);
    expect(disk.engine.zoneCond(3)).toBe(14);
    expect(await first(cache, 3 * ZS)).toBe(1);
    expect(await first(cache, 5 * ZS)).toBe(1);
    expect(await first(cache, 0)).toBe(7);
  });
});
