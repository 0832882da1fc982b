// Restart without losing I/O (issue 11): on the host's QEMU (Debian 12: 7.2) and on QEMU >= 10.2
// (get-qemu.sh: 11.1), a guest with vhost-user-blk-pci and a reconnecting chardev runs fio with crc32c verify on a raw file served with --model none,
// while the daemon is SIGKILLed mid-I/O three times and restarted on the same socket. QEMU keeps
// the inflight region (INFLIGHT_SHMFD) and hands it to each new daemon, which resubmits the
// requests the dead one had popped and not completed. fio must finish without an error and
// every block must verify. The guest build and both QEMUs are not optional: this test fails,
// never skips.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REGULAR_DISK_QEMUS, ROOT, qemuBanner, qemuGuest, startDaemon, tempDir, type Daemon } from './harness.js';

const SCRIPT = path.join(__dirname, 'scripts/qemu-inflight-restart.sh');
const RUN_QEMU = path.join(ROOT, 'qemu-scripts/run-qemu.sh');
const MiB = 1024 * 1024;
const KILLS = 3;
const SIZE_MIB = 64;
const RESUMED = 'inflight: resuming after the requests in flight at the last stop';
const RECOVERED = 'inflight: region from an earlier start recovered';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

interface LogLine { level: number; msg: string; pid?: number; [k: string]: unknown }
const logLines = (file: string): LogLine[] => fs.readFileSync(file, 'utf8').split('\n')
  .filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Completions the daemon's io_uring posted and the daemon has not reaped (kernel fdinfo). */
function unreapedCompletions(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try { target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    if (target !== 'anon_inode:[io_uring]') continue;
    const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    n += (field('CqTail') - field('CqHead')) & 0xffffffff;
  }
  return n;
}

/**
 * SIGKILL at a moment the daemon holds requests it popped and has not completed: stop it, and
 * if its io_uring has completions it has not reaped (requests not yet pushed to the used ring),
 * kill it there; otherwise let it run a few ms and look again (for up to 10 s). Returns whether
 * it was caught so.
 */
async function killMidIo(pid: number): Promise<boolean> {
  const stopped = (): boolean => /^\d+ \(.*\) T/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const deadline = Date.now() + 10_000;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    process.kill(pid, 'SIGSTOP');
    while (!stopped()) await sleep(0);
    if (unreapedCompletions(pid) > 0) {
      process.kill(pid, 'SIGKILL');
      return true;
    }
    process.kill(pid, 'SIGCONT');
    await sleep(attempt % 4);
  }
  process.kill(pid, 'SIGKILL');
  return false;
}

