// `vhost-user-zbd ctl`: the control API's client (status, zones, zone faults, error and
// latency rules, power cut) for a running `serve`. Exit 0 on success; 1 with the API's error
// message when it refuses; 2 for usage errors.
import { nonNegativeIntOption } from './int-option.js';
import fs from 'node:fs';
import http from 'node:http';
import type { Argv } from 'yargs';
import { ZbdError } from '../errors.js';
import { formatZoneLine, type ZoneJson } from './report-format.js';
import type { CommandModule } from './main.js';
import type { Out } from './image-commands.js';
import { FAULT_OPS, FAULT_STATUSES } from '../control/fault-rules.js';
import { POWER_CUT_POLICIES } from '../control/volatile-cache.js';
import { ZONE_ACTIONS } from '../control/control-routes.js';

export interface ApiAnswer { status: number; body: unknown }

/** One request to the control API over its Unix socket. */
export function apiRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      socketPath, method, path,
      headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON: keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(new ZbdError('ESOCKET', `cannot reach the control API at ${socketPath}: ${e.code ?? e.message} (is serve running, with --api?)`, socketPath, { cause: e }));
    });
    req.end(payload);
  });
}

/** The answer's body, or a one-line error with the API's code and message. */
async function call(api: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await apiRequest(api, method, path, body);
  if (r.status >= 200 && r.status < 300) return r.body;
  const e = (r.body as { error?: { code?: string; message?: string } } | null)?.error;
  throw new CtlRefused(e ? `${e.message} [${e.code}, HTTP ${r.status}]` : `HTTP ${r.status}: ${String(r.body)}`);
}

class CtlRefused extends Error {}

/** "S:E" (sectors, end exclusive) -> {start, end}. */
function parseRange(v: string): { start: number; end: number } {
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m) throw new ZbdError('EARG', `--range ${v} must be START:END in sectors (END exclusive)`, v);
  return { start: Number(m[1]), end: Number(m[2]) };
}

/** "100" or "100..2000" (milliseconds) -> delayMs / delayMaxMs. */
function parseDelay(v: string): { delayMs: number; delayMaxMs?: number } {
  const m = /^(\d+)(?:\.\.(\d+))?$/.exec(v);
  if (!m) throw new ZbdError('EARG', `--delay ${v} must be MS or MIN..MAX in milliseconds`, v);
  return m[2] === undefined ? { delayMs: Number(m[1]) } : { delayMs: Number(m[1]), delayMaxMs: Number(m[2]) };
}

interface FaultView {
  id: number; op: string; range: { start: number; end: number } | null; action: string; status: string | null;
  delayMs: number | null; delayMaxMs: number | null; count: number | null; probability: number; after: number;
  seed: number; matched: number; fired: number; live: boolean;
}

export function formatFault(f: FaultView): string {
  const what = f.action === 'error' ? `error ${f.status}` : `delay ${f.delayMs}${f.delayMaxMs !== f.delayMs ? `..${f.delayMaxMs}` : ''} ms`;
  const when = [
    f.count !== null ? `count ${f.count}` : 'every time',
    f.probability < 1 ? `probability ${f.probability} (seed ${f.seed})` : '',
    f.after > 0 ? `after ${f.after}` : '',
  ].filter(Boolean).join(', ');
  return `${f.id}: ${f.op}${f.range ? ` sectors ${f.range.start}:${f.range.end}` : ''} -> ${what}; ${when}; matched ${f.matched}, fired ${f.fired}${f.live ? '' : ' (spent)'}`;
}

interface CtlArgs {
  api?: string; socket?: string; json?: boolean;
}

function apiPathOf(a: CtlArgs): string {
  if (a.api) return a.api;
  if (a.socket) return `${a.socket}.api`;
  throw new ZbdError('EARG', 'name the control socket: --api PATH (serve prints it; default SOCKET.api) or --socket SOCKET', undefined);
}

async function run(o: Out, f: () => Promise<void>): Promise<number> {
  try {
    await f();
    return 0;
  } catch (err) {
    if (err instanceof CtlRefused) { o.err(`vhost-user-zbd ctl: ${err.message}`); return 1; }
    throw err;
  }
}

