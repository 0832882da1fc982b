// Metric values against a known request sequence: a front-end drives N writes, M zone appends,
// K zone resets (and a few refused requests) through the real transport and device model; the
// Prometheus exposition must count exactly those.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { BlkDevice } from '../../src/blk/blk-device.js';
import { RequestStats } from '../../src/observe/request-stats.js';
import { DaemonMetrics } from '../../src/observe/metrics.js';
import { FaultRules } from '../../src/control/fault-rules.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { BlkRequestSlot, REQ } from '../../src/testing/blk-request.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

const ZS = 2048; // 1 MiB zones
const { IN: BLK_T_IN, OUT: BLK_T_OUT, ZONE_APPEND: BLK_T_ZONE_APPEND, ZONE_RESET: BLK_T_ZONE_RESET, ZONE_FINISH: BLK_T_ZONE_FINISH } = REQ;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function start() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vu-metrics-'));
  const log = pino({ level: 'silent' });
  const backend = createMemoryBackend({ capacitySectors: 16 * ZS, zoneSectors: ZS, zoneCapacitySectors: ZS - 256,
    conventionalZones: 2, blockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 }, { logger: log });
  const device = new BlkDevice({ backend, numQueues: 1, maxQueueSize: 256, logger: log });
  const stats = new RequestStats();
  device.addHooks(stats);
  const server = new VhostUserServer({ socketPath: path.join(dir, 's'), device, logger: log });
  server.listen();
  const metrics = new DaemonMetrics({
    stats, numQueues: 1, inflight: (q) => device.inflightRequests(q), backend,
    frontendConnected: () => server.connection !== null,
  }, { processMetrics: false });
  const fe = VhostUserFrontend.connect(server.socketPath);
  const mem = GuestMemoryImage.simple(8 * 1024 * 1024);
  let q: DriverQueue | undefined;
  cleanups.push(async () => {
    fe.close(); await server.close(); await backend.close(); q?.closeFds(); mem.close(); rmSync(dir, { recursive: true, force: true });
  });
  await fe.negotiate();
  await fe.setMemTable(mem);
  q = await fe.setupQueue(mem, 0, { size: 128 });
  return { mem, q, metrics, stats, device };
}

async function run(q: DriverQueue, slot: BlkRequestSlot, r: Parameters<BlkRequestSlot['submit']>[1]): Promise<number> {
  await slot.run(q, r);
  return slot.status;
}

