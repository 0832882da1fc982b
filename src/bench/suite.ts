// The benchmark suite: prepares the files (the regular disk's on a disk filesystem and on
// tmpfs, the zoned images on tmpfs), starts the daemons, runs every workload through the
// load generator child process, alternating qemu-storage-daemon (in each AIO mode: its best
// configuration is whichever wins) and ours run by run (A B C C B A), and keeps the median of
// each metric. Also runs fio on the same files (the ceiling) and measures the load generator
// against a backend that does no I/O.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { createImage } from '../backends/image-file.js';
import { startDaemon, packageRoot, type DaemonSpec, type QsdAio, type RunningDaemon } from './daemons.js';
import { fioAvailable, runFioJob, type FioJob, type FioResult } from './fio.js';
import type { LoadJob, LoadResult, OpKind } from './loadgen.js';
import { loadAverage, processMemory, type MemoryUse } from './proc-stat.js';

export type Group = 'main' | 'sweep' | 'mq' | 'zoned' | 'report' | 'fio' | 'gen';
export const ALL_GROUPS: readonly Group[] = ['main', 'sweep', 'mq', 'zoned', 'report', 'fio', 'gen'];

/** Where the regular disk's file lives: a disk filesystem (ext4, xfs...) or tmpfs. */
export type FileHome = 'disk' | 'tmpfs';
export const ALL_HOMES: readonly FileHome[] = ['disk', 'tmpfs'];

export interface SuiteOptions {
  /** Scratch directory (tmpfs); default: a private one made in /dev/shm and removed afterwards. */
  dir?: string;
  /** Parent of the private directory for the file on a disk filesystem (default /var/tmp). */
  diskDir?: string;
  /** Filesystems the regular-disk workloads run on (the queue-depth sweep and multiqueue: the first). */
  homes: readonly FileHome[];
  /** 'file': QSD and ours on files in dir; 'memory': ours only, on a RAM disk (smoke runs). */
  backend: 'file' | 'memory';
  durationMs: number;
  warmupMs: number;
  reps: number;
  fileSize: number;
  queueSize: number;
  spinUs: number;
  groups: readonly Group[];
  qsd: boolean;
  fio: boolean;
  sweepDepths: readonly number[];
  mqQueues: readonly number[];
  /** Zones per report request, and zones of the report image. */
  reportZones: number;
  /** Zone size of the zoned image: big enough that an append stream does not fill a zone within a run. */
  streamZoneBytes: number;
  imageZones: number;
  /** QSD file AIO modes to run; rows of ours are compared with the best of them. */
  qsdAio: readonly QsdAio[];
  oursNodeArgs?: string[];
  oursEnv?: Record<string, string>;
  /** Checkout whose daemon runs as "ours" (default: this one). */
  oursRoot?: string;
  /** Another checkout whose daemon runs beside ours as "before", in the same alternation. */
  beforeRoot?: string;
  /** Only workloads whose id matches. */
  filter?: RegExp;
  log: Logger;
}

export interface Workload {
  id: string;
  title: string;
  group: Group;
  op: OpKind;
  bs: number;
  qd: number;
  queues: number;
  target: 'raw' | 'zoned' | 'report';
  /** Zone workloads: reset a zone after this many bytes (default: when it is full). */
  reuseBytes?: number;
  /** At least this many repetitions (a target is measured on it, against a noisy ceiling). */
  minReps?: number;
}

/**
 * Who served a run: this daemon, another checkout's ("before", for before/after comparisons),
 * qemu-storage-daemon in one AIO mode, or fio on the file.
 */
export type Runner = 'ours' | 'before' | `qsd ${QsdAio}`;

/** One row of the result table (medians over the repetitions). */
export interface Row {
  workload: Workload;
  daemon: Runner | 'fio' | 'qsd null-co';
  /** The filesystem the file was on (regular disk, file backend), e.g. 'ext4' or 'tmpfs'. */
  fs?: string;
  /** What this row measured when it is not the workload itself (fio's stand-in job). */
  note?: string;
  runs: number;
  iops: number;
  mbps: number;
  p50Us: number;
  p99Us: number;
  daemonCpuS: number;
  genCpuS: number;
  seconds: number;
  errors: number;
  firstError: string | null;
}

