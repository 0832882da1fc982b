// `serve --http HOST:PORT`: a TCP listener for the read-only routes (metrics, zones, the live
// page). Loopback only unless --http-allow-remote: it needs no credentials, so it must not be
// reachable from elsewhere by accident.
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { sendError, type RouteTable } from './observe-routes.js';

export interface HttpAddress { host: string; port: number }

/** "127.0.0.1:9464", "[::1]:9464", "localhost:9464". */
export function parseHttpAddress(v: string): HttpAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  if (!m) throw new ZbdError('EARG', `--http ${v}: expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464`, v);
  const port = Number(m[3]);
  if (port > 65535) throw new ZbdError('EARG', `--http ${v}: port ${port} is above 65535`, v);
  return { host: m[1] ?? m[2], port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

/** Answers one request from a read-only route table: GET and HEAD only; error codes as the control API's. */
export function dispatch(routes: RouteTable, req: http.IncomingMessage, res: http.ServerResponse, log: Logger): void {
  // Concatenated, not resolved: a target like //x must stay a path, not become a host.
  const url = new URL(`http://localhost${req.url?.startsWith('/') ? req.url : '/'}`);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const handler = routes.get(`${method} ${url.pathname}`);
  if (!handler) {
    const known = [...routes.keys()].some((k) => k.endsWith(` ${url.pathname}`));
    if (known) {
      res.setHeader('allow', 'GET, HEAD');
      sendError(res, 405, 'method-not-allowed', `${req.method} ${url.pathname}: this listener is read-only (GET, HEAD)`);
    } else {
      sendError(res, 404, 'not-found', `no route ${url.pathname}`);
    }
    return;
  }
  const fail = (err: unknown): void => {
    if (err instanceof ZbdError && err.code === 'EARG') { sendError(res, 400, 'bad-field', err.message.slice(err.code.length + 2)); return; }
    log.error({ err, path: url.pathname }, 'HTTP request failed');
    if (!res.headersSent) sendError(res, 500, 'internal', (err as Error).message); else res.destroy();
  };
  try {
    const r = handler(req, res, url);
    if (r) r.catch(fail);
  } catch (err) {
    fail(err);
  }
}

export interface HttpListener {
  readonly address: HttpAddress;
  readonly url: string;
  close(): Promise<void>;
}

export async function startHttpListener(o: { address: string; allowRemote: boolean; routes: RouteTable; logger: Logger }): Promise<HttpListener> {
  const a = parseHttpAddress(o.address);
  if (!isLoopback(a.host) && !o.allowRemote) {
    throw new ZbdError('EARG', `--http ${o.address}: ${a.host} is not a loopback address; the listener has no authentication, ` +
      'so only 127.0.0.1/::1 are allowed unless --http-allow-remote is given', o.address);
  }
  const log = o.logger.child({ component: 'http' });
  const server = http.createServer((req, res) => dispatch(o.routes, req, res, log));
  // Many short scrapes and a few long event streams: no request timeout for the streams.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ZbdError('EARG', `--http ${o.address}: cannot listen: ${err.code ?? err.message}`, o.address, { cause: err })));
    server.listen(a.port, a.host, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  const address = { host: a.host, port: bound.port };
  const url = `http://${net.isIPv6(a.host) ? `[${a.host}]` : a.host}:${bound.port}/`;
  if (!isLoopback(a.host)) log.warn({ url }, 'HTTP listener reachable from other hosts (--http-allow-remote): metrics and zone maps are readable without authentication');
  log.info({ url }, 'HTTP listener ready: live page, /metrics, /zones, /zones.svg, /events');
  return {
    address, url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