export const ctlCommand: CommandModule = (y: Argv, o, done) => y.command('ctl', 'control a running serve: status, zones, zone faults, error/latency injection, power cut', (c) => c
  .option('api', { type: 'string', describe: 'control API socket of the daemon (default: SOCKET.api of --socket)' })
  .option('socket', { type: 'string', describe: 'the vhost-user socket of the daemon (its API is SOCKET.api)' })
  .command('status', 'geometry, front-end, features, queues, requests in flight, faults, volatile cache (JSON)', (s) => s,
    (a) => done(run(o, async () => { o.out(JSON.stringify(await call(apiPathOf(a), 'GET', '/status'), null, 2)); })))
  .command('zones', 'the zones, in blkzone report format (as the guest would see them)', (s) => s
    .option('json', { type: 'boolean', default: false })
    .option('zone', { type: 'string', coerce: nonNegativeIntOption('--zone'), describe: 'first zone' })
    .option('count', { type: 'string', coerce: nonNegativeIntOption('--count'), describe: 'number of zones' })
    .option('svg', { type: 'string', describe: 'draw the zones as an SVG zone map into this file instead of listing them' }),
  (a) => done(run(o, async () => {
    const api = apiPathOf(a);
    if (a.svg) {
      const q = new URLSearchParams();
      if (a.zone !== undefined) q.set('zone', String(a.zone));
      if (a.count !== undefined) q.set('count', String(a.count));
      const svg = String(await call(api, 'GET', `/zones.svg${q.size ? `?${q}` : ''}`));
      try { fs.writeFileSync(a.svg, svg); } catch (err) {
        throw new ZbdError('EARG', `--svg ${a.svg}: cannot write the zone map: ${(err as Error).message}`, a.svg, { cause: err });
      }
      o.out(`zone map of ${/data-zones="(\d+)"/.exec(svg)?.[1] ?? '?'} zones written to ${a.svg}`);
      return;
    }
    const all: ZoneJson[] = [];
    let next: number | null = a.zone ?? 0;
    let left = a.count ?? Infinity;
    // Pages of at most 4096 zones: a disk of a million zones prints without a huge answer.
    while (next !== null && left > 0) {
      const n = Math.min(4096, left);
      const r = await call(api, 'GET', `/zones?zone=${next}&count=${Number.isFinite(n) ? n : 4096}`) as { zones: ZoneJson[]; next: number | null };
      for (const z of r.zones) {
        if (a.json) all.push(z);
        else o.out(formatZoneLine(z.start, z.len, z.cap, z.wp ?? (z.type === 1 ? z.start + z.len : -1), z.type, z.cond));
      }
      left -= r.zones.length;
      next = r.next;
    }
    if (a.json) o.out(JSON.stringify({ zones: all }, null, 2));
  })))
  .command('zone <zone> <action>', `zone action, live: ${Object.keys(ZONE_ACTIONS).join('|')}. offline/readonly persist in an image; ` +
    'clear (a test-tool convenience no drive has) returns a faulted zone to service: EMPTY after offline, its previous state after readonly', (s) => s
    .positional('zone', { type: 'string', demandOption: true, describe: 'zone index' })
    .positional('action', { type: 'string', choices: Object.keys(ZONE_ACTIONS), demandOption: true }),
  (a) => done(run(o, async () => {
    const r = await call(apiPathOf(a), 'POST', `/zones/${encodeURIComponent(a.zone)}/${encodeURIComponent(a.action)}`) as { zone: number; condName: string };
    o.out(`zone ${r.zone}: ${a.action} done, now ${r.condName}`);
  })))
  .command('fault <what> [id]', 'error/latency rules: fault add ..., fault list, fault clear [ID]', (s) => s
    .positional('what', { choices: ['add', 'list', 'clear'] as const, demandOption: true })
    .positional('id', { type: 'string', describe: 'rule id (clear); without it, clear removes every rule' })
    .option('op', { choices: FAULT_OPS, default: 'any' as const, describe: 'add: requests the rule matches' })
    .option('range', { type: 'string', describe: 'add: sectors START:END (END exclusive) a request must overlap' })
    .option('error', { type: 'string', choices: Object.keys(FAULT_STATUSES), describe: 'add: answer this status without touching the data (default ioerr)' })
    .option('delay', { type: 'string', describe: 'add: delay matching requests MS, or a random MIN..MAX ms, instead of failing them' })
    .option('count', { type: 'string', coerce: nonNegativeIntOption('--count'), describe: 'add: fire at most N times' })
    .option('once', { type: 'boolean', describe: 'add: fire once (= --count 1)' })
    .option('probability', { type: 'number', describe: 'add: fire with probability P (0 < P <= 1) per matching request' })
    .option('after', { type: 'string', coerce: nonNegativeIntOption('--after'), describe: 'add: let the first N matching requests pass' })
    .option('seed', { type: 'string', coerce: nonNegativeIntOption('--seed'), describe: 'add: seed of the rule\'s random choices' })
    .option('json', { type: 'boolean', default: false, describe: 'list: machine-readable' }),
  (a) => done(run(o, async () => {
    const api = apiPathOf(a);
    if (a.what === 'list') {
      const r = await call(api, 'GET', '/faults') as { faults: FaultView[] };
      if (a.json) o.out(JSON.stringify(r, null, 2));
      else if (r.faults.length === 0) o.out('no fault rules');
      else for (const f of r.faults) o.out(formatFault(f));
      return;
    }
    if (a.what === 'clear') {
      const r = await call(api, 'DELETE', a.id === undefined ? '/faults' : `/faults/${encodeURIComponent(a.id)}`) as { removed: number };
      o.out(`removed ${r.removed} rule(s)`);
      return;
    }
    if (a.error !== undefined && a.delay !== undefined) throw new ZbdError('EARG', 'give --error or --delay, not both', undefined);
    const spec: Record<string, unknown> = { op: a.op };
    if (a.range !== undefined) spec.range = parseRange(a.range);
    if (a.delay !== undefined) Object.assign(spec, { action: 'delay' }, parseDelay(a.delay));
    else Object.assign(spec, { action: 'error', status: a.error ?? 'ioerr' });
    if (a.count !== undefined) spec.count = a.count;
    if (a.once) spec.once = true;
    if (a.probability !== undefined) spec.probability = a.probability;
    if (a.after !== undefined) spec.after = a.after;
    if (a.seed !== undefined) spec.seed = a.seed;
    const r = await call(api, 'POST', '/faults', spec) as { fault: FaultView };
    o.out(`added ${formatFault(r.fault)}`);
  })))
  .command('power-cut', 'pull the plug: drop the front-end; with serve --volatile-cache, unflushed writes are lost by policy', (s) => s
    .option('policy', { choices: POWER_CUT_POLICIES, default: 'all' as const, describe: 'all: lose every unflushed write; none; random: per sequential zone a random prefix of its unflushed writes survives, per conventional write kept or lost' })
    .option('seed', { type: 'string', coerce: nonNegativeIntOption('--seed'), describe: 'seed of the random policy' })
    .option('json', { type: 'boolean', default: false }),
  (a) => done(run(o, async () => {
    const body: Record<string, unknown> = { policy: a.policy };
    if (a.seed !== undefined) body.seed = a.seed;
    const r = await call(apiPathOf(a), 'POST', '/power-cut', body) as {
      policy: string; seed: number; frontendDropped: boolean; volatileCache: boolean; lostWrites: number; lostBytes: number;
      zones: { zone: number; type: string; unflushedWrites: number; lostWrites: number; lostBytes: number; wpBefore?: number; wpAfter?: number }[];
    };
    if (a.json) { o.out(JSON.stringify(r, null, 2)); return; }
    o.out(`power cut (policy ${r.policy}, seed ${r.seed}): front-end ${r.frontendDropped ? 'dropped' : 'was not connected'}; ` +
      (r.volatileCache ? `lost ${r.lostWrites} write(s), ${r.lostBytes} bytes` : 'no volatile cache (serve without --volatile-cache): nothing lost'));
    for (const z of r.zones) {
      o.out(`  zone ${z.zone} (${z.type}): ${z.unflushedWrites} unflushed write(s), lost ${z.lostWrites} (${z.lostBytes} bytes)` +
        (z.wpBefore !== undefined ? `, wp ${z.wpBefore} -> ${z.wpAfter}` : ''));
    }
  })))
  .demandCommand(1, 'name a ctl command: status, zones, zone, fault, power-cut'),
() => undefined);
