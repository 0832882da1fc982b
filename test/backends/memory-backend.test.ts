// EmulatedBackend over memory storage: data path, unwritten-data reads (spec §1.7 item 19:
// zero fill), concurrent appends, zone management ordering against in-flight writes, and a
// read-only device (item 21: writes fail with IOERR and write nothing).
import { describe, expect, it } from 'vitest';
import type { ZoneDescriptor } from '../../src/backends/backend.js';
import type { IoVec } from '../../src/iovec.js';
import { EmulatedBackend } from '../../src/backends/emulated-backend.js';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { MemoryStorage } from '../../src/backends/memory-storage.js';
import type { Storage } from '../../src/backends/storage.js';
import { makeGeometry, type GeometryInput } from '../../src/zoned/geometry.js';
import { ZoneEngine } from '../../src/zoned/zone-engine.js';
import type { PersistedZoneState } from '../../src/zoned/zone-table.js';
import { ZoneCond, ZoneOp } from '../../src/zoned/types.js';
import { cn, rn } from '../zoned/helpers.js';

const ZS = 128; // sectors per zone (64 KiB)
const SEC = 512;
const S = (z: number): number => z * ZS;
const GEO: GeometryInput = { capacitySectors: 8 * ZS, zoneSectors: ZS, conventionalZones: 1, maxAppendSectors: 64 };

/** Deterministic pattern for `sectors` sectors, tagged so blocks from different writes differ. */
function pattern(sectors: number, tag: number): Uint8Array {
  const b = new Uint8Array(sectors * SEC);
  for (let i = 0; i < b.length; i++) b[i] = (tag * 131 + i * 7 + (i >> 9)) & 0xff || 1;
  return b;
}
/** Read `sectors` at `sector` into a buffer pre-filled with 0xAA (so "not filled" is visible). */
async function readBack(be: EmulatedBackend, sector: number, sectors: number, split = false): Promise<{ r: string; data: Uint8Array }> {
  const data = new Uint8Array(sectors * SEC).fill(0xaa);
  // Optionally split into several iovec elements with odd boundaries.
  const iov: IoVec = split && sectors > 1 ? [data.subarray(0, 700), data.subarray(700, data.length - 300), data.subarray(data.length - 300)] : [data];
  const r = await be.read(sector, iov);
  return { r: rn(r), data };
}
const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

async function zones(be: EmulatedBackend, sector = 0, max = 1000): Promise<(ZoneDescriptor & { c: string })[]> {
  const out: (ZoneDescriptor & { c: string })[] = [];
  await be.reportZones(sector, max, (start, len, cap, wp, type, cond) => { out.push({ start, len, cap, wp, type, cond, c: cn(cond) }); return true; });
  return out;
}
async function zone(be: EmulatedBackend, z: number): Promise<{ c: string; wp: number }> {
  const [d] = await zones(be, S(z), 1);
  return { c: d.c, wp: d.wp };
}