/** name{labels} → value from the text exposition. */
function parse(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

describe('Prometheus metrics', () => {
  it('expose the queues\' busy polling: kick wake-ups, windows, hits and the current window', async () => {
    const backend = createMemoryBackend({ capacitySectors: 4 * ZS, zoneSectors: ZS, zoneCapacitySectors: ZS,
      conventionalZones: 0, blockSize: 4096, maxOpenZones: 0, maxActiveZones: 0 }, { logger: pino({ level: 'silent' }) });
    cleanups.push(() => backend.close());
    const poll = { turns: 5, hits: 3, wakeups: 7, windowUs: 16 };
    const metrics = new DaemonMetrics({ stats: new RequestStats(), numQueues: 1, inflight: () => 0, backend,
      frontendConnected: () => false, poll }, { processMetrics: false });
    let m = parse(await metrics.text());
    expect(m.get('vhost_user_zbd_kick_wakeups_total')).toBe(7);
    expect(m.get('vhost_user_zbd_poll_windows_total')).toBe(5);
    expect(m.get('vhost_user_zbd_poll_hits_total')).toBe(3);
    expect(m.get('vhost_user_zbd_poll_window_seconds')).toBe(0.000016);
    // Read at scrape time, not copied at construction.
    Object.assign(poll, { turns: 9, hits: 8, wakeups: 10, windowUs: 0 });
    m = parse(await metrics.text());
    expect([m.get('vhost_user_zbd_kick_wakeups_total'), m.get('vhost_user_zbd_poll_windows_total'),
      m.get('vhost_user_zbd_poll_hits_total'), m.get('vhost_user_zbd_poll_window_seconds')]).toEqual([10, 9, 8, 0]);
  });

  it('count exactly the requests a front-end sent: N writes, M appends, K resets, refusals by status', async () => {
    const { mem, q, metrics } = await start();
    const slot = new BlkRequestSlot(mem, 16384);
    const N = 7, M = 5, K = 3, BS = 8192;
    const data = new Uint8Array(BS).fill(0x5a);
    // N writes: sequential in zone 2, conventional zone 0 once.
    for (let i = 0; i < N - 1; i++) expect(await run(q, slot, { type: BLK_T_OUT, sector: 2 * ZS + i * (BS / 512), out: [data] })).toBe(0);
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 0, out: [data] })).toBe(0);
    // M appends to zone 3 (Linux's 16-byte tail).
    for (let i = 0; i < M; i++) expect(await run(q, slot, { type: BLK_T_ZONE_APPEND, sector: 3 * ZS, out: [data], tailLen: 16 })).toBe(0);
    // 2 reads of 4 KiB.
    for (let i = 0; i < 2; i++) expect(await run(q, slot, { type: BLK_T_IN, sector: 2 * ZS, inLens: [4096] })).toBe(0);
    // Refused: a write off the write pointer (UNALIGNED_WP), a reset of a conventional zone (INVALID_CMD).
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 4 * ZS + 64, out: [data] })).toBe(4);
    expect(await run(q, slot, { type: BLK_T_ZONE_RESET, sector: 0 })).toBe(3);
    // One finish (zone 5, empty → full), then K resets (zones 2, 3, 5).
    expect(await run(q, slot, { type: BLK_T_ZONE_FINISH, sector: 5 * ZS })).toBe(0);
    // Before the resets: zone 2 and 3 implicitly open, 5 full, 2 conventional.
    let m = parse(await metrics.text());
    expect(m.get('vhost_user_zbd_zones{condition="implicit_open"}')).toBe(2);
    expect(m.get('vhost_user_zbd_zones{condition="full"}')).toBe(1);
    expect(m.get('vhost_user_zbd_zones{condition="conventional"}')).toBe(2);
    expect(m.get('vhost_user_zbd_zones{condition="empty"}')).toBe(11);
    expect(m.get('vhost_user_zbd_open_zones')).toBe(2);
    expect(m.get('vhost_user_zbd_active_zones')).toBe(2);
    expect(m.get('vhost_user_zbd_zone_written_bytes')).toBe(2 * ZS * 512 + (N - 1) * BS + M * BS + (ZS - 256) * 512);
    for (const z of [2, 3, 5]) expect(await run(q, slot, { type: BLK_T_ZONE_RESET, sector: z * ZS })).toBe(0);

    m = parse(await metrics.text());
    expect(m.get('vhost_user_zbd_requests_total{op="write",status="ok"}')).toBe(N);
    expect(m.get('vhost_user_zbd_requests_total{op="write",status="zone_unaligned_wp"}')).toBe(1);
    expect(m.get('vhost_user_zbd_requests_total{op="append",status="ok"}')).toBe(M);
    expect(m.get('vhost_user_zbd_requests_total{op="read",status="ok"}')).toBe(2);
    expect(m.get('vhost_user_zbd_requests_total{op="reset",status="ok"}')).toBe(K);
    expect(m.get('vhost_user_zbd_requests_total{op="reset",status="zone_invalid_cmd"}')).toBe(1);
    expect(m.get('vhost_user_zbd_requests_total{op="finish",status="ok"}')).toBe(1);
    expect(m.get('vhost_user_zbd_bytes_total{op="write"}')).toBe(N * BS);
    expect(m.get('vhost_user_zbd_bytes_total{op="append"}')).toBe(M * BS);
    expect(m.get('vhost_user_zbd_bytes_total{op="read"}')).toBe(2 * 4096);
    expect(m.get('vhost_user_zbd_zone_resets_total')).toBe(K);
    expect(m.get('vhost_user_zbd_zone_finishes_total')).toBe(1);
    // Histogram: count per op = all its requests, +Inf bucket = count, buckets non-decreasing.
    expect(m.get('vhost_user_zbd_request_duration_seconds_count{op="write"}')).toBe(N + 1);
    expect(m.get('vhost_user_zbd_request_duration_seconds_count{op="append"}')).toBe(M);
    expect(m.get('vhost_user_zbd_request_duration_seconds_bucket{le="+Inf",op="reset"}')).toBe(K + 1);
    expect(m.get('vhost_user_zbd_request_duration_seconds_sum{op="write"}')).toBeGreaterThan(0);
    const writeBuckets = [...m].filter(([k]) => k.startsWith('vhost_user_zbd_request_duration_seconds_bucket{') && k.endsWith('op="write"}')).map(([, v]) => v);
    expect(writeBuckets.length).toBe(22);
    for (let i = 1; i < writeBuckets.length; i++) expect(writeBuckets[i]).toBeGreaterThanOrEqual(writeBuckets[i - 1]);
    expect(m.get('vhost_user_zbd_inflight_requests{queue="0"}')).toBe(0);
    expect(m.get('vhost_user_zbd_frontend_connected')).toBe(1);
    expect(m.get('vhost_user_zbd_zones{condition="empty"}')).toBe(14);
    expect(m.get('vhost_user_zbd_open_zones')).toBe(0);
    expect(m.get('vhost_user_zbd_max_open_zones')).toBe(4);
    expect(m.get('vhost_user_zbd_max_active_zones')).toBe(6);
  });

  it('counts what the fault rules inject: an injected error by its status, a delayed request with its delay', async () => {
    const { mem, q, metrics, device } = await start();
    const faults = new FaultRules();
    device.faults = faults;
    faults.add({ op: 'write', action: 'error', status: 'ioerr', count: 1 });
    faults.add({ op: 'read', action: 'delay', delayMs: 120, count: 1 });
    const slot = new BlkRequestSlot(mem, 8192);
    const data = new Uint8Array(4096);
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 2 * ZS, out: [data] })).toBe(1);
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 2 * ZS, out: [data] })).toBe(0);
    expect(await run(q, slot, { type: BLK_T_IN, sector: 2 * ZS, inLens: [4096] })).toBe(0);
    const m = parse(await metrics.text());
    expect(m.get('vhost_user_zbd_requests_total{op="write",status="ioerr"}')).toBe(1);
    expect(m.get('vhost_user_zbd_requests_total{op="write",status="ok"}')).toBe(1);
    expect(m.get('vhost_user_zbd_requests_total{op="read",status="ok"}')).toBe(1);
    // The read's latency includes its injected 120 ms delay (a Node timer may fire up to a few
    // ms early against performance.now(); without the delay the read takes well under 10 ms).
    expect(m.get('vhost_user_zbd_request_duration_seconds_sum{op="read"}')).toBeGreaterThanOrEqual(0.1);
  });

  it('keeps the last refused requests with their op, sector and status for the live page', async () => {
    const { mem, q, stats } = await start();
    const slot = new BlkRequestSlot(mem, 8192);
    const data = new Uint8Array(4096);
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 4 * ZS + 8, out: [data] })).toBe(4);
    expect(await run(q, slot, { type: BLK_T_OUT, sector: 16 * ZS, out: [data] })).toBe(1);
    const errs = stats.recentErrors();
    expect(errs.map((e) => [e.op, e.sector, e.status])).toEqual([['write', 16 * ZS, 'ioerr'], ['write', 4 * ZS + 8, 'zone_unaligned_wp']]);
  });
});
