// Contract of the control API (serve's SOCK.api) and its ctl client, against the real daemon:
// every endpoint, every error code, the 0600 mode, garbage, a 100 MB body, concurrent clients.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/cli/ctl-command.js';
import { BIN, runCli } from '../harness/cli-process.js';

let dir: string;
let image: string;
let socket: string;
let api: string;
let daemon: ChildProcess;
let exited: Promise<number | null>;
let logFile: string;

async function startDaemon(args: string[]): Promise<void> {
  const log = fs.openSync(logFile, 'a');
  daemon = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--no-hints', ...args], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  exited = new Promise((resolve) => daemon.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(socket)) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start:\n${fs.readFileSync(logFile, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopDaemon(): Promise<number | null> {
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  return exited;
}

const req = (method: string, p: string, body?: unknown) => apiRequest(api, method, p, body, 20_000);
const err = (b: unknown): { code: string; message: string } => (b as { error: { code: string; message: string } }).error;

/** Raw bytes to the socket; resolves everything the server sent back before closing. */
function raw(bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(api);
    let got = '';
    s.on('data', (d) => { got += String(d); });
    // The server may close while we still send (a refused body): what it said is the answer.
    s.on('error', (e) => (got ? resolve(got) : reject(e)));
    s.on('close', () => resolve(got));
    s.on('connect', () => s.end(bytes));
    setTimeout(() => { s.destroy(); resolve(got); }, 10_000);
  });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-api-'));
  image = path.join(dir, 'disk.img');
  socket = path.join(dir, 'vu.sock');
  api = `${socket}.api`;
  logFile = path.join(dir, 'daemon.log');
  const c = await runCli('create', image, '--size', '256M', '--zone-size', '16M', '--conventional', '2');
  expect(c.code, c.err).toBe(0);
  await startDaemon(['--image', image]);
}, 120_000);