/** Memory storage whose writes complete only when the test says so (or fail on demand). */
class GatedStorage implements Storage {
  readonly mem: MemoryStorage;
  gated = false;
  readonly pending: { offset: number; release: (ok: boolean) => void }[] = [];
  readonly events: string[] = [];
  constructor(bytes: number) { this.mem = new MemoryStorage(bytes); }
  read(o: number, iov: IoVec, done: (err: Error | null) => void): void { this.mem.read(o, iov, done); }
  write(o: number, iov: IoVec, done: (err: Error | null) => void): void {
    if (!this.gated) { this.mem.write(o, iov, done); return; }
    // Copy now: the guest buffer stays valid until completion, but be strict.
    const copy = iov.map((b) => b.slice());
    this.pending.push({
      offset: o,
      release: (ok) => {
        if (!ok) { done(new Error('injected write failure')); return; }
        this.mem.copyIn(o, copy);
        this.events.push(`write@${o / SEC}`);
        done(null);
      },
    });
  }
  flush(): void { /* gated writes complete when released */ }
  sync(): Promise<void> { return Promise.resolve(); }
  /** When set, discards wait for releaseDiscards() (the file backend frees space on the thread pool). */
  discardGated = false;
  private readonly pendingDiscards: (() => void)[] = [];
  discard(o: number, n: number): Promise<void> {
    this.events.push(`discard@${o / SEC}+${n / SEC}`);
    if (!this.discardGated) return this.mem.discard(o, n);
    return new Promise<void>((resolve) => this.pendingDiscards.push(() => {
      this.events.push(`discarded@${o / SEC}`);
      void this.mem.discard(o, n).then(resolve);
    }));
  }
  releaseDiscards(): void { for (const go of this.pendingDiscards.splice(0)) go(); }
  persistZone(z: number, s: PersistedZoneState): void { this.events.push(`persist ${z} wp ${s.wp}`); }
  close(): Promise<void> { return this.mem.close(); }
  /** Release the pending write at sector `sector`. */
  release(sector: number, ok = true): void {
    const i = this.pending.findIndex((p) => p.offset === sector * SEC);
    if (i < 0) throw new Error(`no pending write at ${sector}`);
    const [p] = this.pending.splice(i, 1);
    p.release(ok);
  }
}
function gatedBackend(input: GeometryInput = GEO): { be: EmulatedBackend; st: GatedStorage } {
  const geo = makeGeometry(input);
  const st = new GatedStorage(geo.capacitySectors * SEC);
  return { be: new EmulatedBackend(new ZoneEngine(geo), st, { serial: 'test' }), st };
}
/** Let promise callbacks run. */
const ticks = async (n = 10): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

