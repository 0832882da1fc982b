// The virtio-blk device model without a socket: chains in memory through BlkDevice onto a RAM
// disk. Features and config for discard/write-zeroes, what they do to the data and the
// memory, write-through, and the request hooks.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { MemoryDiskBackend } from '../../src/backends/memory-disk-backend.js';
import { BlkDevice, HOOK_DEFER, HOOK_RUN } from '../../src/blk/blk-device.js';
import { RequestKind, type BlkRequest } from '../../src/blk/request.js';
import { S, T, TestQueue, chain, segments, type ChainSpec, type TestChain } from './chains.js';

const MiB = 1 << 20;
const F = { FLUSH: 9, CONFIG_WCE: 11, DISCARD: 13, WRITE_ZEROES: 14, ZONED: 17 };
const bit = (n: number): bigint => 1n << BigInt(n);
const log = pino({ level: 'silent' });
const closers: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of closers.splice(0)) await c(); });

function disk(opts: { blockSize?: number; readOnly?: boolean } = {}): MemoryDiskBackend {
  const b = new MemoryDiskBackend(64 * MiB, { blockSize: opts.blockSize ?? 4096, readOnly: opts.readOnly });
  closers.push(() => b.close());
  return b;
}

function device(backend: Backend, features?: bigint, model: 'hm' | 'none' = 'none'): { dev: BlkDevice; q: TestQueue; run: (s: ChainSpec) => Promise<TestChain> } {
  const dev = new BlkDevice({ backend, numQueues: 1, logger: log, model });
  dev.setDriverFeatures(features ?? dev.deviceFeatures);
  const q = new TestQueue();
  const run = async (s: ChainSpec): Promise<TestChain> => {
    const c = chain(s);
    q.pending.push(c);
    const n = q.used.length + 1;
    dev.queueKicked(q);
    await q.waitUsed(n);
    return c;
  };
  return { dev, q, run };
}

const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

