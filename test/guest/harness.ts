// Runs the real daemon (bin/vhost-user-zbd.js serve) and a real Linux 6.12 guest (UML) against
// it. Each test gets a private directory; processes are stopped by PID.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
export const BIN = path.join(ROOT, 'bin/vhost-user-zbd.js');

let kernel: string | undefined;

/** Build (or find cached) the UML kernel. Throws when it cannot be built: guest tests fail, never skip. */
export function umlKernel(): string {
  if (kernel) return kernel;
  if (process.env.UML_KERNEL) {
    if (!fs.existsSync(process.env.UML_KERNEL)) throw new Error(`UML_KERNEL=${process.env.UML_KERNEL} does not exist: unset it to build the guest`);
    return (kernel = process.env.UML_KERNEL);
  }
  const r = spawnSync('bash', [path.join(ROOT, 'qemu-scripts/build-uml.sh')], { encoding: 'utf8', timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`building the UML guest failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  kernel = lines[lines.length - 1];
  if (!fs.existsSync(kernel)) throw new Error(`build-uml.sh did not print a kernel path: ${r.stdout}`);
  return kernel;
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vuzbd-${tag}-`));
}

export function cli(...args: string[]): string {
  return execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

export interface Daemon {
  socket: string;
  proc: ChildProcess;
  log: string;
  stop(): Promise<number | null>;
}

/** Start `serve` and wait until it listens. */
export async function startDaemon(dir: string, args: string[], name = 'd'): Promise<Daemon> {
  const socket = path.join(dir, `${name}.sock`);
  const log = path.join(dir, `${name}.log`);
  const out = fs.openSync(log, 'a');
  const proc = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--no-hints', ...args], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`daemon did not start (exit ${proc.exitCode}):\n${fs.readFileSync(log, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket, proc, log,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

export interface GuestResult { code: number | null; stdout: string; stderr: string }

/** Boot the guest with the disks at `sockets` and run `script` (bash) inside it. */
export function runGuest(opts: {
  sockets: string[]; script: string; env?: Record<string, string>; kernelArgs?: string; timeoutSec?: number; mem?: string;
}): Promise<GuestResult> {
  const args = [path.join(ROOT, 'qemu-scripts/run-uml.sh'), '--kernel', umlKernel(), '--timeout', String(opts.timeoutSec ?? 300)];
  if (opts.mem) args.push('--mem', opts.mem);
  for (const s of opts.sockets) args.push('--socket', s);
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('--env', `${k}=${v}`);
  if (opts.kernelArgs) args.push('--kernel-args', opts.kernelArgs);
  args.push('--', 'bash', opts.script);
  return new Promise((resolve) => {
    const p = spawn('bash', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += String(d); });
    p.stderr.on('data', (d) => { stderr += String(d); });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export function explain(r: GuestResult, daemonLog?: string): string {
  const log = daemonLog && fs.existsSync(daemonLog) ? fs.readFileSync(daemonLog, 'utf8').split('\n').slice(-40).join('\n') : '';
  return `guest exit ${r.code}\n--- guest stdout\n${r.stdout}\n--- guest stderr\n${r.stderr.slice(-4000)}\n--- daemon log (tail)\n${log}`;
}

/** Guest and host reports agree except that open conditions do not survive the daemon. */
export function normaliseOpen(report: string): string {
  return report.split('\n').filter(Boolean)
    .map((l) => l.replace(/wptr 0x000000 reset:0 non-seq:0, zcond: [23]\(o[ie]\)/, 'wptr 0x000000 reset:0 non-seq:0, zcond: 1(em)')
      .replace(/zcond: [23]\(o[ie]\)/, 'zcond: 4(cl)'))
    .join('\n');
}