describe('memory backend data path', () => {
  it('advertises the geometry it was built with', () => {
    const be = createMemoryBackend(GEO);
    expect(be.info.capacitySectors).toBe(8 * ZS);
    expect(be.info.readOnly).toBe(false);
    expect(be.info.zoned).toMatchObject({ zoneSectors: ZS, nrZones: 8, conventionalZones: 1, maxAppendSectors: 64 });
  });

  it('data written at the wp of a sequential zone reads back identically', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(8, 1), b = pattern(24, 2);
    expect(rn(await be.write(S(2), [a]))).toBe('OK');
    expect(rn(await be.write(S(2) + 8, [b.subarray(0, 1000), b.subarray(1000)]))).toBe('OK'); // scattered source
    const { r, data } = await readBack(be, S(2), 32, true);
    expect(r).toBe('OK');
    expect(data.subarray(0, 8 * SEC)).toEqual(a);
    expect(data.subarray(8 * SEC)).toEqual(b);
    expect(await zone(be, 2)).toEqual({ c: 'IMP_OPEN', wp: S(2) + 32 });
  });

  it('conventional zone: random-order writes read back, never-written sectors read zeroes', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(4, 3), b = pattern(2, 4);
    expect(rn(await be.write(40, [a]))).toBe('OK');
    expect(rn(await be.write(10, [b]))).toBe('OK');
    const { r, data } = await readBack(be, 0, 64);
    expect(r).toBe('OK');
    expect(data.subarray(10 * SEC, 12 * SEC)).toEqual(b);
    expect(data.subarray(40 * SEC, 44 * SEC)).toEqual(a);
    expect(isZero(data.subarray(0, 10 * SEC))).toBe(true);
    expect(isZero(data.subarray(12 * SEC, 40 * SEC))).toBe(true);
    expect(isZero(data.subarray(44 * SEC))).toBe(true);
  });

  it('reads past the wp return zeroes', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(5, 5);
    await be.write(S(3), [a]);
    const { r, data } = await readBack(be, S(3), ZS, true);
    expect(r).toBe('OK');
    expect(data.subarray(0, 5 * SEC)).toEqual(a);
    expect(isZero(data.subarray(5 * SEC))).toBe(true);
    const tail = await readBack(be, S(3) + 64, 16);
    expect(tail.r).toBe('OK');
    expect(isZero(tail.data)).toBe(true);
  });

  it('reads of an EMPTY zone return zeroes', async () => {
    const be = createMemoryBackend(GEO);
    const { r, data } = await readBack(be, S(5), 32);
    expect(r).toBe('OK');
    expect(isZero(data)).toBe(true);
  });

  it('after FINISH the finished-but-unwritten range reads zeroes', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(10, 6);
    await be.write(S(2), [a]);
    expect(rn(await be.zoneMgmt(ZoneOp.FINISH, S(2)))).toBe('OK');
    expect(await zone(be, 2)).toEqual({ c: 'FULL', wp: S(3) });
    const { r, data } = await readBack(be, S(2), ZS);
    expect(r).toBe('OK');
    expect(data.subarray(0, 10 * SEC)).toEqual(a);
    expect(isZero(data.subarray(10 * SEC))).toBe(true);
  });

  it('after RESET the old data reads as zeroes, also once new (shorter) data is written', async () => {
    const be = createMemoryBackend(GEO);
    await be.write(S(4), [pattern(64, 7)]);
    expect(rn(await be.zoneMgmt(ZoneOp.RESET, S(4)))).toBe('OK');
    expect(await zone(be, 4)).toEqual({ c: 'EMPTY', wp: S(4) });
    let rb = await readBack(be, S(4), 64);
    expect(rb.r).toBe('OK');
    expect(isZero(rb.data)).toBe(true);
    const b = pattern(4, 8);
    await be.write(S(4), [b]);
    rb = await readBack(be, S(4), 64);
    expect(rb.data.subarray(0, 4 * SEC)).toEqual(b);
    expect(isZero(rb.data.subarray(4 * SEC))).toBe(true);
    // Finish right after: the old (pre-reset) bytes must not reappear in the finished range.
    await be.zoneMgmt(ZoneOp.FINISH, S(4));
    rb = await readBack(be, S(4), ZS);
    expect(isZero(rb.data.subarray(4 * SEC))).toBe(true);
  });

  it('after RESET_ALL old data of every reset zone reads as zeroes', async () => {
    const be = createMemoryBackend(GEO);
    for (const z of [1, 2, 6]) await be.write(S(z), [pattern(16, z)]);
    await be.zoneMgmt(ZoneOp.FINISH, S(6));
    expect(rn(await be.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe('OK');
    for (const z of [1, 2, 6]) {
      const rb = await readBack(be, S(z), ZS);
      expect(isZero(rb.data)).toBe(true);
      expect(await zone(be, z)).toEqual({ c: 'EMPTY', wp: S(z) });
    }
  });

  it('RESET_ALL leaves conventional zone data alone', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(8, 9);
    await be.write(16, [a]);
    await be.zoneMgmt(ZoneOp.RESET_ALL, 0);
    expect((await readBack(be, 16, 8)).data).toEqual(a);
  });

  it('zone-model errors are passed through and change nothing', async () => {
    const be = createMemoryBackend(GEO);
    await be.write(S(2), [pattern(8, 1)]);
    expect(rn(await be.write(S(2), [pattern(8, 2)]))).toBe('UNALIGNED_WP');
    expect(rn(await be.write(S(3) - 4, [pattern(8, 2)]))).toBe('INVALID'); // spans zones
    expect(rn((await be.append(S(2) + 8, [pattern(8, 2)])).result)).toBe('INVALID');
    expect(rn((await be.append(S(2), [pattern(65, 2)])).result)).toBe('INVALID'); // > max append 64
    expect(rn((await be.append(0, [pattern(8, 2)])).result)).toBe('INVALID'); // conventional
    expect((await readBack(be, S(2), 8)).data).toEqual(pattern(8, 1));
    expect(await zone(be, 2)).toEqual({ c: 'IMP_OPEN', wp: S(2) + 8 });
  });

  it('OFFLINE zone: reads and writes fail; READONLY zone: reads return the data, writes fail', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(8, 10);
    await be.write(S(2), [a]);
    await be.write(S(3), [a]);
    expect(rn(await be.zoneMgmt(ZoneOp.SET_READONLY, S(2)))).toBe('OK');
    expect(rn(await be.zoneMgmt(ZoneOp.SET_OFFLINE, S(3)))).toBe('OK');
    const ro = await readBack(be, S(2), 16);
    expect(ro.r).toBe('OK');
    expect(ro.data.subarray(0, 8 * SEC)).toEqual(a);
    expect(isZero(ro.data.subarray(8 * SEC))).toBe(true);
    expect(rn(await be.write(S(2) + 8, [a]))).toBe('INVALID');
    expect((await readBack(be, S(3), 8)).r).toBe('INVALID');
    expect(rn(await be.write(S(3) + 8, [a]))).toBe('INVALID');
  });

  it('faults live: set while writes are in flight (they finish first), shown in the next report; CLEAR_FAULT brings the zones back', async () => {
    const be = createMemoryBackend(GEO);
    const a = pattern(8, 11);
    const inflight = be.write(S(2), [a]);
    const set = be.zoneMgmt(ZoneOp.SET_READONLY, S(2));
    expect(rn(await inflight)).toBe('OK');
    expect(rn(await set)).toBe('OK');
    await be.write(S(3), [a]);
    expect(rn(await be.zoneMgmt(ZoneOp.SET_OFFLINE, S(3)))).toBe('OK');
    const rep = await zones(be, S(2), 2);
    expect(rep.map((z) => [z.c, z.wp])).toEqual([['READONLY', -1], ['OFFLINE', -1]]);
    expect(rn(await be.zoneMgmt(ZoneOp.CLEAR_FAULT, S(2)))).toBe('OK');
    expect(rn(await be.zoneMgmt(ZoneOp.CLEAR_FAULT, S(3)))).toBe('OK');
    expect(await zone(be, 2)).toEqual({ c: 'CLOSED', wp: S(2) + 8 });
    expect(await zone(be, 3)).toEqual({ c: 'EMPTY', wp: S(3) });
    expect((await readBack(be, S(2), 8)).data).toEqual(a);
    const gone = await readBack(be, S(3), 8);
    expect(gone.r).toBe('OK');
    expect(isZero(gone.data)).toBe(true);
    expect(rn(await be.write(S(2) + 8, [a]))).toBe('OK');
    expect(rn(await be.write(S(3), [a]))).toBe('OK');
    expect((await readBack(be, S(3), 8)).data).toEqual(a);
  });
});

