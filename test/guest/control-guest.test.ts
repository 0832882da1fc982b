// The control API with the real consumer: a Linux 6.12 guest (UML) runs while the test
// changes the disk through SOCK.api. Live zone faults, an injected error and delay, seen by
// blkzone and dd; power loss (SIGKILL of the guest with --power-cut-on-disconnect
// --volatile-cache) under btrfs and f2fs in zoned mode, then a second boot that mounts.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/cli/ctl-command.js';
import { cli, explain, runGuest, startDaemon, tempDir, umlKernel, type Daemon } from './harness.js';

const SCRIPTS = path.join(__dirname, 'scripts');
const dirs: string[] = [];
const dir = (tag: string): string => { const d = tempDir(tag); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

beforeAll(() => { umlKernel(); }, 1_800_000);

const serialOf = (image: string): string => JSON.parse(cli('report', image, '--json', '--count', '1')).serial;

/**
 * Answer the guest's API requests ($OUT/req.N: "METHOD PATH [JSON]") until `until` settles:
 * the guest cannot reach the host's Unix socket, the shared filesystem carries the requests.
 */
async function bridge(out: string, api: string, until: Promise<unknown>): Promise<string[]> {
  let done = false;
  void until.finally(() => { done = true; });
  const log: string[] = [];
  for (let n = 1; !done;) {
    const req = path.join(out, `req.${n}`);
    if (!fs.existsSync(req)) { await new Promise((r) => setTimeout(r, 30)); continue; }
    const line = fs.readFileSync(req, 'utf8').trim();
    const m = /^(\S+) (\S+)(?: (.*))?$/.exec(line);
    let answer: string;
    if (!m) answer = `bad request line: ${line}`;
    else {
      const r = await apiRequest(api, m[1], m[2], m[3] ? JSON.parse(m[3]) : undefined);
      answer = `${r.status} ${JSON.stringify(r.body)}`;
    }
    log.push(`${line} -> ${answer}`);
    fs.writeFileSync(path.join(out, `ack.${n}`), answer);
    n++;
  }
  return log;
}

/** The UML process serving as this guest: its command line names our private socket. */
function umlPidFor(socket: string): number | null {
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd: string;
    try { cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; }
    if (!cmd.includes(`virtio_uml.device=${socket}:2`)) continue;
    // UML calls setsid(): the leader's pid is the group of all its helper processes.
    const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === Number(p)) return Number(p);
  }
  return null;
}

describe('live control of the disk under a Linux 6.12 guest', () => {
  it('offline/readonly/clear live in blkzone and dd; an error rule fails exactly that dd; a delay rule holds one read while another completes', async () => {
    const d = dir('ctl-live');
    const img = path.join(d, 'disk.img');
    cli('create', img, '--size', '512M', '--zone-size', '16M', '--conventional', '2', '--block-size', '4096');
    const out = path.join(d, 'out');
    fs.mkdirSync(out);
    const serial = serialOf(img);
    const daemon = await startDaemon(d, ['--image', img]);
    let r, log: string[] = [];
    try {
      const guest = runGuest({ sockets: [daemon.socket], script: path.join(SCRIPTS, 'control-live.sh'), env: { OUT: out, EXPECT_SERIAL: serial } });
      log = await bridge(out, `${daemon.socket}.api`, guest);
      r = await guest;
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
    expect(r.code, `${explain(r, daemon.log)}\n--- API calls\n${log.join('\n')}`).toBe(0);
    expect(r.stdout).toMatch(/ok {3}the delayed read took at least 1500 ms/);
    expect(log.filter((l) => / -> 2\d\d /.test(l))).toHaveLength(log.length);
    const daemonLog = fs.readFileSync(daemon.log, 'utf8');
    expect(daemonLog).toContain('"msg":"injected error (first of this rule; more at debug)"');
    expect(daemonLog).toContain('"msg":"control: zone action"');
    expect(cli('check', img)).toMatch(/clean/);
  }, 600_000);

  for (const [fsType, policy] of [['btrfs', 'all'], ['btrfs', 'random'], ['f2fs', 'all'], ['f2fs', 'random']] as const) {
    it(`power loss under ${fsType} (zoned), policy ${policy}: SIGKILL of the guest loses unflushed writes; the next boot mounts, fsync'd files intact, image consistent`, async () => {
      const d = dir(`ctl-power-${fsType}-${policy}`);
      const img = path.join(d, 'disk.img');
      if (fsType === 'btrfs') cli('create', img, '--size', '2G', '--zone-size', '64M', '--conventional', '0', '--block-size', '4096');
      else cli('create', img, '--size', '2G', '--zone-size', '16M', '--conventional', '8', '--max-open', '12', '--block-size', '4096');
      const out = path.join(d, 'out');
      fs.mkdirSync(out);
      const serial = serialOf(img);
      const env = { OUT: out, EXPECT_SERIAL: serial, FS: fsType };
      const flags = ['--image', img, '--volatile-cache', '--power-cut-on-disconnect', '--power-cut-policy', policy, '--power-cut-seed', '7'];
      let daemon: Daemon = await startDaemon(d, flags, 'boot1');
      let last: Record<string, any> | null = null;
      try {
        const guest = runGuest({ sockets: [daemon.socket], script: path.join(SCRIPTS, 'power-loss-write.sh'), env, mem: '768M', timeoutSec: 400 });
        const plug = path.join(out, 'pull-the-plug');
        let settled = false;
        void guest.finally(() => { settled = true; });
        while (!fs.existsSync(plug) && !settled) await new Promise((res) => setTimeout(res, 100));
        if (!fs.existsSync(plug)) { const g = await guest; throw new Error(`the guest ended before the power cut:\n${explain(g, daemon.log)}`); }
        const before = (await apiRequest(`${daemon.socket}.api`, 'GET', '/status')).body as Record<string, any>;
        expect(before.frontend.writeback).toBe(true);
        const pid = umlPidFor(daemon.socket);
        expect(pid, 'UML process of this guest').not.toBeNull();
        process.kill(-(pid as number), 'SIGKILL');
        await guest;
        for (let i = 0; i < 200 && !last; i++) {
          await new Promise((res) => setTimeout(res, 100));
          last = ((await apiRequest(`${daemon.socket}.api`, 'GET', '/status')).body as Record<string, any>).powerCut.last;
        }
        expect(last, fs.readFileSync(daemon.log, 'utf8').slice(-3000)).toMatchObject({ trigger: 'front-end disconnected', policy, seed: 7 });
        // Data reached the device unflushed (the kernel's flusher, no flush after it): the cut had something to drop.
        expect(before.volatileCache.unflushedWrites).toBeGreaterThan(0);
        if (policy === 'all') expect(last?.lostBytes).toBeGreaterThan(0);
        console.log(`power cut under ${fsType}, policy ${policy}: ${before.volatileCache.unflushedWrites} unflushed writes (${before.volatileCache.unflushedBytes} bytes) before; lost ${last?.lostWrites} writes, ${last?.lostBytes} bytes`);
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
      expect(cli('check', img)).toMatch(/clean/);
      daemon = await startDaemon(d, ['--image', img], 'boot2');
      let r;
      try {
        r = await runGuest({ sockets: [daemon.socket], script: path.join(SCRIPTS, 'power-loss-verify.sh'), env, mem: '768M' });
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
      expect(r.code, `power cut: ${JSON.stringify(last)}\n${explain(r, daemon.log)}`).toBe(0);
      expect(fs.readFileSync(path.join(out, 'synced.txt'), 'utf8').trim().split('\n')).toHaveLength(8);
      expect(cli('check', img)).toMatch(/clean/);
    }, 900_000);
  }
});
