// fio (io_uring) on the very file the daemons serve: what the kernel gives a local process,
// without vhost-user, guest memory or a daemon in the way. The ceiling of the table.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fallocate, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../native/index.js';

export interface FioJob {
  file: string;
  rw: 'randread' | 'randwrite' | 'write';
  bs: number;
  iodepth: number;
  offset: number;
  size: number;
  durationMs: number;
  /**
   * Punch the range before each pass and write it once per pass: every write lands in a hole,
   * as an append stream's writes do after their zone was reset. The punch time is counted:
   * freeing the pages is part of that work too (a zone reset frees its zone).
   */
  fresh?: boolean;
}

export interface FioResult {
  iops: number;
  mbps: number;
  p50Us: number;
  p99Us: number;
  /** fio's own CPU time (user + system) over the run. */
  cpuS: number;
  seconds: number;
  command: string;
}

interface FioJson {
  jobs: Array<{
    read: FioDir; write: FioDir; usr_cpu: number; sys_cpu: number; job_runtime?: number;
  }>;
}
interface FioDir { io_bytes: number; iops: number; runtime: number; total_ios: number; clat_ns?: { percentile?: Record<string, number> } }

export function fioArgs(j: FioJob, runtimeS?: number): string[] {
  const a = ['--name=ceiling', `--filename=${j.file}`, '--ioengine=io_uring', `--rw=${j.rw}`, `--bs=${j.bs}`,
    `--iodepth=${j.iodepth}`, `--offset=${j.offset}`, `--size=${j.size}`, '--direct=0', '--randrepeat=0', '--norandommap',
    '--output-format=json'];
  if (runtimeS !== undefined) a.push(`--runtime=${runtimeS}`, '--time_based');
  return a;
}

function runFio(args: string[]): FioJson {
  const r = spawnSync('fio', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`fio: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`fio exited ${r.status}: ${r.stderr.trim()}`);
  // fio may print warnings before the JSON document.
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as FioJson;
}

export function fioAvailable(): boolean {
  return spawnSync('fio', ['--version'], { encoding: 'utf8' }).status === 0;
}

export function runFioJob(j: FioJob): FioResult {
  const dir = j.rw === 'randread' ? 'read' : 'write';
  if (!j.fresh) {
    const args = fioArgs(j, Math.max(1, Math.round(j.durationMs / 1000)));
    const out = runFio(args).jobs[0];
    const d = out[dir];
    const seconds = d.runtime / 1000;
    const pct = d.clat_ns?.percentile ?? {};
    return {
      iops: d.iops, mbps: d.io_bytes / seconds / 1e6, p50Us: (pct['50.000000'] ?? 0) / 1000, p99Us: (pct['99.000000'] ?? 0) / 1000,
      cpuS: (out.usr_cpu + out.sys_cpu) / 100 * seconds, seconds, command: ['fio', ...args].join(' '),
    };
  }
  // Fresh passes: punch, write the range once, repeat until the duration is used up.
  const args = fioArgs(j);
  let bytes = 0, ms = 0, ios = 0, cpuS = 0;
  const p50: number[] = [], p99: number[] = [];
  const fd = fs.openSync(j.file, 'r+');
  // The first punch only makes the range a hole; later ones free what the previous pass wrote.
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, j.offset, j.size);
  try {
    for (let pass = 0; ms < j.durationMs; pass++) {
      if (pass > 0) {
        const t = performance.now();
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, j.offset, j.size);
        ms += performance.now() - t;
      }
      const out = runFio(args).jobs[0];
      const d = out[dir];
      bytes += d.io_bytes; ms += d.runtime; ios += d.total_ios;
      cpuS += (out.usr_cpu + out.sys_cpu) / 100 * (d.runtime / 1000);
      const pct = d.clat_ns?.percentile ?? {};
      p50.push((pct['50.000000'] ?? 0) / 1000); p99.push((pct['99.000000'] ?? 0) / 1000);
    }
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, j.offset, j.size);
  } finally {
    fs.closeSync(fd);
  }
  const seconds = ms / 1000;
  const med = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1];
  return {
    iops: ios / seconds, mbps: bytes / seconds / 1e6, p50Us: med(p50), p99Us: med(p99), cpuS, seconds,
    command: `fio ${args.join(' ')}  # repeated for ${j.durationMs} ms, the range punched (fallocate) before each pass, punch time counted`,
  };
}
