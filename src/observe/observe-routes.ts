// The read-only HTTP routes of a served disk: metrics, zones as JSON and SVG, the live page and
// its event stream. Nothing here changes the disk, so the same table is mounted on the
// loopback TCP listener (--http) and on the Unix control socket.
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { zoneJson, type ZoneJson } from '../cli/report-format.js';
import type { DaemonMetrics, MetricsSources } from './metrics.js';
import { LiveSampler, type LiveSample } from './live-sampler.js';
import { renderZoneMap } from './zone-map-file.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
/** "GET /path" → handler. */
export type RouteTable = Map<string, RouteHandler>;

export interface ObserveContext {
  sources: MetricsSources;
  metrics: DaemonMetrics;
  /** Image path, device or "(memory)": shown on the page and in the map title. */
  subject: string;
  logger: Logger;
}

/** The page's files, shipped in web/live/ (plain HTML, CSS, JS: no build step, no CDN). */
const PAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/live');
const PAGE_FILES: Record<string, string> = {
  '/': 'index.html', '/live.css': 'live.css', '/live.js': 'live.js',
};
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

/** Reads ?name=N as a non-negative integer, or throws EARG naming the parameter. */
function intParam(query: URLSearchParams, name: string): number | undefined {
  const v = query.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (v === '' || !Number.isSafeInteger(n) || n < 0) throw new ZbdError('EARG', `query parameter ${name}=${v} is not a non-negative integer`, v);
  return n;
}

/** Zone range from ?zone=N&count=M, checked against the disk. */
function zoneRange(ctx: ObserveContext, query: URLSearchParams): { first: number; count: number } {
  const zi = ctx.sources.backend.info.zoned;
  if (!zi) throw new ZbdError('EARG', 'this disk is not zoned (served with --model none or a regular device)', null);
  const first = intParam(query, 'zone') ?? 0;
  if (first >= zi.nrZones) throw new ZbdError('EARG', `zone=${first} is not a zone of this disk (0..${zi.nrZones - 1})`, first);
  const count = Math.min(intParam(query, 'count') ?? zi.nrZones, zi.nrZones - first);
  return { first, count };
}

/** A complete answer, independent of the server that sends it. */
export interface TextReply { status: number; contentType: string; text: string }

function errorReply(err: unknown): TextReply {
  if (err instanceof ZbdError && err.code === 'EARG') {
    return { status: 400, contentType: 'application/json', text: JSON.stringify({ error: { code: 'bad-field', message: err.message.slice(err.code.length + 2) } }) };
  }
  throw err;
}

/** GET /metrics. */
export async function metricsReply(ctx: ObserveContext): Promise<TextReply> {
  return { status: 200, contentType: ctx.metrics.contentType, text: await ctx.metrics.text() };
}

/** GET /zones.svg?zone=N&count=M. */
export async function zoneMapReply(ctx: ObserveContext, query: URLSearchParams): Promise<TextReply> {
  try {
    const { first, count } = zoneRange(ctx, query);
    const svg = (await renderZoneMap(ctx.sources.backend, { firstZone: first, zoneCount: count, subject: ctx.subject })).render();
    return { status: 200, contentType: 'image/svg+xml', text: svg };
  } catch (err) {
    return errorReply(err);
  }
}

function sendReply(res: ServerResponse, r: TextReply): void {
  res.writeHead(r.status, { 'content-type': r.contentType, 'content-length': Buffer.byteLength(r.text), 'cache-control': 'no-store' });
  res.end(r.text);
}

/**
 * The routes that fit a request/reply API router (the control socket's): metrics, the zone
 * map and one live sample. The page and its event stream stay on the --http listener.
 */
export interface RouteRegistrar {
  add(method: string, pattern: string,
    handler: (req: { query: URLSearchParams }) => Promise<{ status?: number; text: string; contentType: string } | { status?: number; json: unknown }>,
    opts?: { readOnly?: boolean }): unknown;
}

export function registerObserveApiRoutes(router: RouteRegistrar, ctx: ObserveContext, sampler: LiveSampler): void {
  router.add('GET', '/metrics', () => metricsReply(ctx), { readOnly: true });
  router.add('GET', '/zones.svg', (req) => zoneMapReply(ctx, req.query), { readOnly: true });
  router.add('GET', '/live.json', async () => ({ json: { subject: ctx.subject, ...await sampler.sample(), map: sampler.map } }), { readOnly: true });
}

export function observeRoutes(ctx: ObserveContext): { routes: RouteTable; sampler: LiveSampler; close(): void } {
  const sampler = new LiveSampler(ctx.sources, ctx.subject);
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const [route, file] of Object.entries(PAGE_FILES)) {
    files.set(route, { body: fs.readFileSync(path.join(PAGE_DIR, file)), type: CONTENT_TYPES[path.extname(file)] });
  }
  const routes: RouteTable = new Map();
  const streams = new Set<ServerResponse>();

  for (const [route, f] of files) {
    routes.set(`GET ${route}`, (_req, res) => {
      res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length, 'cache-control': 'no-cache' });
      res.end(f.body);
    });
  }

  routes.set('GET /metrics', async (_req, res) => sendReply(res, await metricsReply(ctx)));

  routes.set('GET /zones', async (_req, res, url) => {
    const { first, count } = zoneRange(ctx, url.searchParams);
    const b = ctx.sources.backend;
    const zi = b.info.zoned!;
    const zones: ZoneJson[] = [];
    let z = first;
    await b.reportZones(first * zi.zoneSectors, count, (start, len, cap, wp, type, cond) => {
      zones.push(zoneJson(z++, start, len, cap, wp, type, cond));
      return true;
    });
    sendJson(res, 200, {
      serial: b.info.serial, capacitySectors: b.info.capacitySectors, blockSize: b.info.blockSize,
      zoneSectors: zi.zoneSectors, zoneCapacitySectors: zi.zoneCapacitySectors, nrZones: zi.nrZones,
      conventionalZones: zi.conventionalZones, maxOpenZones: zi.maxOpenZones, maxActiveZones: zi.maxActiveZones,
      maxAppendSectors: zi.maxAppendSectors, zones,
    });
  });

  routes.set('GET /zones.svg', async (_req, res, url) => sendReply(res, await zoneMapReply(ctx, url.searchParams)));

  routes.set('GET /live.json', async (_req, res) => {
    sendJson(res, 200, { subject: ctx.subject, ...await sampler.sample(), map: sampler.map });
  });

  // Server-sent events: a "sample" event every second; the map only when it changed.
  routes.set('GET /events', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`retry: 2000\n\n`);
    streams.add(res);
    let sentMap = 0;
    const send = (s: LiveSample): void => {
      const body: LiveSample & { subject: string; map?: string } = { ...s, subject: ctx.subject };
      if (sampler.mapVersion !== sentMap) { body.map = sampler.map; sentMap = sampler.mapVersion; }
      // JSON has no raw newlines, so the whole sample is one data: line.
      res.write(`event: sample\ndata: ${JSON.stringify(body)}\n\n`);
    };
    const unsubscribe = sampler.subscribe(send);
    // The first sample at once, so a page is not blank for a second.
    sampler.sample().then(send, (err) => ctx.logger.warn({ err }, 'live page: sampling failed'));
    const end = (): void => { unsubscribe(); streams.delete(res); };
    req.on('close', end);
    res.on('error', end);
  });

  return {
    routes, sampler,
    close() {
      sampler.close();
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}
