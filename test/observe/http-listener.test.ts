// The read-only HTTP listener: loopback only unless allowed, GET/HEAD only, clear errors, and
// each route's answer (metrics, zones JSON and SVG, the page's files, the event stream).
import http from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { BlkDevice } from '../../src/blk/blk-device.js';
import { ZbdError } from '../../src/errors.js';
import { isLoopback, parseHttpAddress, startHttpListener, type HttpListener } from '../../src/observe/http-listener.js';
import { RequestStats } from '../../src/observe/request-stats.js';
import { DaemonMetrics, type MetricsSources } from '../../src/observe/metrics.js';
import { observeRoutes, registerObserveApiRoutes, type RouteRegistrar } from '../../src/observe/observe-routes.js';
import { ZoneOp } from '../../src/zoned/types.js';

const ZS = 2048;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function start(address = '127.0.0.1:0', allowRemote = false) {
  const log = pino({ level: 'silent' });
  const backend = createMemoryBackend({ capacitySectors: 32 * ZS, zoneSectors: ZS, conventionalZones: 1, blockSize: 4096, maxOpenZones: 4 }, { logger: log });
  const device = new BlkDevice({ backend, numQueues: 2, maxQueueSize: 64, logger: log });
  const stats = new RequestStats();
  device.addHooks(stats);
  const sources: MetricsSources = { stats, numQueues: 2, inflight: (q) => device.inflightRequests(q), backend, frontendConnected: () => false };
  const metrics = new DaemonMetrics(sources);
  const ctx = { sources, metrics, subject: 'mem<&>', logger: log };
  const r = observeRoutes(ctx);
  cleanups.push(() => backend.close(), () => r.close());
  if (address === 'none') return { l: null as unknown as HttpListener, backend, ctx, r };
  const l = await startHttpListener({ address, allowRemote, routes: r.routes, logger: log });
  cleanups.push(() => l.close());
  return { l, backend, ctx, r };
}