describe.each(REGULAR_DISK_QEMUS)('$name, vhost-user-blk-pci: daemon SIGKILLed and restarted mid-I/O (inflight tracking)', ({ tag, qemu }) => {
  it(`fio verify survives ${KILLS} kill -9 + restart cycles; in-flight requests are resubmitted`, async () => {
    const t0 = Date.now();
    const g = qemuGuest();
    const banner = qemuBanner(qemu());
    const d = tempDir(`qemu-inflight-${tag}`);
    dirs.push(d);
    const raw = path.join(d, 'raw.img');
    fs.closeSync(fs.openSync(raw, 'w'));
    fs.truncateSync(raw, 256 * MiB);
    const out = path.join(d, 'out');
    fs.mkdirSync(out);
    const args = ['--image', raw, '--model', 'none', '--queues', '1'];
    let daemon: Daemon = await startDaemon(d, args);
    const log = daemon.log;
    const serial = (): string | undefined => logLines(log).find((l) => l.msg === 'serving')?.serial as string | undefined;
    await waitFor('the serving line', () => serial() !== undefined, 10_000);
    const connects = (): number => logLines(log).filter((l) => l.msg === 'front-end connected').length;
    const recovered = (): number => logLines(log).filter((l) => l.msg === RECOVERED).length;
    /** Requests each restarted daemon resubmitted (one line per restart that found some). */
    const resubmits = (): number[] => logLines(log).filter((l) => l.msg === RESUMED).map((l) => Number(l.resubmit));
    const resubmitted = (): number => resubmits().reduce((n, r) => n + r, 0);

    const qemuArgs = [RUN_QEMU, '--qemu', qemu(), '--kernel', g.kernel, '--initrd', g.initrd, '--socket', daemon.socket, '--reconnect', '1',
      '--timeout', '400', '--share', out, '--env', `OUT=${out}`, '--env', `EXPECT_SERIAL=${serial()}`,
      '--env', `SIZE=${SIZE_MIB}M`, '--env', 'BS=4k', '--', 'bash', SCRIPT];
    const guest = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const p = spawn('bash', qemuArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (b) => { stdout += String(b); });
      p.stderr.on('data', (b) => { stderr += String(b); });
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    let guestDone = false;
    void guest.then(() => { guestDone = true; });
    const explain = async (): Promise<string> => {
      const r = guestDone ? await guest : { code: null, stdout: '(running)', stderr: '' };
      return `guest exit ${r.code}\n--- guest stdout\n${r.stdout}\n--- guest stderr\n${r.stderr.split('\n').slice(-40).join('\n')}` +
        `\n--- daemon log (tail)\n${fs.readFileSync(log, 'utf8').split('\n').slice(-30).join('\n')}`;
    };

    const kills: number[] = [];
    /** Per kill: whether the daemon was seen holding popped requests at that moment. */
    const caught: boolean[] = [];
    try {
      await waitFor('fio to start in the guest', () => fs.existsSync(path.join(out, 'fio-started')) || guestDone, 240_000);
      const tBoot = Date.now();
      for (let k = 0; k < KILLS; k++) {
        // Let I/O flow on this daemon (the guest has reconnected and resubmitted), then kill it.
        await sleep(1000);
        if (fs.existsSync(path.join(out, 'fio-done')) || guestDone) break;
        caught.push(await killMidIo(daemon.proc.pid!));
        expect(await daemon.stop()).toBeNull(); // killed by a signal
        kills.push(Date.now() - tBoot);
        // The socket file of a killed daemon stays; the new one replaces it (stale: nobody listens).
        const before = recovered();
        daemon = await startDaemon(d, args);
        // QEMU reconnects, hands over the region and restarts the ring: the new daemon recovers it.
        await waitFor(`QEMU to reconnect after kill ${k + 1}`, () => recovered() > before || guestDone, 30_000);
      }
      const r = await guest;
      expect(kills.length, await explain()).toBeGreaterThanOrEqual(KILLS);
      console.log(r.stdout);
      expect(r.code, await explain()).toBe(0);
    } finally {
      if (!guestDone) { await guest.catch(() => undefined); }
      expect(await daemon.stop()).toBe(0);
    }

    const fio = JSON.parse(fs.readFileSync(path.join(out, 'fio.json'), 'utf8')) as {
      jobs: { jobname: string; error: number; write: { io_bytes: number }; read: { io_bytes: number } }[];
    };
    const job = fio.jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBe(SIZE_MIB * MiB);
    expect(job.read.io_bytes).toBe(job.write.io_bytes); // every block read back and verified
    // Every restarted daemon was given the region; together they resubmitted requests the
    // killed ones had in flight.
    const lines = logLines(log);
    console.log(`[inflight] ${banner}: kills at ${kills.map((t) => `${(t / 1000).toFixed(1)} s`).join(', ')} after fio started; ` +
      `caught with unreaped completions: ${caught.join(',')}; ${recovered()} regions recovered, ${resubmitted()} requests resubmitted (${resubmits().join(', ')}); test took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    expect(connects()).toBe(kills.length + 1);
    expect(recovered()).toBe(kills.length);
    // Each kill found completions the daemon had not reaped: those requests were resubmitted.
    expect(caught).toEqual(kills.map(() => true));
    expect(resubmitted()).toBeGreaterThanOrEqual(kills.length);
    expect(lines.filter((l) => l.level >= 50), JSON.stringify(lines.filter((l) => l.level >= 50), null, 1)).toEqual([]);
  }, 600_000);
});
