// The control API's HTTP/1.1 + JSON server (Node's http module, no framework) and its router.
// Routes are registered by the modules that own them: serve builds one ApiRouter, calls
// registerControlRoutes(router, ...) and any other module's register function on it (e.g.
// router.add('GET', '/metrics', handler, { readOnly: true })), then listens. A listener either
// may change the disk (the Unix socket, 0600: `mayChange: true`) or serves only the routes
// registered read-only (`mayChange: false`, e.g. an observation listener on TCP).
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';

/** API error codes and their HTTP status: the one table. */
const ERROR_STATUS = {
  'bad-json': 400,
  'bad-field': 400,
  'unknown-action': 400,
  'zone-out-of-range': 404,
  'not-found': 404,
  'no-such-fault': 404,
  'method-not-allowed': 405,
  'read-only-listener': 403,
  'zone-refused': 409,
  'not-zoned': 409,
  'unsupported': 409,
  'busy': 409,
  'body-too-large': 413,
  'internal': 500,
} as const;
export type ApiErrorCode = keyof typeof ERROR_STATUS;

/** A refusal the client caused (or could act on): becomes {"error": {"code", "message"}}. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly value: unknown;
  constructor(code: ApiErrorCode, message: string, value?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.value = value;
  }
  get status(): number { return ERROR_STATUS[this.code]; }
}

export interface ApiRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Values of the route's `{name}` segments. */
  params: Readonly<Record<string, string>>;
  query: URLSearchParams;
  /** Parsed JSON body; undefined when the request had none. */
  body: unknown;
}

/** A JSON reply (`json`) or a text one (`text` with its content type, e.g. metrics or a page). */
export type ApiReply = { status?: number; json: unknown } | { status?: number; text: string; contentType: string };

export type ApiHandler = (req: ApiRequest) => ApiReply | Promise<ApiReply>;

export interface RouteOptions {
  /** Served on read-only listeners too (it must not change the disk). Default false. */
  readOnly?: boolean;
}

interface Route {
  method: string;
  pattern: string;
  segments: string[];
  handler: ApiHandler;
  readOnly: boolean;
}

/**
 * Method + path pattern -> handler. Patterns are literal segments and `{name}` placeholders,
 * e.g. `/zones/{zone}/{action}`; the first registered match wins. A path that matches a
 * pattern under another method answers 405 with the methods allowed.
 */
export class ApiRouter {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: ApiHandler, opts: RouteOptions = {}): this {
    if (!pattern.startsWith('/')) throw new ZbdError('EARG', `route pattern ${pattern} must start with /`, pattern);
    this.routes.push({ method: method.toUpperCase(), pattern, segments: split(pattern), handler, readOnly: opts.readOnly ?? false });
    return this;
  }

  /** The registered routes, for documentation and tests. */
  list(): { method: string; pattern: string; readOnly: boolean }[] {
    return this.routes.map((r) => ({ method: r.method, pattern: r.pattern, readOnly: r.readOnly }));
  }

  /** The route for a request, or an ApiError (404 / 405). */
  resolve(method: string, path: string): { route: Route; params: Record<string, string> } {
    const parts = split(path);
    const allowed: string[] = [];
    for (const r of this.routes) {
      const params = match(r.segments, parts);
      if (!params) continue;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params };
      allowed.push(r.method);
    }
    if (allowed.length) throw new ApiError('method-not-allowed', `${method} ${path} is not allowed; use ${[...new Set(allowed)].join(', ')}`, method);
    throw new ApiError('not-found', `no endpoint ${path}`, path);
  }
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

function match(pattern: string[], parts: string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith('{') && p.endsWith('}')) {
      let v: string;
      try { v = decodeURIComponent(parts[i]); } catch { return null; }
      params[p.slice(1, -1)] = v;
    } else if (p !== parts[i]) {
      return null;
    }
  }
  return params;
}