describe('discard and write zeroes on a regular disk', () => {
  it('are offered with their limits in the config space (as qemu-storage-daemon lays them out)', () => {
    const { dev } = device(disk());
    expect(dev.deviceFeatures & bit(F.DISCARD)).toBe(bit(F.DISCARD));
    expect(dev.deviceFeatures & bit(F.WRITE_ZEROES)).toBe(bit(F.WRITE_ZEROES));
    const cfg = dev.readConfig(0, 60);
    const dv = new DataView(cfg.buffer);
    expect(dv.getUint32(36, true), 'max_discard_sectors').toBe(1 << 21);
    expect(dv.getUint32(40, true), 'max_discard_seg').toBe(32);
    expect(dv.getUint32(44, true), 'discard_sector_alignment: one 4K block').toBe(8);
    expect(dv.getUint32(48, true), 'max_write_zeroes_sectors').toBe(1 << 21);
    expect(dv.getUint32(52, true), 'max_write_zeroes_seg').toBe(32);
    expect(dv.getUint8(56), 'write_zeroes_may_unmap').toBe(1);
  });

  it('are not offered on a zoned disk, a read-only one, or a backend that cannot do them', () => {
    const zoned = createMemoryBackend({ capacitySectors: 8 * 2048, zoneSectors: 2048, blockSize: 4096 });
    closers.push(() => zoned.close());
    for (const dev of [new BlkDevice({ backend: zoned, numQueues: 1, logger: log }), new BlkDevice({ backend: zoned, numQueues: 1, logger: log, model: 'none' }),
      new BlkDevice({ backend: disk({ readOnly: true }), numQueues: 1, logger: log })]) {
      expect(dev.deviceFeatures & (bit(F.DISCARD) | bit(F.WRITE_ZEROES))).toBe(0n);
      expect([...dev.readConfig(36, 24)].every((b) => b === 0)).toBe(true);
    }
  });

  it('discard frees the memory of the range and reads back zeroes; the rest of the data stays', async () => {
    const b = disk();
    const { run } = device(b);
    expect((await run({ type: T.OUT, sector: 0, out: [fill(4 * MiB, 0x5a)] })).status).toBe(S.OK);
    expect(b.allocatedBytes).toBe(4 * MiB);
    // Two segments: MiB 1 and MiB 3.
    const d = await run({ type: T.DISCARD, out: [segments([2048, 2048], [6144, 2048])] });
    expect(d.status).toBe(S.OK);
    expect(b.allocatedBytes).toBe(2 * MiB);
    const r = await run({ type: T.IN, sector: 0, inLens: [4 * MiB] });
    const data = r.writable[0];
    expect(data.subarray(0, MiB).every((x) => x === 0x5a)).toBe(true);
    expect(data.subarray(MiB, 2 * MiB).every((x) => x === 0)).toBe(true);
    expect(data.subarray(2 * MiB, 3 * MiB).every((x) => x === 0x5a)).toBe(true);
    expect(data.subarray(3 * MiB).every((x) => x === 0)).toBe(true);
  });

  it('write zeroes reads back zeroes; with unmap the memory is freed, without it stays', async () => {
    const b = disk();
    const { run } = device(b);
    await run({ type: T.OUT, sector: 0, out: [fill(2 * MiB, 0x77)] });
    expect((await run({ type: T.WRITE_ZEROES, out: [segments([0, 2048, 0])] })).status).toBe(S.OK);
    expect(b.allocatedBytes).toBe(2 * MiB);
    expect((await run({ type: T.WRITE_ZEROES, out: [segments([2048, 2048, 1])] })).status).toBe(S.OK);
    expect(b.allocatedBytes).toBe(MiB);
    // Partial block ranges inside a chunk: zeroes exactly there.
    await run({ type: T.OUT, sector: 4096, out: [fill(16384, 0x11)] });
    await run({ type: T.WRITE_ZEROES, out: [segments([4104, 8, 1])] });
    const r = await run({ type: T.IN, sector: 4096, inLens: [16384] });
    expect([...r.writable[0].subarray(4095, 4097)]).toEqual([0x11, 0]);
    expect([...r.writable[0].subarray(8191, 8193)]).toEqual([0, 0x11]);
  });

  it('a bad segment refuses the request before any segment runs', async () => {
    const b = disk();
    const { run } = device(b);
    await run({ type: T.OUT, sector: 0, out: [fill(MiB, 0x33)] });
    const d = await run({ type: T.DISCARD, out: [segments([0, 2048], [2048, 8, 2])] });
    expect(d.status).toBe(S.UNSUPP);
    expect(b.allocatedBytes).toBe(MiB);
    expect((await run({ type: T.WRITE_ZEROES, out: [segments([0, 8], [64 * 2048, 8])] })).status).toBe(S.IOERR);
    const r = await run({ type: T.IN, sector: 0, inLens: [4096] });
    expect(r.writable[0].every((x) => x === 0x33)).toBe(true);
  });

  it('a driver that did not negotiate them gets UNSUPP', async () => {
    const backend = disk();
    const probe = new BlkDevice({ backend, numQueues: 1, logger: log });
    const { run } = device(backend, probe.deviceFeatures & ~(bit(F.DISCARD) | bit(F.WRITE_ZEROES)));
    expect((await run({ type: T.DISCARD, out: [segments([0, 8])] })).status).toBe(S.UNSUPP);
    expect((await run({ type: T.WRITE_ZEROES, out: [segments([0, 8])] })).status).toBe(S.UNSUPP);
  });

  it('write zeroes is durable before completion in write-through mode; discard needs no flush', async () => {
    const inner = disk();
    let flushes = 0;
    const backend: Backend = {
      info: inner.info, read: (s, i) => inner.read(s, i), write: (s, i) => inner.write(s, i), append: () => inner.append(),
      flush: () => { flushes++; return inner.flush(); }, reportZones: () => inner.reportZones(), zoneMgmt: () => inner.zoneMgmt(),
      discard: (s, n) => inner.discard(s, n), writeZeroes: (s, n, u) => inner.writeZeroes(s, n, u), close: () => inner.close(),
    };
    const probe = new BlkDevice({ backend, numQueues: 1, logger: log });
    // Neither FLUSH nor CONFIG_WCE: the driver cannot ask for durability, the device writes through.
    const { run } = device(backend, probe.deviceFeatures & ~(bit(F.FLUSH) | bit(F.CONFIG_WCE)));
    await run({ type: T.WRITE_ZEROES, out: [segments([0, 8])] });
    expect(flushes).toBe(1);
    await run({ type: T.DISCARD, out: [segments([0, 8])] });
    expect(flushes).toBe(1);
  });
});

