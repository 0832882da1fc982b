// Device level, no filesystem: the real daemon (dist/) driven by the project's vhost-user
// front-end (test/harness), its control API used while requests run. Error and latency
// rules as the driver sees them; power-loss emulation with a recorded write sequence.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { ProtocolFeature } from '../../src/vhost-user/messages.js';
import { pattern } from '../conformance/zone-suite.js';
import { BlkClient, REQ, STATUS } from '../../src/testing/blk-request.js';
import { BIN, runCli } from '../harness/cli-process.js';
import { apiRequest } from '../../src/cli/ctl-command.js';

const bit = (n: number): bigint => 1n << BigInt(n);
const ZS = 32768; // 16 MiB zones
const seq = (z: number): number => z * ZS;

let dir: string;
let image: string;
let socket: string;
let logFile: string;
let daemon: ChildProcess | null = null;
let exited: Promise<number | null>;

interface Session { fe: VhostUserFrontend; mem: GuestMemoryImage; q: DriverQueue; blk: BlkClient }
let s: Session | null = null;

async function startDaemon(args: string[]): Promise<void> {
  const log = fs.openSync(logFile, 'a');
  daemon = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--image', image, '--no-hints', ...args], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const d = daemon;
  exited = new Promise((resolve) => d.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(socket)) {
    if (d.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start:\n${fs.readFileSync(logFile, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopDaemon(): Promise<void> {
  endSession();
  if (!daemon) return;
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  const code = await exited;
  daemon = null;
  expect(code, fs.readFileSync(logFile, 'utf8').slice(-3000)).toBe(0);
}

async function connect(): Promise<Session> {
  const fe = VhostUserFrontend.connect(socket);
  await fe.negotiate({ protocol: bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) });
  const mem = new GuestMemoryImage([{ guestPhysAddr: 0x4000_0000, userAddr: 0x7f00_4000_0000, size: 64 << 20 }]);
  await fe.setMemTable(mem);
  const q = await fe.setupQueue(mem, 0, { size: 256 });
  s = { fe, mem, q, blk: new BlkClient(mem, q) };
  return s;
}

function endSession(): void {
  if (!s) return;
  s.q.closeFds();
  s.fe.close();
  s.mem.close();
  s = null;
}

const api = async (method: string, p: string, body?: unknown): Promise<any> => {
  const r = await apiRequest(`${socket}.api`, method, p, body, 30_000);
  if (r.status >= 300) throw new Error(`${method} ${p}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const wpOf = async (z: number): Promise<number> => (await api('GET', `/zones?zone=${z}&count=1`)).zones[0].wp;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-devfaults-'));
  image = path.join(dir, 'disk.img');
  socket = path.join(dir, 'vu.sock');
  logFile = path.join(dir, 'daemon.log');
  const c = await runCli('create', image, '--size', '256M', '--zone-size', '16M', '--conventional', '2', '--block-size', '4096');
  expect(c.code, c.err).toBe(0);
});

afterAll(async () => {
  await stopDaemon().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('error and latency rules seen by the driver', () => {
  beforeAll(async () => { await startDaemon([]); await connect(); }, 90_000);
  afterAll(async () => { await stopDaemon(); });

  it('an error rule on a sector range fails exactly the write that overlaps it, leaving the write pointer, then lets the next pass', async () => {
    const { blk } = s as Session;
    const z = seq(2);
    expect(await blk.write(z, pattern(4096, 1))).toBe(STATUS.OK);
    await api('POST', '/faults', { op: 'write', range: { start: z + 8, end: z + 16 }, once: true });
    // A write elsewhere is not touched by the rule.
    expect(await blk.write(seq(3), pattern(4096, 2))).toBe(STATUS.OK);
    expect(await blk.write(z + 8, pattern(4096, 3))).toBe(STATUS.IOERR);
    expect(await wpOf(2)).toBe(z + 8);
    expect(await blk.write(z + 8, pattern(4096, 4))).toBe(STATUS.OK);
    const back = await blk.read(z + 8, 4096);
    expect(Buffer.from(back.data).equals(Buffer.from(pattern(4096, 4)))).toBe(true);
    const f = (await api('GET', '/faults')).faults[0];
    expect(f).toMatchObject({ matched: 1, fired: 1, live: false });
    await api('DELETE', '/faults');
  });

  it('any zoned status, after N, count N, on appends, reports and zone management', async () => {
    const { blk } = s as Session;
    await api('POST', '/faults', { op: 'append', status: 'zone-open-resource', after: 1, count: 2 });
    const res = [];
    for (let i = 0; i < 4; i++) res.push((await blk.one({ type: REQ.ZONE_APPEND, sector: seq(4), out: [blk.place(pattern(4096, 10 + i))] })).status);
    expect(res).toEqual([STATUS.OK, STATUS.OPEN_RESOURCE, STATUS.OPEN_RESOURCE, STATUS.OK]);
    expect(await wpOf(4)).toBe(seq(4) + 16);
    await api('DELETE', '/faults');
    await api('POST', '/faults', { op: 'report', status: 'unsupp', once: true });
    expect((await blk.one({ type: REQ.ZONE_REPORT, sector: 0, inLens: [64 + 4 * 64] })).status).toBe(STATUS.UNSUPP);
    expect((await blk.report(0, 4)).status).toBe(STATUS.OK);
    await api('POST', '/faults', { op: 'mgmt', status: 'zone-invalid-cmd', once: true });
    expect(await blk.mgmt(REQ.ZONE_RESET, seq(4))).toBe(STATUS.INVALID);
    expect(await wpOf(4)).toBe(seq(4) + 16);
    expect(await blk.mgmt(REQ.ZONE_RESET, seq(4))).toBe(STATUS.OK);
    await api('POST', '/faults', { op: 'flush', once: true });
    expect((await blk.one({ type: REQ.FLUSH, sector: 0 })).status).toBe(STATUS.IOERR);
    expect((await blk.one({ type: REQ.FLUSH, sector: 0 })).status).toBe(STATUS.OK);
    // probability with a seed: the same seed fires on the same requests.
    const fired = async (): Promise<number[]> => {
      await api('DELETE', '/faults');
      await api('POST', '/faults', { op: 'read', probability: 0.5, seed: 42 });
      const out: number[] = [];
      for (let i = 0; i < 16; i++) out.push((await blk.read(0, 4096)).status);
      return out;
    };
    const a = await fired(), b = await fired();
    expect(a).toEqual(b);
    expect(a.filter((x) => x === STATUS.IOERR).length).toBeGreaterThan(0);
    expect(a.filter((x) => x === STATUS.OK).length).toBeGreaterThan(0);
    await api('DELETE', '/faults');
  });

  it('a delay rule holds one read for at least the delay while other requests of the same queue complete', async () => {
    const { blk } = s as Session;
    await api('POST', '/faults', { op: 'read', range: { start: 0, end: 8 }, delayMs: 700, once: true });
    const t0 = Date.now();
    const res = await blk.run([
      { type: REQ.IN, sector: 0, inLens: [4096] },
      { type: REQ.IN, sector: 16, inLens: [4096] },
      { type: REQ.OUT, sector: seq(5), out: [blk.place(pattern(4096, 9))] },
      { type: REQ.IN, sector: 24, inLens: [4096] },
    ]);
    const took = Date.now() - t0;
    for (const r of res) expect(r.status).toBe(STATUS.OK);
    // The delayed read completes last, after the others that were queued behind it.
    expect(res[0].order).toBe(3);
    expect(took).toBeGreaterThanOrEqual(700);
    expect((await api('GET', '/status')).delayedRequests).toBe(0);
    await api('DELETE', '/faults');
  });
});

describe('power-loss emulation (--volatile-cache): a recorded write sequence with flushes, then a power cut', () => {
  const W = 4096, S8 = 8;
  const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
  const zero = (a: Uint8Array): boolean => a.every((v) => v === 0);
  const flush = async (): Promise<void> => { expect((await (s as Session).blk.one({ type: REQ.FLUSH, sector: 0 })).status).toBe(STATUS.OK); };
  const cut = async (policy: string, seed?: number): Promise<any> => {
    const r = await api('POST', '/power-cut', seed === undefined ? { policy } : { policy, seed });
    endSession();
    return r;
  };

  beforeAll(async () => { await startDaemon(['--volatile-cache']); await connect(); }, 90_000);
  afterAll(async () => { await stopDaemon(); });

  it('policy all: exactly the unflushed suffix of each zone and the unflushed overwrites are gone; the front-end was dropped', async () => {
    const { blk, fe } = s as Session;
    const z6 = seq(6), z7 = seq(7), z8 = seq(8);
    const d = (i: number): Uint8Array => pattern(W, 200 + i);
    expect(await blk.write(z6, d(0))).toBe(STATUS.OK);
    expect(await blk.write(z6 + S8, d(1))).toBe(STATUS.OK);
    expect(await blk.write(z8, d(5))).toBe(STATUS.OK);
    expect(await blk.write(64, d(6))).toBe(STATUS.OK);
    await flush();
    expect(await blk.write(z6 + 2 * S8, d(2))).toBe(STATUS.OK);
    expect(await blk.write(z6 + 3 * S8, d(3))).toBe(STATUS.OK);
    const app = await blk.one({ type: REQ.ZONE_APPEND, sector: z7, out: [blk.place(pattern(2 * W, 204))] });
    expect(app.status).toBe(STATUS.OK);
    expect(await blk.write(64, d(7))).toBe(STATUS.OK);
    expect(await blk.write(72, d(8))).toBe(STATUS.OK);
    const st = await api('GET', '/status');
    expect(st.volatileCache).toEqual({ enabled: true, unflushedWrites: 5, unflushedBytes: 6 * W });
    expect(st.frontend.writeback).toBe(true);

    const r = await cut('all');
    expect(r).toMatchObject({ policy: 'all', frontendDropped: true, volatileCache: true, lostWrites: 5, lostBytes: 6 * W });
    expect(r.zones).toEqual([
      { zone: 0, type: 'conventional', unflushedWrites: 2, lostWrites: 2, lostBytes: 2 * W },
      { zone: 6, type: 'sequential', unflushedWrites: 2, lostWrites: 2, lostBytes: 2 * W, wpBefore: z6 + 4 * S8, wpAfter: z6 + 2 * S8 },
      { zone: 7, type: 'sequential', unflushedWrites: 1, lostWrites: 1, lostBytes: 2 * W, wpBefore: z7 + 2 * S8, wpAfter: z7 },
    ]);
    await new Promise((res) => setTimeout(res, 200));
    expect(fe.closed).not.toBeNull();

    const { blk: b2 } = await connect();
    const rep = await b2.report(z6, 3);
    expect(rep.zones.map((z) => [Number(z.wp) - z.start, z.cond])).toEqual([[2 * S8, 4], [0, 1], [S8, 4]]);
    expect(same((await b2.read(z6, W)).data, d(0))).toBe(true);
    expect(same((await b2.read(z6 + S8, W)).data, d(1))).toBe(true);
    expect(zero((await b2.read(z6 + 2 * S8, 2 * W)).data)).toBe(true);
    expect(same((await b2.read(z8, W)).data, d(5))).toBe(true);
    // Conventional: the flushed contents come back, not zeroes; the never-flushed write is undone.
    expect(same((await b2.read(64, W)).data, d(6))).toBe(true);
    expect(zero((await b2.read(72, W)).data)).toBe(true);
    // The disk goes on: writes at the surviving write pointer work.
    expect(await b2.write(z6 + 2 * S8, d(9))).toBe(STATUS.OK);
    await flush();
  });

  it('policy random (seeded): per zone a prefix of the unflushed writes survives (whole writes), per conventional write kept or lost', async () => {
    const { blk } = s as Session;
    const z9 = seq(9);
    const d = (i: number): Uint8Array => pattern(W, 300 + i);
    expect(await blk.write(z9, d(0))).toBe(STATUS.OK);
    for (let i = 0; i < 8; i++) expect(await blk.write(160 + i * S8, d(50 + i))).toBe(STATUS.OK);
    await flush();
    // Writes of 1 and 2 blocks: the surviving prefix ends at a write boundary.
    const ends: number[] = [];
    for (let i = 1, at = z9 + S8; i <= 10; i++) {
      const data = i % 2 ? d(i) : new Uint8Array([...d(i), ...d(100 + i)]);
      expect(await blk.write(at, data)).toBe(STATUS.OK);
      at += data.length / 512;
      ends.push(at);
    }
    for (let i = 0; i < 8; i++) expect(await blk.write(160 + i * S8, d(20 + i))).toBe(STATUS.OK);
    const r = await cut('random', 12345);
    expect(r.seed).toBe(12345);
    const z = r.zones.find((x: any) => x.zone === 9);
    expect(z.wpBefore).toBe(ends[9]);
    expect([z9 + S8, ...ends]).toContain(z.wpAfter);
    expect(z.lostBytes).toBe((z.wpBefore - z.wpAfter) * 512);
    const conv = r.zones.find((x: any) => x.zone === 0);
    expect(conv.unflushedWrites).toBe(8);

    const { blk: b2 } = await connect();
    expect(same((await b2.read(z9, W)).data, d(0))).toBe(true);
    for (let i = 1, at = z9 + S8; i <= 10; i++) {
      const got = (await b2.read(at, W)).data;
      expect(at < z.wpAfter ? same(got, d(i)) : zero(got), `zone 9 write ${i}`).toBe(true);
      at = ends[i - 1];
    }
    let lost = 0;
    for (let i = 0; i < 8; i++) {
      const got = (await b2.read(160 + i * S8, W)).data;
      const isNew = same(got, d(20 + i)), isOld = same(got, d(50 + i));
      expect(isNew || isOld, `conventional block ${i}`).toBe(true);
      if (isOld) lost++;
    }
    expect(conv.lostWrites).toBe(lost);
    expect(conv.lostBytes).toBe(lost * W);
  });

  it('write-through (the guest disabled its cache): nothing acknowledged is lost', async () => {
    const { blk, fe } = s as Session;
    await fe.setConfig(32, new Uint8Array([0]));
    expect((await api('GET', '/status')).frontend.writeback).toBe(false);
    const z10 = seq(10);
    expect(await blk.write(z10, pattern(W, 400))).toBe(STATUS.OK);
    expect(await blk.write(96, pattern(W, 401))).toBe(STATUS.OK);
    expect((await api('GET', '/status')).volatileCache.unflushedWrites).toBe(0);
    const r = await cut('all');
    expect(r.lostWrites).toBe(0);
    const { blk: b2 } = await connect();
    expect(same((await b2.read(z10, W)).data, pattern(W, 400))).toBe(true);
    expect(same((await b2.read(96, W)).data, pattern(W, 401))).toBe(true);
  });

  it('the image is consistent afterwards (check clean)', async () => {
    await stopDaemon();
    const c = await runCli('check', image);
    expect(c.code, c.out + c.err).toBe(0);
  });

  it('--power-cut-on-disconnect: a front-end that goes away without a flush loses its unflushed writes', async () => {
    await startDaemon(['--volatile-cache', '--power-cut-on-disconnect']);
    const { blk } = await connect();
    const z11 = seq(11);
    expect(await blk.write(z11, pattern(W, 500))).toBe(STATUS.OK);
    await flush();
    expect(await blk.write(z11 + S8, pattern(W, 501))).toBe(STATUS.OK);
    endSession();
    let last: any = null;
    for (let i = 0; i < 100 && !last; i++) {
      await new Promise((res) => setTimeout(res, 100));
      last = (await api('GET', '/status')).powerCut.last;
    }
    expect(last).toMatchObject({ trigger: 'front-end disconnected', policy: 'all', lostWrites: 1, lostBytes: W });
    expect(await wpOf(11)).toBe(z11 + S8);
    await stopDaemon();
    // A daemon shutdown is not a power cut: nothing unflushed is dropped by SIGTERM.
    expect(fs.readFileSync(logFile, 'utf8').match(/"msg":"power cut done"/g)).toHaveLength(4);
    const c = await runCli('check', image);
    expect(c.code, c.out + c.err).toBe(0);
  });
});