export interface ApiServerOptions {
  router: ApiRouter;
  logger: Logger;
  /** False: only read-only routes are served (an observation listener). */
  mayChange: boolean;
  /** Largest request body accepted, bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

/** One listener (a Unix socket or a TCP port) serving a router. */
export class ApiServer {
  private readonly http: http.Server;
  private readonly opts: ApiServerOptions;
  private readonly log: Logger;
  private socketPath: string | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.http = http.createServer((req, res) => { void this.serve(req, res); });
    // Slow or stuck clients must not pin connections forever.
    this.http.requestTimeout = 30_000;
    this.http.headersTimeout = 10_000;
    this.http.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // Garbage that is not HTTP: answer 400 if the socket still can, and drop it.
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      this.log.debug({ err: err.message, code: err.code }, 'control API: malformed HTTP from a client');
      if (socket.writable) {
        const body = JSON.stringify({ error: { code: 'bad-request', message: `malformed HTTP request: ${err.code ?? err.message}` } });
        socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    });
  }

  /**
   * Listen on a Unix socket created mode 0600 (owner only: this socket can change the disk).
   * A stale socket of a dead daemon is replaced; a live one, or a non-socket file, is refused.
   */
  async listenUnix(path: string): Promise<void> {
    await prepareApiSocketPath(path);
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: Error): void => reject(new ZbdError('ESOCKET', `cannot listen on control socket ${path}: ${e.message}`, path, { cause: e }));
        this.http.once('error', onErr);
        this.http.listen(path, () => { this.http.off('error', onErr); resolve(); });
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(path, 0o600);
    this.socketPath = path;
    this.log.info({ api: path }, 'control API listening');
  }

  /** Listen on TCP (host, port); resolves the bound port (port 0 picks one). */
  async listenTcp(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(new ZbdError('ESOCKET', `cannot listen on ${host}:${port}: ${e.message}`, { host, port }, { cause: e }));
      this.http.once('error', onErr);
      this.http.listen(port, host, () => { this.http.off('error', onErr); resolve(); });
    });
    const bound = (this.http.address() as net.AddressInfo).port;
    this.log.info({ host, port: bound, mayChange: this.opts.mayChange }, 'API listening on TCP');
    return bound;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    if (this.socketPath) {
      try { fs.rmSync(this.socketPath, { force: true }); } catch { /* already gone */ }
      this.socketPath = null;
    }
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let path = '/';
    let query = new URLSearchParams();
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      path = url.pathname;
      query = url.searchParams;
      const { route, params } = this.opts.router.resolve(method, path);
      if (!this.opts.mayChange && !route.readOnly) {
        throw new ApiError('read-only-listener', `${method} ${route.pattern} is only served on the control socket`, path);
      }
      const body = await readBody(req, this.opts.maxBodyBytes ?? 1 << 20);
      const reply = await route.handler({ method, path, params, query, body });
      if ('json' in reply) send(res, reply.status ?? 200, 'application/json', JSON.stringify(reply.json) + '\n', method);
      else send(res, reply.status ?? 200, reply.contentType, reply.text, method);
    } catch (err) {
      const e = err instanceof ApiError ? err : null;
      if (!e) this.log.error({ err, method, path }, 'control API handler failed');
      else if (e.status >= 500) this.log.error({ code: e.code, method, path }, e.message);
      else this.log.debug({ code: e.code, method, path, value: e.value }, `control API refused: ${e.message}`);
      const code = e ? e.code : 'internal';
      const message = e ? e.message : `internal error: ${(err as Error).message}`;
      send(res, e ? e.status : 500, 'application/json', JSON.stringify({ error: { code, message } }) + '\n', method);
      if (e?.code === 'body-too-large') {
        // The rest of a huge body is discarded as it comes, never kept; a client that goes on
        // sending after it had the answer is dropped (closing at once would make it fail its
        // write before it could read the answer).
        req.resume();
        setTimeout(() => req.socket.destroy(), 2000).unref();
      }
    }
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string, method: string): void {
  if (res.headersSent) { res.end(); return; }
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : body);
}

/** The request body as JSON (undefined when empty), refusing more than `limit` bytes. */
function readBody(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.pause();
    return Promise.reject(new ApiError('body-too-large', `request body of ${declared} bytes is over the ${limit}-byte limit`, declared));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        req.pause();
        reject(new ApiError('body-too-large', `request body over the ${limit}-byte limit`, size));
        return;
      }
      chunks.push(c);
    });
    req.on('error', (e) => { if (!failed) { failed = true; reject(new ApiError('bad-json', `request body unreadable: ${e.message}`)); } });
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') { resolve(undefined); return; }
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError('bad-json', `request body is not JSON: ${(e as Error).message}`, text.slice(0, 80)));
      }
    });
  });
}

/** Like the vhost-user socket: replace a stale socket, refuse a live one or a regular file. */
async function prepareApiSocketPath(path: string): Promise<void> {
  let st: fs.Stats;
  try { st = fs.lstatSync(path); } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ZbdError('ESOCKET', `cannot inspect control socket path ${path}: ${(err as Error).message}`, path, { cause: err });
    }
    // libuv reports a missing directory as EACCES at listen(): name the real cause here.
    try { fs.statSync(dirname(path)); } catch (e) {
      throw new ZbdError('ESOCKET', `cannot listen on control socket ${path}: ${(e as Error).message}`, path, { cause: e });
    }
    return;
  }
  if (!st.isSocket()) throw new ZbdError('ESOCKET', `${path} exists and is not a socket; not replacing it`, path);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (live) throw new ZbdError('ESOCKET', `another daemon is already serving a control API on ${path}`, path);
  fs.rmSync(path, { force: true });
}
