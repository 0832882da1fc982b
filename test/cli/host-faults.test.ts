// A full file system under the daemon, as a new user meets it: an image on a 48 MiB tmpfs,
// 8 zones appended at QD8 by the test front-end until long after the space is gone. The
// guest gets IOERR, the daemon logs a handful of lines (not one or two per failed request
// with a stack), every acknowledged append is in the image and `check` finds it consistent.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlkRequestSlot } from '../../src/testing/blk-request.js';
import { BIN, runCli } from '../harness/cli-process.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-enospc-'));
const mnt = path.join(dir, 'mnt');
let mounted = false;
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  if (mounted) spawnSync('umount', ['-l', mnt]);
  fs.rmSync(dir, { recursive: true, force: true });
});

const ZONE_SECTORS = 16384; // 8 MiB zones
const ZONES = 8;
const APPEND = 64 * 1024;

describe('host faults', () => {
  it('ENOSPC on a full tmpfs: IOERR to the guest, a handful of log lines, a consistent image', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a 48 MiB tmpfs: run it as root');
    fs.mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    mounted = true;
    const image = path.join(mnt, 'full.img');
    const created = await runCli('create', image, '--size', '256M', '--zone-size', '8M');
    expect(created.code, created.err).toBe(0);

    const socket = path.join(dir, 's');
    const daemon = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--image', image, '--no-hints'], { stdio: ['ignore', 'ignore', 'pipe'] });
    pids.push(daemon.pid as number);
    let err = '';
    daemon.stderr.on('data', (d) => { err += String(d); });
    const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 200 && !/"msg":"serving"/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
    expect(err).toMatch(/"msg":"serving"/);

    const fe = VhostUserFrontend.connect(socket);
    const mem = GuestMemoryImage.simple(8 * 1024 * 1024);
    await fe.negotiate();
    await fe.setMemTable(mem);
    const q = await fe.setupQueue(mem, 0, { size: 64 });
    // One request per zone in flight (QD8); each completion submits the next append to its zone.
    const slots = Array.from({ length: ZONES }, () => new BlkRequestSlot(mem, APPEND));
    const payload = new Uint8Array(APPEND).fill(0xa5);
    const byHead = new Map<number, number>();
    const ok = new Array<number>(ZONES).fill(0);
    const statuses = new Map<number, number>();
    let inflight = 0;
    const submit = (z: number): void => {
      inflight++;
      byHead.set(slots[z].submit(q, { type: 15, sector: z * ZONE_SECTORS, out: [payload], tailLen: 9 }), z);
    };
    for (let z = 0; z < ZONES; z++) submit(z);
    q.kick();
    const end = Date.now() + 4000;
    let failed = 0;
    while (Date.now() < end) {
      for (const u of await q.waitUsed(1)) {
        const z = byHead.get(u.id) as number;
        inflight--;
        const s = slots[z].status;
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
        if (s === 0) {
          expect(slots[z].appendSector).toBe(z * ZONE_SECTORS + ok[z] * (APPEND / 512));
          ok[z]++;
        } else failed++;
        // A full zone (ZONE_INVALID_CMD) gets no more appends; the others keep trying.
        if (s !== 3) submit(z);
      }
      q.kick();
    }
    // What is still in flight finishes before the daemon stops.
    // What is still in flight completes before the daemon stops (appends are not resubmitted now).
    for (const u of await q.waitUsed(inflight)) {
      const z = byHead.get(u.id) as number;
      const s = slots[z].status;
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      if (s === 0) ok[z]++; else failed++;
    }
    fe.close();
    q.closeFds();
    mem.close();
    daemon.kill('SIGTERM');
    expect(await exited).toBe(0);

    // The guest saw the space run out: IOERR, many times.
    expect(statuses.get(1) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(500);
    expect(failed).toBe((statuses.get(1) ?? 0) + (statuses.get(3) ?? 0));
    // The daemon said so in a few lines: no stack, the code and the request context, then a summary.
    const lines = err.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const loud = lines.filter((l) => (l.level as number) >= 40);
    expect(loud.length, loud.map((l) => l.msg).join('\n')).toBeLessThanOrEqual(12);
    expect(err).not.toMatch(/"stack"/);
    const first = loud.find((l) => l.code === 'ENOSPC');
    expect(first, err.slice(0, 3000)).toMatchObject({ code: 'ENOSPC', errno: 28 });
    expect(first?.sector).toEqual(expect.any(Number));
    expect(loud.some((l) => /ENOSPC .*: \d+ times in the last [\d.]+ s$/.test(String(l.msg)))).toBe(true);

    // Every acknowledged append is below its zone's write pointer, and nothing else is.
    const check = await runCli('check', image);
    expect(check.code, check.out + check.err).toBe(0);
    const report = await runCli('report', image, '--json');
    const zones = (JSON.parse(report.out) as { zones: Array<{ start: number; wp: number }> }).zones;
    for (let z = 0; z < ZONES; z++) expect(zones[z].wp - zones[z].start, `zone ${z}`).toBe(ok[z] * (APPEND / 512));
  }, 60_000);
});
