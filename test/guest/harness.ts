// Runs the real daemon (bin/vhost-user-zbd.js serve) and a real Linux 6.12 guest against it:
// User-Mode Linux (runGuest) or QEMU under TCG (qemu-scripts/run-qemu.sh), both behind one
// GuestFrontend so a guest suite is written once and run on each. Each test gets a private
// directory; processes are stopped by PID.
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

export interface GuestRun {
  sockets: string[];
  /** bash script run as root inside the guest */
  script: string;
  env?: Record<string, string>;
  kernelArgs?: string;
  timeoutSec?: number;
  mem?: string;
  /** Host directories the script writes (UML: the whole host / is writable; QEMU: virtiofs shares). */
  shares?: string[];
  /** Request queues per disk (QEMU; UML's virtio_blk uses one: one CPU). */
  queues?: number;
}

function runScript(runner: string, args: string[]): Promise<GuestResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', [path.join(ROOT, 'qemu-scripts', runner), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += String(d); });
    p.stderr.on('data', (d) => { stderr += String(d); });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function commonArgs(o: GuestRun, timeoutSec: number): string[] {
  const args = ['--timeout', String(timeoutSec)];
  if (o.mem) args.push('--mem', o.mem);
  for (const s of o.sockets) args.push('--socket', s);
  for (const [k, v] of Object.entries(o.env ?? {})) args.push('--env', `${k}=${v}`);
  if (o.kernelArgs) args.push('--kernel-args', o.kernelArgs);
  return args;
}

/** Boot the UML guest with the disks at `sockets` and run `script` (bash) inside it. */
export function runGuest(opts: GuestRun): Promise<GuestResult> {
  return runScript('run-uml.sh', ['--kernel', umlKernel(), ...commonArgs(opts, opts.timeoutSec ?? 300), '--', 'bash', opts.script]);
}

// --- QEMU ---

let qemuGuestFiles: { kernel: string; initrd: string } | undefined;
/** Build (or find cached) the QEMU guest's kernel + initramfs. Throws when they cannot be built. */
export function qemuGuest(): { kernel: string; initrd: string } {
  // Checked again each time: a build of another checkout may replace (prune) the cached one.
  if (qemuGuestFiles && fs.existsSync(qemuGuestFiles.kernel) && fs.existsSync(qemuGuestFiles.initrd)) return qemuGuestFiles;
  const r = spawnSync('bash', [path.join(ROOT, 'qemu-scripts/build-qemu-guest.sh')], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`building the QEMU guest failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const [kernel, initrd] = r.stdout.trim().split('\n').slice(-2);
  if (!kernel || !initrd || !fs.existsSync(kernel) || !fs.existsSync(initrd)) {
    throw new Error(`build-qemu-guest.sh did not print kernel and initrd paths:\n${r.stdout}\n${r.stderr}`);
  }
  return (qemuGuestFiles = { kernel, initrd });
}

/** The first line of `qemu --version`, e.g. "QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-2~bpo13+1)". */
export function qemuBanner(qemu: string): string {
  const r = spawnSync(qemu, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${qemu} --version failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout.split('\n')[0];
}

/** [major, minor] from a banner. */
export function qemuVersion(banner: string): [number, number] {
  const m = /version (\d+)\.(\d+)/.exec(banner);
  if (!m) throw new Error(`no QEMU version in: ${banner}`);
  return [Number(m[1]), Number(m[2])];
}

let zonedQemuPath: string | undefined;
/**
 * A QEMU >= 10.2 (vhost-user-test-device-pci): $ZONED_QEMU (scripts/test.sh exports it, as it
 * does UML_KERNEL), else qemu-scripts/get-qemu.sh (Debian trixie-backports, cached). Throws
 * when none can be had: the zoned QEMU tests fail, never skip.
 */
export function zonedQemu(): string {
  if (zonedQemuPath) return zonedQemuPath;
  let q = process.env.ZONED_QEMU;
  if (q) {
    if (!fs.existsSync(q)) throw new Error(`ZONED_QEMU=${q} does not exist: unset it to fetch QEMU with qemu-scripts/get-qemu.sh`);
  } else {
    const r = spawnSync('bash', [path.join(ROOT, 'qemu-scripts/get-qemu.sh')], { encoding: 'utf8', timeout: 1_200_000 });
    if (r.status !== 0) throw new Error(`qemu-scripts/get-qemu.sh failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    q = r.stdout.trim().split('\n').pop() ?? '';
    if (!fs.existsSync(q)) throw new Error(`get-qemu.sh did not print a QEMU path:\n${r.stdout}\n${r.stderr}`);
  }
  const [major, minor] = qemuVersion(qemuBanner(q));
  if (major < 10 || (major === 10 && minor < 2)) throw new Error(`${q} is QEMU ${major}.${minor}; the zoned disk needs >= 10.2`);
  return (zonedQemuPath = q);
}

/** Boot the QEMU guest (TCG) with `qemu`, the disks on `device`, and run `script` inside. */
export function runQemuGuest(qemu: string, device: 'blk' | 'test', o: GuestRun): Promise<GuestResult> {
  const g = qemuGuest();
  const args = ['--qemu', qemu, '--kernel', g.kernel, '--initrd', g.initrd, '--disk-device', device,
    '--queues', String(o.queues ?? 1), ...commonArgs(o, o.timeoutSec ?? 300)];
  for (const s of o.shares ?? []) args.push('--share', s);
  args.push('--', 'bash', o.script);
  return runScript('run-qemu.sh', args);
}

// --- front-ends: one guest suite, several ways to boot its guest ---

export interface GuestFrontend {
  /** short id for temp dirs and test names: uml, qemu */
  id: string;
  /** what boots the guest, for test names, e.g. "User-Mode Linux 6.12" */
  title: string;
  /** Build or fetch what the guest needs and say what ran (version line). Throws when it cannot. */
  prepare(): string;
  /** Time allowance multiplier against UML (TCG is slower to boot and for I/O). */
  slowdown: number;
  run(o: GuestRun): Promise<GuestResult>;
}

export const umlFrontend: GuestFrontend = {
  id: 'uml',
  title: 'User-Mode Linux 6.12',
  prepare: () => `UML kernel ${umlKernel()}`,
  slowdown: 1,
  run: runGuest,
};

/** The zoned disk through vhost-user-test-device-pci on QEMU >= 10.2 (TCG, 2 vCPUs). */
export const qemuZonedFrontend: GuestFrontend = {
  id: 'qemu',
  title: 'QEMU >= 10.2 (vhost-user-test-device-pci, TCG)',
  prepare: () => { const q = zonedQemu(); qemuGuest(); return `${qemuBanner(q)} at ${q}`; },
  slowdown: 3,
  run: (o) => runQemuGuest(zonedQemu(), 'test', o),
};

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