afterAll(async () => {
  if (daemon) expect(await stopDaemon(), fs.readFileSync(logFile, 'utf8').slice(-3000)).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('control API', () => {
  it('listens on SOCK.api, a socket only its owner may use (0600)', () => {
    const st = fs.statSync(api);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('GET /status describes the disk, the front-end and the faults', async () => {
    const r = await req('GET', '/status');
    expect(r.status).toBe(200);
    const s = r.body as Record<string, any>;
    expect(s.model).toBe('host-managed');
    expect(s.source).toEqual({ image });
    expect(s.capacitySectors).toBe(256 * 2048);
    expect(s.zoned.nrZones).toBe(16);
    expect(s.zoned.conventionalZones).toBe(2);
    expect(s.frontend.connected).toBe(false);
    expect(s.queues).toBe(1);
    expect(s.requestsInFlight).toBe(0);
    expect(s.faults).toEqual({ rules: 0, live: 0 });
    expect(s.volatileCache).toEqual({ enabled: false });
    expect(typeof s.uptimeSeconds).toBe('number');
  });

  it('GET /zones reports zones like report --json, paged with zone= and count=', async () => {
    const all = await req('GET', '/zones');
    expect(all.status).toBe(200);
    const b = all.body as { nrZones: number; zones: { zone: number; condName: string; wp: number | null }[]; next: number | null };
    expect(b.nrZones).toBe(16);
    expect(b.zones).toHaveLength(16);
    expect(b.next).toBeNull();
    expect(b.zones[0].condName).toBe('not-write-pointer');
    expect(b.zones[2]).toMatchObject({ zone: 2, condName: 'empty', wp: 2 * 32768 });
    const page = await req('GET', '/zones?zone=3&count=2');
    expect((page.body as typeof b).zones.map((z) => z.zone)).toEqual([3, 4]);
    expect((page.body as typeof b).next).toBe(5);
    const far = await req('GET', '/zones?zone=16');
    expect(far.status).toBe(404);
    expect(err(far.body).code).toBe('zone-out-of-range');
    const bad = await req('GET', '/zones?count=abc');
    expect(bad.status).toBe(400);
    expect(err(bad.body)).toEqual({ code: 'bad-field', message: 'count "abc" is not a non-negative integer' });
  });

  it('POST /zones/{n}/{action}: offline, readonly, clear and the zone operations, live', async () => {
    let r = await req('POST', '/zones/3/offline');
    expect(r).toEqual({ status: 200, body: { zone: 3, action: 'offline', cond: 15, condName: 'offline' } });
    r = await req('POST', '/zones/4/open');
    expect((r.body as { condName: string }).condName).toBe('explicitly-opened');
    r = await req('POST', '/zones/4/readonly');
    expect((r.body as { condName: string }).condName).toBe('read-only');
    // A read-only zone cannot be opened: the refusal names the condition.
    r = await req('POST', '/zones/4/open');
    expect(r.status).toBe(409);
    expect(err(r.body)).toEqual({ code: 'zone-refused', message: 'zone 4: open refused: the zone condition does not allow it (condition read-only)' });
    r = await req('POST', '/zones/4/clear');
    expect((r.body as { condName: string }).condName).toBe('empty');
    r = await req('POST', '/zones/5/finish');
    expect((r.body as { condName: string }).condName).toBe('full');
    r = await req('POST', '/zones/5/reset');
    expect((r.body as { condName: string }).condName).toBe('empty');
    // Conventional zones have no write pointer to manage.
    r = await req('POST', '/zones/0/reset');
    expect(r.status).toBe(409);
    expect(err(r.body).code).toBe('zone-refused');
  });

  it('zone errors: out of range, not a number, unknown action', async () => {
    let r = await req('POST', '/zones/16/offline');
    expect(r.status).toBe(404);
    expect(err(r.body)).toEqual({ code: 'zone-out-of-range', message: 'zone 16 is not a zone of this disk (0..15)' });
    r = await req('POST', '/zones/x/offline');
    expect(r.status).toBe(400);
    expect(err(r.body).code).toBe('bad-field');
    r = await req('POST', '/zones/6/explode');
    expect(r.status).toBe(400);
    expect(err(r.body).code).toBe('unknown-action');
    expect(err(r.body).message).toContain('"explode"');
  });

  it('faults: add (201), list, delete one (404 when gone), delete all; every field checked', async () => {
    let r = await req('POST', '/faults', { op: 'write', range: { start: 100, end: 200 }, action: 'error', status: 'zone-invalid-cmd', once: true });
    expect(r.status).toBe(201);
    const f = (r.body as { fault: Record<string, unknown> }).fault;
    expect(f).toMatchObject({ id: 1, op: 'write', range: { start: 100, end: 200 }, action: 'error', status: 'zone-invalid-cmd', count: 1, live: true, fired: 0 });
    r = await req('POST', '/faults', { op: 'read', delayMs: 5, delayMaxMs: 50, probability: 0.5, after: 3, seed: 7 });
    expect((r.body as { fault: Record<string, unknown> }).fault).toMatchObject({ id: 2, action: 'delay', delayMs: 5, delayMaxMs: 50, probability: 0.5, after: 3, seed: 7, count: null });
    r = await req('GET', '/faults');
    expect((r.body as { faults: unknown[] }).faults).toHaveLength(2);
    expect(((await req('GET', '/status')).body as { faults: unknown }).faults).toEqual({ rules: 2, live: 2 });
    r = await req('DELETE', '/faults/1');
    expect(r).toEqual({ status: 200, body: { removed: 1 } });
    r = await req('DELETE', '/faults/1');
    expect(r.status).toBe(404);
    expect(err(r.body)).toEqual({ code: 'no-such-fault', message: 'no fault rule 1' });
    r = await req('DELETE', '/faults');
    expect(r).toEqual({ status: 200, body: { removed: 1 } });
    const bad: [unknown, string][] = [
      [{ op: 'erase' }, 'op "erase"'],
      [{ op: 'read', range: { start: 10, end: 5 } }, 'range.end 5'],
      [{ op: 'flush', range: { start: 0, end: 5 } }, 'range {"start":0,"end":5}: a flush has no sectors'],
      [{ status: 'boom' }, 'status "boom"'],
      [{ action: 'delay' }, 'delayMs undefined: a delay rule needs delayMs'],
      [{ delayMs: 10, delayMaxMs: 5 }, 'delayMaxMs 5'],
      [{ delayMs: 700000 }, 'delayMs 700000'],
      [{ probability: 0 }, 'probability 0'],
      [{ probability: 1.5 }, 'probability 1.5'],
      [{ count: 0 }, 'count 0'],
      [{ count: 2, once: true }, 'count 2: give count or once'],
      [{ after: -1 }, 'after -1'],
      [{ colour: 'red' }, 'colour "red": unknown field'],
      [[1, 2], 'the body must be a JSON object'],
      [undefined, 'the body must be a JSON object'],
    ];
    for (const [body, msg] of bad) {
      const a = await req('POST', '/faults', body);
      expect(a.status, JSON.stringify(body)).toBe(400);
      expect(err(a.body).code).toBe('bad-field');
      expect(err(a.body).message).toContain(msg);
    }
  });

  it('POST /power-cut without a front-end or a volatile cache loses nothing; bad policy and seed are refused', async () => {
    let r = await req('POST', '/power-cut', { policy: 'none', seed: 3 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ policy: 'none', seed: 3, volatileCache: false, frontendDropped: false, lostWrites: 0, lostBytes: 0, zones: [] });
    r = await req('POST', '/power-cut', { policy: 'some' });
    expect(r.status).toBe(400);
    expect(err(r.body).message).toContain('policy "some"');
    r = await req('POST', '/power-cut', { seed: -4 });
    expect(err(r.body).message).toContain('seed -4');
    r = await req('POST', '/power-cut', { polcy: 'all' });
    expect(err(r.body).message).toContain('polcy');
  });

  it('unknown paths 404, wrong methods 405, malformed JSON 400', async () => {
    let r = await req('GET', '/nothing');
    expect(r.status).toBe(404);
    expect(err(r.body)).toEqual({ code: 'not-found', message: 'no endpoint /nothing' });
    r = await req('PUT', '/faults');
    expect(r.status).toBe(405);
    expect(err(r.body).code).toBe('method-not-allowed');
    r = await req('GET', '/power-cut');
    expect(r.status).toBe(405);
    const text = await raw('POST /faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"op": re');
    expect(text).toMatch(/^HTTP\/1.1 400/);
    expect(text).toContain('"code":"bad-json"');
  });

  it('garbage that is not HTTP gets a 400 and a closed connection; the daemon goes on', async () => {
    const text = await raw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a, 0x01, 0x02]));
    expect(text).toMatch(/^HTTP\/1.1 400/);
    expect(((await req('GET', '/status')).status)).toBe(200);
  });

  it('a 100 MB body is refused with 413 without being read; the daemon goes on', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = net.connect(api);
      let got = '';
      const answer = () => ({ status: Number(/^HTTP\/1.1 (\d+)/.exec(got)?.[1] ?? 0), body: got });
      s.on('data', (d) => {
        got += String(d);
        // The whole answer is there (it is small): stop sending, as curl does.
        if (got.includes('\r\n\r\n') && got.trimEnd().endsWith('}')) { s.destroy(); resolve(answer()); }
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve(answer()));
      s.on('connect', () => {
        s.write(`POST /faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 << 20}\r\n\r\n`);
        const chunk = Buffer.alloc(1 << 20, 0x20);
        let sent = 0;
        const pump = (): void => {
          while (sent < 100 && s.writable) { sent++; if (!s.write(chunk)) { s.once('drain', pump); return; } }
          s.end();
        };
        pump();
      });
      setTimeout(() => reject(new Error(`no answer: ${got}`)), 30_000);
    });
    expect(res.status).toBe(413);
    expect(res.body).toContain('"code":"body-too-large"');
    // Same without a Content-Length (chunked): cut off once over the limit.
    const chunked = await raw(`POST /faults HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n${' '.repeat(0x200000)}\r\n0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1.1 413/);
    expect((await req('GET', '/status')).status).toBe(200);
  });

  it('serves concurrent clients: 40 requests at once, each answered', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? req('GET', `/zones?zone=${i % 16}&count=1`) : req('POST', '/faults', { op: 'read', range: { start: i, end: i + 1 } }))));
    for (const [i, r] of rs.entries()) expect(r.status, String(i)).toBe(i % 2 ? 200 : 201);
    const ids = rs.filter((_, i) => i % 2 === 0).map((r) => (r.body as { fault: { id: number } }).fault.id);
    expect(new Set(ids).size).toBe(20);
    expect((await req('DELETE', '/faults')).body).toEqual({ removed: 20 });
  });

  it('ctl: the client prints what the API answers and exits 1 with its message when refused', async () => {
    const ctl = (...a: string[]) => runCli('ctl', '--api', api, ...a);
    let r = await ctl('zone', '7', 'readonly');
    expect(r).toMatchObject({ code: 0, out: 'zone 7: readonly done, now read-only\n' });
    r = await ctl('zones', '--zone', '6', '--count', '2');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[1]).toMatch(/zcond:13\(ro\)/);
    r = await ctl('zone', '7', 'clear');
    expect(r.out).toBe('zone 7: clear done, now empty\n');
    r = await ctl('zone', '99', 'offline');
    expect(r.code).toBe(1);
    expect(r.err).toBe('vhost-user-zbd ctl: zone 99 is not a zone of this disk (0..15) [zone-out-of-range, HTTP 404]\n');
    r = await ctl('fault', 'add', '--op', 'write', '--range', '64:72', '--once');
    expect(r.out).toMatch(/^added \d+: write sectors 64:72 -> error ioerr; count 1; matched 0, fired 0\n$/);
    r = await ctl('fault', 'add', '--op', 'read', '--delay', '10..20', '--probability', '0.25', '--seed', '9');
    expect(r.out).toMatch(/read -> delay 10..20 ms; every time, probability 0.25 \(seed 9\)/);
    r = await ctl('fault', 'list');
    expect(r.out.trim().split('\n')).toHaveLength(2);
    r = await ctl('fault', 'clear');
    expect(r.out).toBe('removed 2 rule(s)\n');
    r = await ctl('fault', 'clear', '12345');
    expect(r.code).toBe(1);
    r = await ctl('status');
    expect(JSON.parse(r.out).model).toBe('host-managed');
    r = await ctl('power-cut', '--policy', 'none');
    expect(r.out).toMatch(/^power cut \(policy none, seed \d+\): front-end was not connected; no volatile cache/);
    r = await runCli('ctl', '--api', path.join(dir, 'nope.api'), 'status');
    expect(r.code).toBe(1);
    expect(r.err).toContain('cannot reach the control API');
  });

  it('the zone faults persist in the image; --api none serves no API; a live API socket is not taken over', async () => {
    expect((await req('POST', '/zones/9/offline')).status).toBe(200);
    expect((await req('POST', '/zones/10/readonly')).status).toBe(200);
    expect(await stopDaemon()).toBe(0);
    expect(fs.existsSync(api)).toBe(false);
    const rep = await runCli('report', image, '--zone', '9', '--count', '2');
    expect(rep.out).toMatch(/zcond:15\(of\)[^\n]*\n[^\n]*zcond:13\(ro\)/);
    const chk = await runCli('check', image);
    expect(chk.code, chk.out).toBe(0);
    await startDaemon(['--image', image, '--api', 'none']);
    expect(fs.existsSync(api)).toBe(false);
    expect(await stopDaemon()).toBe(0);
    // Another daemon's API socket is in use: refuse to start rather than steal it.
    const holder = net.createServer().listen(api);
    await new Promise((r) => holder.once('listening', r));
    const clash = await runCli('serve', '--socket', path.join(dir, 'other.sock'), '--image', image, '--api', api, '--no-hints');
    holder.close();
    expect(clash.code).toBe(1);
    expect(clash.err).toContain('another daemon is already serving a control API');
    await startDaemon(['--image', image]);
    const z = (await req('GET', '/zones?zone=9&count=2')).body as { zones: { condName: string }[] };
    expect(z.zones.map((x) => x.condName)).toEqual(['offline', 'read-only']);
    expect((await req('POST', '/zones/9/clear')).status).toBe(200);
    expect((await req('POST', '/zones/10/clear')).status).toBe(200);
  });
});