describe('concurrent zone append', () => {
  it('16 concurrent appends to one zone: distinct contiguous sectors, each block at its returned sector', async () => {
    const be = createMemoryBackend({ ...GEO, capacitySectors: 8 * 256, zoneSectors: 256 });
    const sizes = Array.from({ length: 16 }, (_, i) => 1 + ((i * 5) % 8)); // 1..8 sectors, mixed
    const blocks = sizes.map((n, i) => pattern(n, 100 + i));
    const results = await Promise.all(blocks.map((b) => be.append(256 * 2, [b])));
    for (const r of results) expect(rn(r.result)).toBe('OK');
    // Distinct, and together they tile [zone start, zone start + total) without gaps.
    const order = results.map((r, i) => ({ s: r.sector, n: sizes[i], i })).sort((x, y) => x.s - y.s);
    let at = 256 * 2;
    for (const o of order) { expect(o.s).toBe(at); at += o.n; }
    const total = sizes.reduce((x, y) => x + y, 0);
    expect(at).toBe(256 * 2 + total);
    for (let i = 0; i < 16; i++) {
      const rb = await readBack(be, results[i].sector, sizes[i]);
      expect(rb.r).toBe('OK');
      expect(rb.data).toEqual(blocks[i]);
    }
    const [d] = await zones(be, 512, 1);
    expect(d.wp).toBe(512 + total);
  });

  it('concurrent appends completing out of order still land where they said and resolve in sector order', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const blocks = [0, 1, 2, 3].map((i) => pattern(4, 50 + i));
    const resolved: number[] = [];
    const ps = blocks.map((b, i) => be.append(S(2), [b]).then((r) => { resolved.push(i); return r; }));
    await ticks();
    expect(st.pending.map((p) => p.offset / SEC)).toEqual([S(2), S(2) + 4, S(2) + 8, S(2) + 12]);
    st.release(S(2) + 12);
    st.release(S(2) + 4);
    await ticks();
    expect(resolved).toEqual([]); // nothing acknowledged before the first write is durable
    st.release(S(2));
    await ticks();
    expect(resolved).toEqual([0, 1]);
    st.release(S(2) + 8);
    const rs = await Promise.all(ps);
    expect(resolved).toEqual([0, 1, 2, 3]);
    expect(rs.map((r) => [rn(r.result), r.sector])).toEqual([['OK', S(2)], ['OK', S(2) + 4], ['OK', S(2) + 8], ['OK', S(2) + 12]]);
    for (let i = 0; i < 4; i++) expect((await readBack(be, S(2) + 4 * i, 4)).data).toEqual(blocks[i]);
  });

  it('a failed append fails the later appends of the zone and the zone wp rolls back', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const ps = [0, 1, 2].map((i) => be.append(S(2), [pattern(4, 60 + i)]));
    await ticks();
    st.release(S(2));
    await ticks(); // the first append is acknowledged before the failure happens
    st.release(S(2) + 4, false);
    await ticks();
    st.release(S(2) + 8);
    const rs = await Promise.all(ps);
    expect(rs.map((r) => rn(r.result))).toEqual(['OK', 'IO_ERROR', 'IO_ERROR']);
    expect(await zone(be, 2)).toEqual({ c: 'IMP_OPEN', wp: S(2) + 4 });
    st.gated = false;
    const again = await be.append(S(2), [pattern(4, 70)]);
    expect([rn(again.result), again.sector]).toEqual(['OK', S(2) + 4]);
    expect((await readBack(be, S(2), 8)).data.subarray(4 * SEC)).toEqual(pattern(4, 70));
  });

  it('an append whose data landed is acknowledged OK even if a LATER append of the zone failed first', async () => {
    // Contract: a failed write fails the later in-flight writes of its zone, not earlier ones.
    const { be, st } = gatedBackend();
    st.gated = true;
    const ps = [0, 1, 2].map((i) => be.append(S(2), [pattern(4, 80 + i)]));
    await ticks();
    st.release(S(2) + 4, false); // the second append fails first ...
    await ticks();
    st.release(S(2)); // ... then the first one lands
    await ticks();
    st.release(S(2) + 8);
    const rs = await Promise.all(ps);
    expect(rs.map((r) => rn(r.result))).toEqual(['OK', 'IO_ERROR', 'IO_ERROR']);
    expect(await zone(be, 2)).toEqual({ c: 'IMP_OPEN', wp: S(2) + 4 });
    expect((await readBack(be, S(2), 4)).data).toEqual(pattern(4, 80));
  });
});