export interface SuiteResult {
  rows: Row[];
  commands: string[];
  /** Daemon memory with the report image (file backend only). */
  memory: { zones: number; afterStart: MemoryUse; afterReports: MemoryUse } | null;
  /** Zones per report request actually used. */
  reportZones: number;
  load: { before: [number, number, number]; after: [number, number, number] };
  cpus: number;
  options: Omit<SuiteOptions, 'log'>;
  startedAt: string;
  elapsedS: number;
}

const KiB = 1024, MiB = 1024 * KiB;
/**
 * Zoned streams use 8 zones of 256 MiB (an SMR disk's zone size). A full zone is reset
 * (which frees its space) and written again, so a stream keeps about 2 GiB of pages in use
 * and every write lands in a freshly allocated page, as it does on any emulated zone.
 */
const STREAM_ZONES = 8;
/** fio's write-into-holes ceiling covers this much of the zoned image per pass. */
const FIO_FRESH_MAX = 2048 * MiB;
const REPORT_ZONE_BYTES = 64 * KiB;

export function workloads(o: Pick<SuiteOptions, 'groups' | 'sweepDepths' | 'mqQueues'>): Workload[] {
  const w: Workload[] = [];
  const want = (g: Group): boolean => o.groups.includes(g);
  const rr = (qd: number, group: Group, queues = 1): Workload => ({
    id: `randread-4k-qd${qd}${queues > 1 ? `-q${queues}` : ''}`,
    title: `4K random read QD${qd}${queues > 1 ? ` × ${queues} queues` : ''}`,
    group, op: 'randread', bs: 4 * KiB, qd, queues, target: 'raw',
  });
  if (want('main')) {
    w.push(rr(1, 'main'), rr(32, 'main'));
    w.push({ id: 'randwrite-4k-qd32', title: '4K random write QD32', group: 'main', op: 'randwrite', bs: 4 * KiB, qd: 32, queues: 1, target: 'raw' });
    w.push({ id: 'seqwrite-128k-qd32', title: '128K sequential write QD32', group: 'main', op: 'seqwrite', bs: 128 * KiB, qd: 32, queues: 1, target: 'raw' });
  }
  if (want('sweep')) {
    for (const qd of o.sweepDepths) if (!(want('main') && (qd === 1 || qd === 32))) w.push(rr(qd, 'sweep'));
  }
  if (want('mq')) {
    for (const q of o.mqQueues) if (!(q === 1 && want('main'))) w.push(rr(32, 'mq', q));
  }
  if (want('zoned')) {
    w.push({ id: 'append-4k-qd32', title: `4K zone append QD32, ${STREAM_ZONES} zones`, group: 'zoned', op: 'append', bs: 4 * KiB, qd: 32, queues: 1, target: 'zoned' });
    w.push({ id: 'append-128k-qd32', title: `128K zone append QD32, ${STREAM_ZONES} zones`, group: 'zoned', op: 'append', bs: 128 * KiB, qd: 32, queues: 1, target: 'zoned', minReps: 5 });
    w.push({ id: 'zwrite-128k-qd32', title: `128K write at the write pointer QD32, ${STREAM_ZONES} zones`, group: 'zoned', op: 'zwrite', bs: 128 * KiB, qd: 32, queues: 1, target: 'zoned' });
  }
  if (want('report')) {
    w.push({ id: 'report', title: 'zone report', group: 'report', op: 'report', bs: 512, qd: 1, queues: 1, target: 'report' });
  }
  return w;
}

