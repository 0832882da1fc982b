// The control API's router and server on their own: route matching, 404/405, read-only
// listeners (the TCP observation listener serves only routes registered read-only).
import http from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, ApiRouter, ApiServer } from '../../src/control/api-server.js';

const router = new ApiRouter()
  .add('GET', '/things/{id}', (r) => ({ json: { id: r.params.id, q: r.query.get('q') } }), { readOnly: true })
  .add('POST', '/things/{id}', (r) => ({ status: 201, json: { id: r.params.id, body: r.body } }))
  .add('GET', '/text', () => ({ text: 'metric 1\n', contentType: 'text/plain; version=0.0.4' }), { readOnly: true })
  .add('GET', '/boom', () => { throw new Error('handler bug'); }, { readOnly: true })
  .add('GET', '/refuse', () => { throw new ApiError('busy', 'not now'); }, { readOnly: true });

let ro: ApiServer;
let port = 0;

function get(method: string, p: string, body?: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p }, (res) => {
      let text = '';
      res.on('data', (d) => { text += String(d); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  ro = new ApiServer({ router, logger: pino({ level: 'silent' }), mayChange: false });
  port = await ro.listenTcp('127.0.0.1', 0);
});
afterAll(async () => { await ro.close(); });

describe('ApiRouter and ApiServer', () => {
  it('matches {name} segments (URL-decoded) and passes the query', async () => {
    const r = await get('GET', '/things/a%20b?q=1');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ id: 'a b', q: '1' });
    expect(router.resolve('GET', '/things/x/').params).toEqual({ id: 'x' });
  });

  it('serves text replies with their content type; HEAD gets the headers only', async () => {
    const r = await get('GET', '/text');
    expect(r).toEqual({ status: 200, type: 'text/plain; version=0.0.4', text: 'metric 1\n' });
    expect((await get('HEAD', '/text')).text).toBe('');
  });

  it('a read-only listener refuses routes that may change the disk (403), with the error body', async () => {
    const r = await get('POST', '/things/1', '{}');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toEqual({ error: { code: 'read-only-listener', message: 'POST /things/{id} is only served on the control socket' } });
  });

  it('404 for unknown paths, 405 naming the allowed methods, 500 for a handler bug, ApiError status', async () => {
    expect((await get('GET', '/nothing')).status).toBe(404);
    const m = await get('DELETE', '/things/1');
    expect(m.status).toBe(405);
    expect(JSON.parse(m.text).error.message).toBe('DELETE /things/1 is not allowed; use GET, POST');
    const b = await get('GET', '/boom');
    expect(b.status).toBe(500);
    expect(JSON.parse(b.text).error).toEqual({ code: 'internal', message: 'internal error: handler bug' });
    const f = await get('GET', '/refuse');
    expect(f.status).toBe(409);
    expect(router.list()).toHaveLength(5);
  });
});
