// `report` and `check` of a drive-scale image (1 048 576 zones, as `create --size 64T
// --zone-size 64M`): the report is a stream that waits for its reader, so a pipe nobody reads
// does not make it queue the whole report in memory; a --zone/--count window reads only its
// own entries of the zone table.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = path.resolve(__dirname, '../../bin/vhost-user-zbd.js');
// tmpfs: the image is sparse, only its 32 MiB zone table takes memory.
const dir = fs.mkdtempSync(path.join('/dev/shm', 'vuzbd-report-'));
const img = path.join(dir, 'big.img');
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const rssKiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

beforeAll(() => {
  const r = run('create', img, '--size', '64T', '--zone-size', '64M');
  expect(r.code, r.err).toBe(0);
}, 60_000);

describe('report of 1 048 576 zones', () => {
  for (const json of [false, true]) {
    it(`${json ? '--json' : 'text'}: waits for a reader that does not read, in bounded memory, then prints every zone`, async () => {
      const p = spawn(process.execPath, [bin, 'report', img, ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
      pids.push(p.pid as number);
      const chunks: Buffer[] = [];
      let err = '';
      p.stderr.on('data', (d) => { err += String(d); });
      const exit = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
      // Read the first chunk, then stop reading for a while: the report must wait, not queue.
      await new Promise<void>((resolve) => p.stdout.once('data', (d: Buffer) => { chunks.push(d); p.stdout.pause(); resolve(); }));
      let peak = 0;
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        peak = Math.max(peak, rssKiB(p.pid as number));
      }
      // Before streaming, the whole report (~136 MB of text) was queued behind the pipe: 1.25 GB.
      expect(peak).toBeLessThan(150 * 1024);
      p.stdout.on('data', (d: Buffer) => chunks.push(d));
      p.stdout.resume();
      expect(await exit, err).toBe(0);
      const text = Buffer.concat(chunks).toString();
      if (json) {
        const j = JSON.parse(text);
        expect(j.nrZones).toBe(1048576);
        expect(j.zones).toHaveLength(1048576);
        expect(j.zones[1048575]).toEqual({
          zone: 1048575, start: 1048575 * 131072, len: 131072, cap: 131072, wp: 1048575 * 131072,
          type: 2, typeName: 'SEQ_WRITE_REQUIRED', cond: 1, condName: 'empty',
        });
      } else {
        const lines = text.split('\n');
        expect(lines).toHaveLength(1048577);
        expect(lines[1048575]).toBe('  start: 0x1ffffe0000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]');
      }
    }, 120_000);
  }

  it('check reads the table in chunks and reports the allocation', () => {
    const r = run('check', img);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/allocated \d+ of 70368778780672 bytes .*preallocation off\n.*clean \(1048576 zones, 0 conventional\)/);
  });

  it('a --zone/--count window reads only its own zone entries', () => {
    // Corrupt zone 1000's entry: a window that does not include it never reads it.
    const fd = fs.openSync(img, 'r+');
    const saved = Buffer.alloc(32);
    fs.readSync(fd, saved, 0, 32, 4096 + 1000 * 32);
    fs.writeSync(fd, Buffer.alloc(8, 0xff), 0, 8, 4096 + 1000 * 32);
    try {
      let r = run('report', img, '--zone', '1001', '--count', '3');
      expect(r.code, r.err).toBe(0);
      expect(r.out.split('\n').filter(Boolean)).toHaveLength(3);
      r = run('report', img, '--zone', '998', '--count', '2', '--json');
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out).zones.map((z: { zone: number }) => z.zone)).toEqual([998, 999]);
      r = run('report', img, '--zone', '999', '--count', '2');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/zone 1000: zone entry checksum mismatch \(run 'vhost-user-zbd check --repair'\)/);
      r = run('report', img, '--zone', '1048575', '--count', '10');
      expect(r.out.split('\n').filter(Boolean)).toHaveLength(1);
    } finally {
      fs.writeSync(fd, saved, 0, 32, 4096 + 1000 * 32);
      fs.closeSync(fd);
    }
  });
});