describe('zone management and in-flight writes', () => {
  it('zoneMgmt(FINISH) waits for the in-flight writes of the zone', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const order: string[] = [];
    const w1 = be.write(S(2), [pattern(8, 1)]).then((r) => { order.push(`w1 ${rn(r)}`); });
    const w2 = be.write(S(2) + 8, [pattern(8, 2)]).then((r) => { order.push(`w2 ${rn(r)}`); });
    const m = be.zoneMgmt(ZoneOp.FINISH, S(2)).then((r) => { order.push(`finish ${rn(r)}`); });
    await ticks();
    expect(order).toEqual([]);
    st.release(S(2) + 8);
    await ticks();
    expect(order).toEqual([]);
    st.release(S(2));
    await Promise.all([w1, w2, m]);
    expect(order).toEqual(['w1 OK', 'w2 OK', 'finish OK']);
    expect(await zone(be, 2)).toEqual({ c: 'FULL', wp: S(3) });
    const rb = await readBack(be, S(2), ZS);
    expect(rb.data.subarray(0, 8 * SEC)).toEqual(pattern(8, 1));
    expect(rb.data.subarray(8 * SEC, 16 * SEC)).toEqual(pattern(8, 2));
    expect(isZero(rb.data.subarray(16 * SEC))).toBe(true);
  });

  it('zoneMgmt(RESET) waits for in-flight writes, then the data is gone', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const order: string[] = [];
    const w1 = be.write(S(3), [pattern(8, 3)]).then((r) => { order.push(`w ${rn(r)}`); });
    const m = be.zoneMgmt(ZoneOp.RESET, S(3)).then((r) => { order.push(`reset ${rn(r)}`); });
    await ticks();
    expect(order).toEqual([]);
    st.release(S(3));
    await Promise.all([w1, m]);
    expect(order).toEqual(['w OK', 'reset OK']);
    expect(await zone(be, 3)).toEqual({ c: 'EMPTY', wp: S(3) });
    expect(isZero((await readBack(be, S(3), 8)).data)).toBe(true);
  });

  it('zoneMgmt(CLOSE) issued behind a write closes the zone with the written data below its wp', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const w1 = be.write(S(4), [pattern(8, 4)]);
    const m = be.zoneMgmt(ZoneOp.CLOSE, S(4));
    await ticks();
    st.release(S(4));
    expect(rn(await w1)).toBe('OK');
    expect(rn(await m)).toBe('OK');
    expect(await zone(be, 4)).toEqual({ c: 'CLOSED', wp: S(4) + 8 });
  });

  it('zoneMgmt of another zone does not wait for unrelated in-flight writes', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    const w1 = be.write(S(2), [pattern(8, 1)]);
    await ticks();
    expect(rn(await be.zoneMgmt(ZoneOp.OPEN, S(5)))).toBe('OK');
    expect(st.pending).toHaveLength(1);
    st.release(S(2));
    expect(rn(await w1)).toBe('OK');
  });

  it('RESET_ALL waits for in-flight writes of every zone', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    let done = false;
    const w1 = be.write(S(2), [pattern(8, 1)]);
    const w2 = be.write(S(5), [pattern(8, 2)]);
    const m = be.zoneMgmt(ZoneOp.RESET_ALL, 0).then((r) => { done = true; return r; });
    await ticks();
    st.release(S(2));
    await ticks();
    expect(done).toBe(false);
    st.release(S(5));
    expect([rn(await w1), rn(await w2), rn(await m)]).toEqual(['OK', 'OK', 'OK']);
    expect(await zone(be, 2)).toEqual({ c: 'EMPTY', wp: S(2) });
    expect(await zone(be, 5)).toEqual({ c: 'EMPTY', wp: S(5) });
  });

  it('the reset zone table is persisted before the zone space is discarded', async () => {
    const { be, st } = gatedBackend();
    await be.write(S(2), [pattern(8, 1)]);
    st.events.length = 0;
    await be.zoneMgmt(ZoneOp.RESET, S(2));
    const p = st.events.indexOf(`persist 2 wp ${S(2)}`);
    const d = st.events.findIndex((e) => e.startsWith(`discard@${S(2)}`));
    expect(p).toBeGreaterThanOrEqual(0);
    if (d >= 0) expect(p).toBeLessThan(d);
  });

  it('writes and reads of a zone whose space is still being freed wait for it; other zones do not', async () => {
    const { be, st } = gatedBackend();
    await be.write(S(2), [pattern(8, 1)]);
    await be.write(S(3), [pattern(8, 2)]);
    st.discardGated = true;
    let resetDone = false;
    const reset = be.zoneMgmt(ZoneOp.RESET, S(2)).then((r) => { resetDone = true; return r; });
    for (let i = 0; i < 20 && !st.events.some((e) => e.startsWith(`discard@${S(2)}`)); i++) await ticks();
    expect(st.events.some((e) => e.startsWith(`discard@${S(2)}`))).toBe(true);
    // A guest that does not wait for the reset: its write is accepted at the new write
    // pointer, but the data must not land before the old data is freed, or it is freed too.
    let writeDone = false;
    const w = be.write(S(2), [pattern(8, 7)]).then((r) => { writeDone = true; return r; });
    const other = await be.write(S(3) + 8, [pattern(8, 3)]);
    expect(rn(other)).toBe('OK');
    await ticks();
    expect(writeDone).toBe(false);
    expect(resetDone).toBe(false);
    st.releaseDiscards();
    expect(rn(await reset)).toBe('OK');
    expect(rn(await w)).toBe('OK');
    const back = new Uint8Array(8 * SEC);
    expect(rn(await be.read(S(2), [back]))).toBe('OK');
    expect(back).toEqual(pattern(8, 7));
    expect(await zone(be, 2)).toEqual({ c: 'IMP_OPEN', wp: S(2) + 8 });
  });

  it('a write whose zone state cannot be persisted is not acknowledged OK, and later writes are refused', async () => {
    const { be, st } = gatedBackend();
    expect(rn(await be.write(S(2), [pattern(8, 1)]))).toBe('OK');
    st.persistZone = () => { throw new Error('injected zone table failure'); };
    expect(rn(await be.write(S(2) + 8, [pattern(8, 2)]))).toBe('IO_ERROR');
    expect(rn(await be.write(S(3), [pattern(8, 3)]))).toBe('IO_ERROR');
    expect(rn(await be.zoneMgmt(ZoneOp.RESET, S(2)))).not.toBe('OK');
  });
});

