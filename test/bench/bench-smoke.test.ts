// Smoke test of `vhost-user-zbd bench`: a --quick run against the RAM disk only (no QSD, no
// fio), with this checkout also run as "before" (--before-root), must finish and print the
// table with a number in every measured column for both. Timings are printed, never asserted:
// this machine's speed is not the test's business.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

describe('bench --quick --backend memory', () => {
  it('prints a table of numbers for every workload, for ours and for --before-root', () => {
    const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'vuzbd-bench-smoke-'));
    try {
      const r = spawnSync(process.execPath, [path.join(root, 'bin/vhost-user-zbd.js'), 'bench', '--quick', '--backend', 'memory',
        '--dir', dir, '--log-level', 'silent', '--duration', '0.2', '--warmup', '0.05', '--json', path.join(dir, 'r.json'),
        '--before-root', root],
      { encoding: 'utf8', timeout: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines[0]).toMatch(/^workload\s+daemon\s+IOPS\s+MB\/s\s+p50 µs\s+p99 µs/);
      const rows = lines.slice(2, lines.indexOf(''));
      const titles = ['4K random read QD1', '4K random read QD32', '4K random write QD32', '128K sequential write QD32',
        '4K zone append', '128K zone append', '128K write at the write pointer', 'zone report'];
      for (const t of titles) {
        for (const daemon of ['before', 'ours']) {
          const row = rows.find((l) => l.startsWith(t) && new RegExp(`\\b${daemon}\\b`).test(l));
          expect(row, `row for ${t}, ${daemon}`).toBeDefined();
          // daemon, IOPS, MB/s (or '-' for reports), p50, p99, daemon CPU, CPU/IO, generator CPU.
          expect(row).toMatch(new RegExp(`\\b${daemon}\\s+[\\d,]+\\s+(\\d+|-)\\s+\\d+\\.\\d\\s+\\d+\\.\\d\\s+\\d+\\.\\d\\d\\s+\\d+\\.\\d\\s+\\d+\\.\\d\\d`));
        }
      }
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')) as { rows: Array<{ iops: number; errors: number }> };
      expect(json.rows.length).toBe(2 * titles.length);
      for (const row of json.rows) {
        expect(row.errors).toBe(0);
        expect(row.iops).toBeGreaterThan(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--before-root on files: the two checkouts take turns on each image (each locks the image it serves)', () => {
    const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'vuzbd-bench-twin-'));
    try {
      const r = spawnSync(process.execPath, [path.join(root, 'bin/vhost-user-zbd.js'), 'bench', '--quick', '--no-qsd', '--no-fio',
        '--fs', 'tmpfs', '--dir', dir, '--log-level', 'silent', '--duration', '0.2', '--warmup', '0.05', '--before-root', root,
        '--filter', 'randread-4k-qd1$|append-4k-qd32|^report$'], { encoding: 'utf8', timeout: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // A raw file, a zoned image and a report image: a row for each daemon on each.
      for (const t of ['4K random read QD1, tmpfs', '4K zone append QD32', 'zone report']) {
        for (const daemon of ['before', 'ours']) {
          expect(r.stdout.split('\n').some((l) => l.startsWith(t) && new RegExp(`\\b${daemon}\\s+[\\d,]+\\s`).test(l)), `${t}, ${daemon}`).toBe(true);
        }
      }
      // The images and sockets are removed afterwards.
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a --before-root that is not a built checkout, naming what is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-bench-root-'));
    try {
      const r = spawnSync(process.execPath, [path.join(root, 'bin/vhost-user-zbd.js'), 'bench', '--quick', '--backend', 'memory',
        '--before-root', dir], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--before-root ${dir}: no bin/vhost-user-zbd.js there`);
      expect(r.stdout).toBe('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