describe('one completion path', () => {
  it('answers every request type with the right length written', async () => {
    const { run, q } = device(disk());
    await run({ type: T.OUT, sector: 8, out: [fill(4096, 1)] });
    await run({ type: T.IN, sector: 8, inLens: [4096] });
    await run({ type: T.FLUSH });
    const id = await run({ type: T.GET_ID, inLens: [20] });
    await run({ type: T.DISCARD, out: [segments([8, 8])] });
    await run({ type: T.REPORT, inLens: [4096] });
    expect(q.used.map((u) => [u.written, (u.chain as TestChain).status])).toEqual([[1, S.OK], [4097, S.OK], [1, S.OK], [21, S.OK], [1, S.OK], [1, S.UNSUPP]]);
    expect(new TextDecoder().decode(id.writable[0].subarray(0, 12))).toBe('vuzbd-memory');
    // One notification per batch of completions.
    expect(q.notifies).toBeGreaterThanOrEqual(1);
    expect(q.notifies).toBeLessThanOrEqual(6);
  });
});

describe('request hooks', () => {
  it('onStart can fail a request without running it, or hold it and run it later; onComplete sees every request', async () => {
    const b = disk();
    const { dev, run, q } = device(b);
    const seen: Array<[string, number]> = [];
    const held: BlkRequest[] = [];
    const remove = dev.addHooks({
      onStart: (req) => {
        if (req.kind === RequestKind.WRITE && req.sector === 0) return S.IOERR;     // injected fault
        if (req.kind === RequestKind.WRITE && req.sector === 8) { held.push(req); return HOOK_DEFER; } // injected latency
        return HOOK_RUN;
      },
      onComplete: (req, status) => { seen.push([req.kind === RequestKind.REFUSED ? 'refused' : String(req.sector), status]); },
    });
    expect((await run({ type: T.OUT, sector: 0, out: [fill(4096, 9)] })).status).toBe(S.IOERR);
    expect(b.allocatedBytes, 'the failed write wrote nothing').toBe(0);
    const c = chain({ type: T.OUT, sector: 8, out: [fill(4096, 7)] });
    q.pending.push(c);
    dev.queueKicked(q);
    await new Promise((r) => setTimeout(r, 20));
    expect(q.used.length, 'held, not completed').toBe(1);
    // A held request is in flight: a drain (device stop, ring restart) waits for it.
    let drained = false;
    const drain = dev.drainQueue(0).then(() => { drained = true; });
    await new Promise((r) => setTimeout(r, 10));
    expect(drained).toBe(false);
    dev.run(held[0]);
    await q.waitUsed(2);
    await drain;
    expect(c.status).toBe(S.OK);
    await run({ type: 99 });
    expect(seen).toEqual([['0', S.IOERR], ['8', S.OK], ['refused', S.UNSUPP]]);
    remove();
    expect((await run({ type: T.OUT, sector: 0, out: [fill(4096, 9)] })).status).toBe(S.OK);
    expect(seen).toHaveLength(3);
  });
});