describe('read-only device', () => {
  it('refuses writes, appends and zone management with READ_ONLY and changes nothing', async () => {
    const be = createMemoryBackend(GEO, { readOnly: true });
    expect(be.info.readOnly).toBe(true);
    expect(rn(await be.write(S(2), [pattern(8, 1)]))).toBe('READ_ONLY');
    expect(rn(await be.write(0, [pattern(8, 1)]))).toBe('READ_ONLY'); // conventional too
    expect(rn((await be.append(S(2), [pattern(8, 1)])).result)).toBe('READ_ONLY');
    expect(rn(await be.zoneMgmt(ZoneOp.OPEN, S(3)))).toBe('READ_ONLY');
    expect(rn(await be.zoneMgmt(ZoneOp.RESET_ALL, 0))).toBe('READ_ONLY');
    expect(await zone(be, 2)).toEqual({ c: 'EMPTY', wp: S(2) });
    expect(await zone(be, 3)).toEqual({ c: 'EMPTY', wp: S(3) });
    const rb = await readBack(be, 0, 8);
    expect(rb.r).toBe('OK');
    expect(isZero(rb.data)).toBe(true);
  });
});

describe('reports through the backend', () => {
  it('reportZones matches the zone states and honours maxZones and a refusing sink', async () => {
    const be = createMemoryBackend(GEO);
    await be.write(S(1), [pattern(8, 1)]);
    await be.zoneMgmt(ZoneOp.OPEN, S(2));
    const all = await zones(be);
    expect(all).toHaveLength(8);
    expect(all.map((d) => d.c)).toEqual(['NOT_WP', 'IMP_OPEN', 'EXP_OPEN', 'EMPTY', 'EMPTY', 'EMPTY', 'EMPTY', 'EMPTY']);
    expect(all[1].wp).toBe(S(1) + 8);
    expect(all[0].cond).toBe(ZoneCond.NOT_WP);
    expect(await zones(be, S(6) + 3, 5)).toHaveLength(2);
    let calls = 0;
    const n = await be.reportZones(0, 8, () => ++calls < 3);
    expect(n).toBe(2);
  });

  it('close() waits for in-flight writes', async () => {
    const { be, st } = gatedBackend();
    st.gated = true;
    let closed = false;
    const w1 = be.write(S(2), [pattern(8, 1)]);
    const c = be.close().then(() => { closed = true; });
    await ticks();
    expect(closed).toBe(false);
    st.release(S(2));
    expect(rn(await w1)).toBe('OK');
    await c;
    expect(closed).toBe(true);
  });
});

