// The ring's index words under concurrency, with V8's optimizing compilers off on both sides
// (there a DataView's 16-bit access is two byte accesses): first the device and driver halves
// of one ring in two threads, then the daemon and the benchmark's load generator (a driver in
// another process). A torn used.idx (0x00FF -> 0x0100 read as 0x0000) makes a driver consume
// entries that were never published; a torn avail.idx makes the device stop the queue. With one
// 16-bit access per word neither happens. Before the fix the first test failed 3 times in 3,
// after 11-19k chains, and the second 5 times in 6.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LoadJob, LoadResult } from '../../src/bench/loadgen.js';

const root = path.resolve(import.meta.dirname, '../..');
const UNOPTIMIZED = ['--no-opt', '--no-sparkplug', '--max-lazy'];

describe('ring index words with unoptimized code on both sides', () => {
  it('SplitRing and a driver in two threads, 2 s: no index read torn on either side', () => {
    const r = spawnSync(process.execPath, [...UNOPTIMIZED, path.join(import.meta.dirname, 'ring-words-child.mjs'), root, '2'],
      { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { ops: number; fault: string | null };
    expect(out.fault).toBeNull();
    console.log(`ring-words: ${out.ops} chains through one ring in 2 s, unoptimized`);
    // used.idx crossed a multiple of 256 at least a hundred times.
    expect(out.ops).toBeGreaterThan(100 * 256);
  }, 90_000);

  it('two queues at QD32 for 3 s: every completion the generator sees was published, and the daemon stays healthy', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-ring-words-'));
    const socket = path.join(dir, 'sock');
    let daemonErr = '';
    const daemon = spawn(process.execPath, [...UNOPTIMIZED, path.join(root, 'bin/vhost-user-zbd.js'), 'serve', '--socket', socket,
      '--memory', '--size', '256M', '--model', 'none', '--queues', '2',
      '--log-level', 'warn', '--no-hints'], { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr.on('data', (d) => { daemonErr += String(d); });
    try {
      for (let i = 0; i < 200 && !fs.existsSync(socket) && daemon.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
      expect(fs.existsSync(socket), `daemon did not listen: ${daemonErr}`).toBe(true);
      const job: LoadJob = {
        socket, daemonPid: daemon.pid ?? 0, op: 'randread', bs: 4096, qd: 32, queues: 2, queueSize: 256,
        offset: 0, span: 256 << 20, warmupMs: 0, durationMs: 3000, spinUs: 50,
      };
      const r = spawnSync(process.execPath, [...UNOPTIMIZED, path.join(root, 'dist/bench/loadgen-main.js'), JSON.stringify(job)],
        { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const result = JSON.parse(r.stdout) as LoadResult;
      expect(result.errors).toBe(0);
      // Enough completions that used.idx crossed a multiple of 256 many times (printed, not timed).
      console.log(`ring-words: ${result.ops} requests in ${result.seconds.toFixed(1)} s, unoptimized`);
      expect(result.ops).toBeGreaterThan(20 * 256);
      expect(daemonErr).toBe('');
    } finally {
      if (daemon.exitCode === null && daemon.signalCode === null) {
        const exited = new Promise((r) => daemon.once('exit', r));
        daemon.kill();
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