const median = (v: number[]): number => {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarize(workload: Workload, daemon: Row['daemon'], runs: LoadResult[], note?: string, fsName?: string): Row {
  const m = (f: (r: LoadResult) => number): number => median(runs.map(f));
  return {
    workload, daemon, note, fs: fsName, runs: runs.length, iops: m((r) => r.iops), mbps: m((r) => r.mbps), p50Us: m((r) => r.p50Us),
    p99Us: m((r) => r.p99Us), daemonCpuS: m((r) => r.daemonCpuS), genCpuS: m((r) => r.genCpuS), seconds: m((r) => r.seconds),
    errors: runs.reduce((a, r) => a + r.errors, 0), firstError: runs.find((r) => r.firstError)?.firstError ?? null,
  };
}

/** Runs the load generator in a child process. */
export function runLoadChild(job: LoadJob): Promise<LoadResult> {
  const script = path.join(packageRoot(), 'dist', 'bench', 'loadgen-main.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) { reject(new Error(`load generator failed (exit ${code}): ${err.trim()}`)); return; }
      try { resolve(JSON.parse(out) as LoadResult); } catch { reject(new Error(`load generator printed no result: ${out}${err}`)); }
    });
  });
}

/**
 * A raw file of fileSize bytes of random data (reads then hit real, distinct pages), written
 * back before the runs: on a disk filesystem the writeback of a fresh gigabyte would
 * otherwise run under the first workloads (and stall their writes). Its pages stay cached.
 */
