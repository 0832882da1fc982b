// `vhost-user-zbd bench`: qemu-storage-daemon and this daemon side by side on the same files,
// driven by the same vhost-user load generator. Prints one table; optionally writes JSON,
// a markdown section and the IOPS-vs-queue-depth plot. A tool apart from the daemon: the CLI
// loads this module only when `bench` is asked for, and it imports nothing from cli/.
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { ZbdError } from '../errors.js';
import { createLogger } from '../log.js';
import { parseSize } from '../zoned/geometry.js';
import { qdPlotSvg } from './plot.js';
import { markdownReport, textReport } from './report.js';
import { killDaemons, QSD_AIO, type QsdAio } from './daemons.js';
import { ALL_GROUPS, ALL_HOMES, removeScratch, runSuite, type FileHome, type Group, type SuiteOptions } from './suite.js';

export interface BenchArgs {
  quick: boolean;
  dir?: string;
  backend: 'file' | 'memory';
  duration?: number;
  warmup?: number;
  reps?: number;
  fileSize: string;
  queueSize: number;
  spinUs: number;
  only?: string;
  qsd: boolean;
  fio: boolean;
  qsdAio: string;
  fs: string;
  diskDir?: string;
  daemonNodeArgs?: string;
  daemonEnv?: string;
  oursRoot?: string;
  beforeRoot?: string;
  filter?: string;
  json?: string;
  markdown?: string;
  plot?: string;
  logLevel: 'info' | 'warn' | 'silent';
}

/** A built vhost-user-zbd checkout (its bin/ and dist/ present), as an absolute path. */
function checkout(flag: string, dir: string): string {
  const root = path.resolve(dir);
  for (const f of ['bin/vhost-user-zbd.js', 'dist/cli/main.js']) {
    if (!fs.existsSync(path.join(root, f))) {
      throw new ZbdError('EARG', `${flag} ${dir}: no ${f} there (a vhost-user-zbd checkout after npm ci and npm run build)`, dir);
    }
  }
  return root;
}

export function suiteOptions(a: BenchArgs): Omit<SuiteOptions, 'log'> {
  const groups = a.only ? a.only.split(',').map((g) => g.trim()).filter(Boolean) : [...ALL_GROUPS];
  for (const g of groups) {
    if (!(ALL_GROUPS as readonly string[]).includes(g)) throw new ZbdError('EARG', `--only: unknown group '${g}' (groups: ${ALL_GROUPS.join(', ')})`, g);
  }
  const num = (flag: string, v: number | undefined, def: number, min: number): number => {
    const n = v ?? def;
    if (!Number.isFinite(n) || n < min) throw new ZbdError('EARG', `${flag} ${String(v)} must be a number ≥ ${min}`, v);
    return n;
  };
  const list = <T extends string>(flag: string, v: string, all: readonly T[]): T[] => {
    const items = v.split(',').map((x) => x.trim()).filter(Boolean);
    for (const x of items) if (!(all as readonly string[]).includes(x)) throw new ZbdError('EARG', `${flag}: unknown value '${x}' (values: ${all.join(', ')})`, x);
    if (items.length === 0) throw new ZbdError('EARG', `${flag}: name at least one of ${all.join(', ')}`, v);
    return items as T[];
  };
  const quick = a.quick;
  const fileSize = parseSize('--file-size', a.fileSize);
  if (fileSize < (1 << 20) || fileSize % 4096 !== 0) throw new ZbdError('EARG', `--file-size ${a.fileSize} must be at least 1M and a multiple of 4K`, a.fileSize);
  return {
    dir: a.dir === undefined ? undefined : path.resolve(a.dir),
    backend: a.backend,
    durationMs: num('--duration', a.duration, quick ? 0.3 : 2, 0.05) * 1000,
    warmupMs: num('--warmup', a.warmup, quick ? 0.1 : 0.3, 0) * 1000,
    reps: Math.round(num('--reps', a.reps, quick ? 1 : 3, 1)),
    fileSize: quick ? Math.min(fileSize, 256 << 20) : fileSize,
    queueSize: a.queueSize,
    spinUs: a.spinUs,
    groups: (quick && !a.only ? groups.filter((g) => g !== 'mq' && g !== 'sweep') : groups) as Group[],
    qsd: a.qsd && a.backend === 'file',
    fio: a.fio && a.backend === 'file',
    sweepDepths: [1, 2, 4, 8, 16, 32, 64],
    mqQueues: [1, 2, 4],
    reportZones: quick ? 10_000 : 100_000,
    streamZoneBytes: 256 << 20,
    imageZones: quick ? 100_000 : 1_000_000,
    qsdAio: list<QsdAio>('--qsd-aio', a.qsdAio, QSD_AIO),
    homes: list<FileHome>('--fs', a.fs, ALL_HOMES),
    diskDir: a.diskDir === undefined ? undefined : path.resolve(a.diskDir),
    oursNodeArgs: a.daemonNodeArgs ? a.daemonNodeArgs.split(/\s+/).filter(Boolean) : undefined,
    oursEnv: a.daemonEnv ? Object.fromEntries(a.daemonEnv.split(',').filter(Boolean).map((kv) => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new ZbdError('EARG', `--daemon-env '${kv}' is not NAME=VALUE`, kv);
      return [kv.slice(0, i), kv.slice(i + 1)];
    })) : undefined,
    filter: a.filter ? new RegExp(a.filter) : undefined,
    oursRoot: a.oursRoot ? checkout('--ours-root', a.oursRoot) : undefined,
    beforeRoot: a.beforeRoot ? checkout('--before-root', a.beforeRoot) : undefined,
  };
}

