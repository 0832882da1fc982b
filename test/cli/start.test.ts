// The README's first quick-start line, `npm start`, as a user or a supervisor runs it: it
// creates the default image, serves it, and a SIGTERM to npm stops the daemon cleanly.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-start-'));
/** Processes to stop if the test fails half-way: npm and the daemon behind it (by PID). */
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('creates the default 4 GiB zoned image, serves it on a 0600 socket, and stops on SIGTERM to npm', async () => {
    const env = { ...process.env, VHOST_USER_ZBD_DATA: path.join(dir, 'data'), VHOST_USER_ZBD_RUN: path.join(dir, 'run') };
    const npm = spawn('npm', ['start', '--silent'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(npm.pid as number);
    let out = '', err = '';
    npm.stdout.on('data', (d) => { out += String(d); });
    npm.stderr.on('data', (d) => { err += String(d); });
    const exit = new Promise<string>((resolve) => npm.on('exit', (code, signal) => resolve(`code ${code} signal ${signal}`)));
    const socket = path.join(dir, 'run', 'vhost-user-zbd.sock');
    for (let i = 0; i < 1200 && !/"msg":"serving"/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
    expect(err, out).toMatch(/"msg":"serving"/);
    const daemonPid = Number(/"pid":(\d+),[^\n]*"msg":"serving"/.exec(err)?.[1]);
    pids.push(daemonPid);
    const image = path.join(dir, 'data', 'default.img');
    expect(out + err).toContain(`created ${image}: 4294967296 bytes, 64 zones of 67108864 bytes (capacity 67108864), 4 conventional`);
    expect(err).toMatch(/"capacityBytes":4294967296,"zones":64,"zoneBytes":67108864/);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    expect(out).toContain(`run-uml.sh --socket ${socket}`);
    // The QEMU line works on Debian 12 too: --qemu auto fetches QEMU 11 when the host's is 7.2.
    expect(out).toContain(`run-vm.sh --qemu auto --socket ${socket}`);
    // A supervisor signals the process it started: npm, not the daemon behind it.
    npm.kill('SIGTERM');
    await exit;
    expect(err).toMatch(/"msg":"stopped"/);
    expect(err).toMatch(/"code":0,"msg":"stopped"/);
    expect(fs.existsSync(socket)).toBe(false);
    expect(() => process.kill(daemonPid, 0)).toThrow(/ESRCH/);
  }, 120_000);
});