function prepareRawFile(file: string, size: number): void {
  if (fs.existsSync(file) && fs.statSync(file).size === size) return;
  const fd = fs.openSync(file, 'w');
  try {
    const chunk = new Uint8Array(4 * MiB);
    for (let off = 0; off < size; off += chunk.length) {
      randomFillSync(chunk);
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

interface Target {
  spec: Omit<DaemonSpec, 'kind' | 'socket' | 'queues'>;
  /** Name of the filesystem the file is on, for the rows (regular disk only). */
  fs?: string;
  /** Byte range of the random/sequential workloads. */
  offset: number;
  span: number;
  zones?: LoadJob['zones'];
  reportZones?: number;
  /** fio's counterpart of a workload, run in the same rotation as the daemons (null: none). */
  fio?: (w: Workload) => { job: FioJob; note?: string } | null;
}

/** fio's result in the load generator's terms, so rows summarize alike. */
function fioAsLoad(r: FioResult): LoadResult {
  return {
    ops: r.iops * r.seconds, bytes: r.mbps * 1e6 * r.seconds, seconds: r.seconds, iops: r.iops, mbps: r.mbps, p50Us: r.p50Us,
    p99Us: r.p99Us, meanUs: NaN, errors: 0, firstError: null, genCpuS: NaN, daemonCpuS: r.cpuS, kicks: 0, sleeps: 0, zoneResets: 0,
  };
}

/** statfs f_type names of the filesystems images usually live on. */
const FS_NAMES = new Map<number, string>([
  [0xef53, 'ext4'], [0x58465342, 'xfs'], [0x9123683e, 'btrfs'], [0x01021994, 'tmpfs'], [0x858458f6, 'ramfs'], [0x2fc12fc1, 'zfs'],
  [0xf2f52010, 'f2fs'], [0x6969, 'nfs'], [0x794c7630, 'overlayfs'],
]);

export function filesystemName(dir: string): string {
  const t = Number(fs.statfsSync(dir).type);
  return FS_NAMES.get(t) ?? `fs 0x${t.toString(16)}`;
}

/** Private directories of a running suite: removed afterwards, or by removeScratch when interrupted. */
const scratch = new Set<string>();

export function removeScratch(): void {
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  scratch.clear();
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  // Private directories, so two benchmarks (or a benchmark and the test suite's smoke run)
  // never share files; removed afterwards.
  const made: string[] = [];
  const track = (d: string): string => { made.push(d); scratch.add(d); return d; };
  try {
    let dir = opts.dir;
    if (dir === undefined) {
      const base = fs.existsSync('/dev/shm') ? '/dev/shm' : (await import('node:os')).tmpdir();
      dir = track(fs.mkdtempSync(path.join(base, 'vuzbd-bench-')));
    }
    let diskDir = '';
    if (opts.backend === 'file' && opts.homes.includes('disk')) {
      diskDir = track(fs.mkdtempSync(path.join(opts.diskDir ?? '/var/tmp', 'vuzbd-bench-')));
      const name = filesystemName(diskDir);
      if (name === 'tmpfs' || name === 'ramfs') {
        throw new Error(`--disk-dir ${opts.diskDir ?? '/var/tmp'} is on ${name}, not a disk filesystem (give one on ext4, xfs, btrfs...)`);
      }
    }
    return await runSuiteIn({ ...opts, dir, diskDir });
  } finally {
    for (const d of made) { fs.rmSync(d, { recursive: true, force: true }); scratch.delete(d); }
  }
}

async function runSuiteIn(opts: SuiteOptions & { dir: string; diskDir: string }): Promise<SuiteResult> {
  const o = opts.fio && opts.backend === 'file' && !fioAvailable() ? { ...opts, fio: false } : opts;
  const log = o.log;
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const loadBefore = loadAverage();
  const createdDir = !fs.existsSync(o.dir);
  fs.mkdirSync(o.dir, { recursive: true });
  const list = workloads(o).filter((w) => !o.filter || o.filter.test(w.id));
  const rows: Row[] = [];
  const commands: string[] = [];
  const note = (cmd: string): void => { if (!commands.includes(cmd)) commands.push(cmd); };
  let memory: SuiteResult['memory'] = null;
  let reportZonesUsed = o.reportZones;
  const memoryMode = o.backend === 'memory';
  const qsdRunners: Runner[] = o.qsd && !memoryMode ? o.qsdAio.map((a) => `qsd ${a}` as const) : [];
  const oursRunners: Runner[] = o.beforeRoot ? ['before', 'ours'] : ['ours'];
  const daemonsFor = (w: Workload): Runner[] => (w.target === 'raw' ? [...qsdRunners, ...oursRunners] : oursRunners);
  const maxQueues = Math.max(1, ...list.map((w) => w.queues));

  const baseJob = (w: Workload, t: Target, socket: string, pid: number): LoadJob => ({
    socket, daemonPid: pid, op: w.op, bs: w.bs, qd: w.qd, queues: w.queues, queueSize: o.queueSize,
    offset: t.offset, span: t.span, reportZones: t.reportZones,
    zones: t.zones && w.reuseBytes ? { ...t.zones, capSectors: Math.min(t.zones.capSectors, w.reuseBytes / 512) } : t.zones,
    warmupMs: o.warmupMs, durationMs: o.durationMs, spinUs: o.spinUs,
  });

  /** Runs `ws` on `target`: starts the daemons it needs, alternates them run by run. */
  const runOn = async (ws: Workload[], target: Target): Promise<void> => {
    if (ws.length === 0) return;
    const kinds = [...new Set(ws.flatMap(daemonsFor))];
    const running = new Map<Runner, RunningDaemon>();
    const specFor = (kind: Runner): DaemonSpec => {
      const ours = kind === 'ours' || kind === 'before';
      return {
        ...target.spec, kind: ours ? 'ours' : 'qsd', socket: path.join(o.dir, `${kind.replace(' ', '-')}.sock`), queues: maxQueues,
        qsdAio: ours ? undefined : kind.slice(4) as QsdAio, nodeArgs: ours ? o.oursNodeArgs : undefined, env: ours ? o.oursEnv : undefined,
        root: kind === 'before' ? o.beforeRoot : kind === 'ours' ? o.oursRoot : undefined,
      };
    };
    // Each of our daemons locks its image, so with --before-root the two take turns on it: each
    // is started for its run and stopped after it. (A second file would not do: how fast 4K
    // writes go into a cached file depends on its folio sizes, i.e. on when it was written.)
    const perRun = (kind: Runner): boolean => o.beforeRoot !== undefined && target.spec.image !== undefined &&
      (kind === 'ours' || kind === 'before');
    try {
      for (const kind of kinds) {
        if (perRun(kind)) continue;
        const d = await startDaemon(specFor(kind));
        running.set(kind, d);
        note(d.command);
        log.info({ daemon: kind, pid: d.pid, fs: target.fs }, 'daemon started');
      }
      if (target.reportZones) reportZonesUsed = target.reportZones;
      if (target.reportZones && running.has('ours') && !memoryMode) {
        const pid = running.get('ours')!.pid;
        memory = { zones: target.reportZones ? o.imageZones : 0, afterStart: processMemory(pid), afterReports: processMemory(pid) };
      }
      for (const w of ws) {
        const fio = o.fio && o.groups.includes('fio') ? target.fio?.(w) ?? null : null;
        const ds: Array<Runner | 'fio'> = [...daemonsFor(w), ...(fio ? ['fio' as const] : [])];
        const results = new Map<Runner | 'fio', LoadResult[]>(ds.map((d) => [d, []]));
        const reps = o.reps > 1 ? Math.max(o.reps, w.minReps ?? 0) : o.reps;
        for (let rep = 0; rep < reps; rep++) {
          // A B A B ...: the order flips every repetition so neither runs first every time,
          // and all of them see the same (possibly changing) machine load.
          const order = rep % 2 === 0 ? ds : [...ds].reverse();
          for (const kind of order) {
            let r: LoadResult;
            if (kind === 'fio') {
              const f = runFioJob((fio as { job: FioJob }).job);
              note(f.command);
              r = fioAsLoad(f);
            } else if (perRun(kind)) {
              const d = await startDaemon(specFor(kind));
              note(d.command);
              try {
                r = await runLoadChild(baseJob(w, target, d.spec.socket, d.pid));
              } finally {
                await d.stop();
              }
            } else {
              const d = running.get(kind)!;
              r = await runLoadChild(baseJob(w, target, d.spec.socket, d.pid));
            }
            results.get(kind)!.push(r);
            log.info({ workload: w.id, fs: target.fs, daemon: kind, rep, iops: Math.round(r.iops), mbps: Math.round(r.mbps), p50Us: +r.p50Us.toFixed(1), errors: r.errors }, 'run');
          }
        }
        for (const kind of ds) rows.push(summarize(w, kind, results.get(kind)!, kind === 'fio' ? fio?.note : undefined, target.fs));
      }
      if (target.reportZones && running.has('ours') && memory) {
        memory.afterReports = processMemory(running.get('ours')!.pid);
      }
    } finally {
      for (const d of running.values()) await d.stop();
    }
  };

  if (memoryMode) {
    // One RAM disk for everything: conventional zones for the regular workloads, sequential
    // zones behind them for the zoned ones.
    const zoneBytes = Math.min(o.streamZoneBytes, 16 * MiB), conv = Math.ceil(o.fileSize / zoneBytes);
    const nz = conv + STREAM_ZONES + 64;
    const t: Target = {
      spec: { memory: { size: String(nz * zoneBytes), zoneSize: String(zoneBytes), conventional: conv } },
      offset: 0, span: conv * zoneBytes,
      zones: { first: conv, count: STREAM_ZONES, zoneSectors: zoneBytes / 512, capSectors: zoneBytes / 512 },
      reportZones: Math.min(o.reportZones, nz),
    };
    await runOn(list, t);
  } else {
    // The regular disk: the main workloads on each filesystem, the sweep and multiqueue on the first.
    for (const [k, home] of o.homes.entries()) {
      const raw = path.join(home === 'disk' ? o.diskDir : o.dir, 'raw.img');
      const rawWs = list.filter((w) => w.target === 'raw' && (k === 0 || w.group === 'main'));
      if (rawWs.length === 0) continue;
      const fsName = filesystemName(path.dirname(raw));
      log.info({ file: raw, fs: fsName, bytes: o.fileSize }, 'preparing the raw file');
      prepareRawFile(raw, o.fileSize);
      try {
        await runOn(rawWs, {
          spec: { image: raw, model: 'none' }, fs: fsName, offset: 0, span: o.fileSize,
          fio: (w) => (w.group !== 'main' ? null : {
            job: { file: raw, rw: w.op === 'randread' ? 'randread' : w.op === 'randwrite' ? 'randwrite' : 'write', bs: w.bs, iodepth: w.qd, offset: 0, size: o.fileSize, durationMs: o.durationMs },
          }),
        });
      } finally {
        // 1 GiB of RAM in /dev/shm (or of disk) is not something to leave behind.
        fs.rmSync(raw, { force: true });
      }
    }

    const zonedWs = list.filter((w) => w.target === 'zoned');
    const zimg = path.join(o.dir, 'zoned.img');
    let zonedHeader: ReturnType<typeof createImage> | null = null;
    if (zonedWs.length > 0) {
      zonedHeader = createImage(zimg, {
        capacitySectors: 2 * STREAM_ZONES * o.streamZoneBytes / 512, zoneSectors: o.streamZoneBytes / 512,
        conventionalZones: 0, blockSize: 4096, maxOpenZones: 0, maxActiveZones: 0, force: true,
      });
      note(`vhost-user-zbd create ${zimg} --size ${2 * STREAM_ZONES * o.streamZoneBytes / MiB}M --zone-size ${o.streamZoneBytes / MiB}M --block-size 4096 --force`);
    }
    // fio writes into holes of zones the daemon does not use (8 and up): the same file, the
    // same kind of fresh pages as an append stream into reset zones.
    const fioSpan = Math.min(FIO_FRESH_MAX, STREAM_ZONES * o.streamZoneBytes);
    await runOn(zonedWs, {
      spec: { image: zimg, model: 'hm' }, offset: 0, span: 0,
      zones: { first: 0, count: STREAM_ZONES, zoneSectors: o.streamZoneBytes / 512, capSectors: o.streamZoneBytes / 512 },
      fio: (w) => (w.id !== 'append-128k-qd32' || !zonedHeader ? null : {
        job: { file: zimg, rw: 'write', bs: w.bs, iodepth: w.qd, offset: zonedHeader.dataOffset + STREAM_ZONES * o.streamZoneBytes, size: fioSpan, durationMs: o.durationMs, fresh: true },
        note: `fio: 128K sequential write QD32 into holes (${fioSpan / MiB} MiB of the same image)`,
      }),
    });

    const reportWs = list.filter((w) => w.target === 'report');
    if (reportWs.length > 0) {
      const rimg = path.join(o.dir, 'report.img');
      createImage(rimg, {
        capacitySectors: o.imageZones * REPORT_ZONE_BYTES / 512, zoneSectors: REPORT_ZONE_BYTES / 512,
        conventionalZones: 0, blockSize: 4096, force: true,
      });
      note(`vhost-user-zbd create ${rimg} --size ${o.imageZones * REPORT_ZONE_BYTES / MiB}M --zone-size ${REPORT_ZONE_BYTES / KiB}K --block-size 4096 --force`);
      await runOn(reportWs, { spec: { image: rimg, model: 'hm' }, offset: 0, span: 0, reportZones: o.reportZones });
      fs.rmSync(rimg, { force: true });
    }

    if (o.groups.includes('gen') && o.qsd) {
      // The load generator against a daemon with nothing behind it: its own ceiling.
      const w: Workload = { id: 'gen-null-qd32', title: '4K random read QD32, QSD null-co (no I/O)', group: 'gen', op: 'randread', bs: 4 * KiB, qd: 32, queues: 1, target: 'raw' };
      const d = await startDaemon({ kind: 'qsd', socket: path.join(o.dir, 'null.sock'), queues: 1, qsdDriver: 'null-co' });
      note(d.command);
      try {
        const runs: LoadResult[] = [];
        for (let rep = 0; rep < o.reps; rep++) runs.push(await runLoadChild(baseJob(w, { spec: {}, offset: 0, span: 1 << 30 }, d.spec.socket, d.pid)));
        rows.push(summarize(w, 'qsd null-co', runs));
      } finally {
        await d.stop();
      }
    }

    fs.rmSync(zimg, { force: true });
  }
  if (createdDir) {
    try { fs.rmdirSync(o.dir); } catch { /* not empty: leave what is not ours */ }
  }
  return {
    rows, commands, memory, reportZones: reportZonesUsed, load: { before: loadBefore, after: loadAverage() }, cpus: (await import('node:os')).cpus().length,
    options: { ...o, log: undefined } as unknown as Omit<SuiteOptions, 'log'>, startedAt, elapsedS: (Date.now() - t0) / 1000,
  };
}