/** Where the report goes (the CLI's stdout and stderr). */
export interface Printer { out(line: string): void; err(line: string): void }

export async function bench(a: BenchArgs, o: Printer): Promise<number> {
  const log = createLogger(a.logLevel);
  const opts = suiteOptions(a);
  if (opts.queueSize < 4 || opts.queueSize > 1024 || (opts.queueSize & (opts.queueSize - 1)) !== 0) {
    throw new ZbdError('EARG', `--queue-size ${opts.queueSize} must be a power of two from 4 to 1024`, opts.queueSize);
  }
  log.info({ groups: opts.groups, durationMs: opts.durationMs, reps: opts.reps, dir: opts.dir, backend: opts.backend }, 'benchmark starting');
  // Interrupted: no daemon and no gigabyte of scratch file left behind.
  const interrupted = (sig: NodeJS.Signals): void => {
    killDaemons();
    removeScratch();
    o.err(`vhost-user-zbd bench: interrupted by ${sig}`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  let result;
  try {
    result = await runSuite({ ...opts, log });
  } finally {
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
  }
  for (const l of textReport(result)) o.out(l);
  if (a.json) fs.writeFileSync(a.json, JSON.stringify(result, null, 2) + '\n');
  if (a.markdown) fs.writeFileSync(a.markdown, markdownReport(result));
  if (a.plot) fs.writeFileSync(a.plot, qdPlotSvg(result));
  const errors = result.rows.reduce((n, r) => n + r.errors, 0);
  if (errors > 0) {
    for (const r of result.rows) if (r.firstError) o.err(`vhost-user-zbd bench: ${r.workload.id} on ${r.daemon}: ${r.firstError}`);
    return 1;
  }
  return 0;
}

const numOpt = (v: unknown): number | undefined => (v === undefined ? undefined : Number(v));

export const BENCH_DESCRIPTION = 'benchmark against qemu-storage-daemon on the same file (vhost-user load generator, fio ceiling, zoned workloads)';

/** `vhost-user-zbd bench ARGS`: parses ARGS and runs the suite; usage errors are thrown (ZbdError or YError). */
export async function benchMain(argv: string[], o: Printer): Promise<number> {
  let code = 0;
  await yargs(argv)
    .scriptName('vhost-user-zbd bench')
    .usage(`$0 [options]\n\n${BENCH_DESCRIPTION}.`)
    .option('quick', { type: 'boolean', default: false, describe: 'CI-sized smoke run: short runs, one repetition, no queue-depth sweep or multiqueue' })
    .option('dir', { type: 'string', describe: 'scratch directory for the sockets and the tmpfs files, on tmpfs (default: a private directory in /dev/shm, removed afterwards)' })
    .option('fs', { type: 'string', default: 'disk,tmpfs', describe: 'where the regular disk\'s file lives, in order: disk (a disk filesystem, see --disk-dir), tmpfs; the sweep and multiqueue run on the first' })
    .option('disk-dir', { type: 'string', describe: 'a directory on a disk filesystem for --fs disk (default /var/tmp; a private directory is made in it and removed afterwards)' })
    .option('backend', { choices: ['file', 'memory'] as const, default: 'file' as const, describe: 'memory: only this daemon, on a RAM disk' })
    .option('duration', { type: 'string', coerce: numOpt, describe: 'seconds per run (default 2; --quick 0.3)' })
    .option('warmup', { type: 'string', coerce: numOpt, describe: 'seconds of warm-up before each measured run (default 0.3)' })
    .option('reps', { type: 'string', coerce: numOpt, describe: 'runs per daemon and workload, alternating A B A B (default 3; --quick 1)' })
    .option('file-size', { type: 'string', default: '1G', describe: 'size of the raw file the regular workloads use' })
    .option('queue-size', { type: 'string', coerce: numOpt, default: '256', describe: 'virtqueue size' })
    .option('spin-us', { type: 'string', coerce: numOpt, default: '50', describe: 'load generator: poll this long before sleeping on the call eventfd' })
    .option('only', { type: 'string', describe: `comma-separated groups: ${ALL_GROUPS.join(',')}` })
    .option('qsd', { type: 'boolean', default: true, describe: 'run qemu-storage-daemon (--no-qsd: ours only)' })
    .option('fio', { type: 'boolean', default: true, describe: 'run the fio ceiling' })
    .option('qsd-aio', { type: 'string', default: QSD_AIO.join(','), describe: 'QSD file AIO modes to run (ours is compared with the best of them)' })
    .option('daemon-node-args', { type: 'string', describe: "node flags for our daemon, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'" })
    .option('daemon-env', { type: 'string', describe: 'extra environment for our daemon, e.g. UV_THREADPOOL_SIZE=2' })
    .option('ours-root', { type: 'string', describe: 'run the daemon of another vhost-user-zbd checkout as "ours"' })
    .option('before-root', { type: 'string', describe: 'also run the daemon of another checkout, as "before", alternating with ours (before/after in one run)' })
    .option('filter', { type: 'string', describe: 'only workloads whose id matches this regular expression (e.g. randread-4k-qd1$)' })
    .option('json', { type: 'string', describe: 'write all results as JSON' })
    .option('markdown', { type: 'string', describe: 'write the table, verdicts and commands as markdown' })
    .option('plot', { type: 'string', describe: 'write IOPS vs queue depth as SVG' })
    .option('log-level', { choices: ['info', 'warn', 'silent'] as const, default: 'info' as const, describe: 'progress log on stderr' })
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => { throw err ?? new ZbdError('EARG', msg, undefined); })
    .command('$0', false, () => {}, async (a) => {
      code = await bench({
        quick: a.quick, dir: a.dir, backend: a.backend, duration: a.duration, warmup: a.warmup, reps: a.reps, fileSize: a['file-size'],
        queueSize: Number(a['queue-size']), spinUs: Number(a['spin-us']), only: a.only, qsd: a.qsd, fio: a.fio, qsdAio: a['qsd-aio'], fs: a.fs, diskDir: a['disk-dir'],
        daemonNodeArgs: a['daemon-node-args'], daemonEnv: a['daemon-env'], oursRoot: a['ours-root'], beforeRoot: a['before-root'], filter: a.filter, json: a.json,
        markdown: a.markdown, plot: a.plot, logLevel: a['log-level'],
      }, o);
    })
    .parseAsync();
  return code;
}