function get(l: HttpListener, p: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: l.address.port, path: p, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('read-only HTTP listener', () => {
  it('parses HOST:PORT and knows loopback addresses', () => {
    expect(parseHttpAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseHttpAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHttpAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(() => parseHttpAddress('9464')).toThrow(/expected HOST:PORT/);
    expect(() => parseHttpAddress('127.0.0.1:70000')).toThrow(/above 65535/);
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.org', '::ffff:10.0.0.1']) expect(isLoopback(h), h).toBe(false);
  });

  it('refuses a non-loopback address unless --http-allow-remote', async () => {
    await expect(start('0.0.0.0:0')).rejects.toThrow(/0\.0\.0\.0 is not a loopback address.*--http-allow-remote/);
    const err = await start('10.1.2.3:0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZbdError);
    expect((err as ZbdError).code).toBe('EARG');
    const { l } = await start('0.0.0.0:0', true);
    expect((await get(l, '/metrics')).status).toBe(200);
  });

  it('answers GET and HEAD only; bad paths and parameters get JSON errors', async () => {
    const { l } = await start();
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await get(l, '/zones', m);
      expect(r.status, m).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
      expect(JSON.parse(r.body).error.code).toBe('method-not-allowed');
    }
    expect(JSON.parse((await get(l, '/nope')).body)).toEqual({ error: { code: 'not-found', message: 'no route /nope' } });
    expect((await get(l, '//metrics')).status).toBe(404);
    const bad = await get(l, '/zones?zone=32');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.message).toBe('zone=32 is not a zone of this disk (0..31)');
    expect(JSON.parse((await get(l, '/zones.svg?count=-1')).body).error.message).toBe('query parameter count=-1 is not a non-negative integer');
    const head = await get(l, '/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('serves metrics, zones as JSON and SVG, the page and its files', async () => {
    const { l, backend } = await start();
    await backend.zoneMgmt(ZoneOp.FINISH, 3 * ZS);
    const m = await get(l, '/metrics');
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.body).toContain('vhost_user_zbd_zones{condition="full"} 1');
    expect(m.body).toContain('vhost_user_zbd_inflight_requests{queue="1"} 0');
    expect(m.body).toContain('vhost_user_zbd_frontend_connected 0');
    expect(m.body).toMatch(/^process_cpu_user_seconds_total \d/m);
    const z = JSON.parse((await get(l, '/zones?zone=2&count=3')).body);
    expect(z.nrZones).toBe(32);
    expect(z.zones.map((x: { zone: number; condName: string }) => [x.zone, x.condName])).toEqual([[2, 'empty'], [3, 'full'], [4, 'empty']]);
    const svg = await get(l, '/zones.svg');
    expect(svg.headers['content-type']).toBe('image/svg+xml');
    expect(svg.body.match(/<g class="cell"/g)!.length).toBe(32);
    expect(svg.body).toContain('Zone map of mem&#60;&#38;&#62;:');
    const page = await get(l, '/');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script src="live.js"></script>');
    expect(page.body).not.toMatch(/https?:\/\//); // no CDN
    expect((await get(l, '/live.js')).body).toContain("new EventSource('events')");
    expect((await get(l, '/live.css')).headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('streams a sample at once and then every second, with the map only when it changed', async () => {
    const { l, backend } = await start();
    const events: Array<{ seq: number; map?: string; zones: { byCondition: Record<string, number> } }> = [];
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: l.address.port, path: '/events' }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = /^data: (.*)$/m.exec(block);
            if (/^event: sample$/m.test(block) && data) events.push(JSON.parse(data[1]));
            if (events.length === 1) void backend.zoneMgmt(ZoneOp.FINISH, 5 * ZS);
            if (events.length === 3) { req.destroy(); resolve(); }
          }
        });
      });
      req.on('error', (e) => { if (events.length < 3) reject(e); });
    });
    expect(events.map((e) => e.seq)).toEqual([events[0].seq, events[0].seq + 1, events[0].seq + 2]);
    expect(events[0].map).toContain('<svg');
    expect(events[0].zones.byCondition.full).toBe(0);
    expect(events[1].map).toContain('data-cond="full"');
    expect(events[1].zones.byCondition.full).toBe(1);
    expect(events[2].map).toBeUndefined(); // unchanged
  });
});

describe('read-only routes on a request/reply API router (the control socket)', () => {
  it('registers GET /metrics, /zones.svg and /live.json as read-only, with 400 for a bad zone range', async () => {
    const { ctx, r, backend } = await start('none');
    await backend.zoneMgmt(ZoneOp.FINISH, 2 * ZS);
    type Handler = Parameters<RouteRegistrar['add']>[2];
    const added = new Map<string, { h: Handler; readOnly?: boolean }>();
    registerObserveApiRoutes({ add: (m, p, h, o) => added.set(`${m} ${p}`, { h, readOnly: o?.readOnly }) }, ctx, r.sampler);
    expect([...added.keys()]).toEqual(['GET /metrics', 'GET /zones.svg', 'GET /live.json']);
    expect([...added.values()].every((v) => v.readOnly)).toBe(true);
    const m = await added.get('GET /metrics')!.h({ query: new URLSearchParams() }) as { text: string; contentType: string };
    expect(m.contentType).toMatch(/^text\/plain/);
    expect(m.text).toContain('vhost_user_zbd_zones{condition="full"} 1');
    const svg = await added.get('GET /zones.svg')!.h({ query: new URLSearchParams('zone=1&count=4') }) as { text: string; status: number };
    expect(svg.status).toBe(200);
    expect(svg.text.match(/<g class="cell"/g)!.length).toBe(4);
    const bad = await added.get('GET /zones.svg')!.h({ query: new URLSearchParams('zone=99') }) as { text: string; status: number };
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toEqual({ error: { code: 'bad-field', message: 'zone=99 is not a zone of this disk (0..31)' } });
    const live = await added.get('GET /live.json')!.h({ query: new URLSearchParams() }) as { json: { zones: { byCondition: Record<string, number> } } };
    expect(live.json.zones.byCondition.full).toBe(1);
  });
});
