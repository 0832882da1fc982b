// Starting and stopping the daemons under test. Both serve the same file through the page
// cache (QSD: cache.direct=off, no O_DIRECT; ours: buffered reads and writes), and neither is
// asked to flush: the comparison is of the request path, not of the storage.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type DaemonKind = 'qsd' | 'ours';
/** qemu-storage-daemon's file AIO modes (its blockdev `aio=`). */
export type QsdAio = 'threads' | 'io_uring';
export const QSD_AIO: readonly QsdAio[] = ['threads', 'io_uring'];

export interface DaemonSpec {
  kind: DaemonKind;
  socket: string;
  queues: number;
  /** Raw file (QSD, ours with --model none) or zoned image (ours). */
  image?: string;
  /** ours: serve a zoned disk in RAM instead of a file. */
  memory?: { size: string; zoneSize: string; conventional: number };
  /** ours: 'none' for the like-for-like regular disk, 'hm' for the zoned workloads. */
  model?: 'hm' | 'none';
  /** QSD: `null-co` serves a block device that does no I/O at all (load generator ceiling). */
  qsdDriver?: 'file' | 'null-co';
  /** QSD file driver AIO mode (default: QSD's own default, threads). */
  qsdAio?: QsdAio;
  /** Extra `node` flags for our daemon (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Extra environment for the daemon. */
  env?: Record<string, string>;
  /** ours: run the daemon of another checkout (its bin/vhost-user-zbd.js), e.g. an older build. */
  root?: string;
}

export interface RunningDaemon {
  spec: DaemonSpec;
  pid: number;
  /** The command line, as documented in docs/performance.md. */
  command: string;
  stop(): Promise<void>;
}

/** The package root (holds bin/ and dist/), whether running from dist/ or src/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
  return dir;
}

export function daemonCommand(spec: DaemonSpec): { cmd: string; args: string[] } {
  if (spec.kind === 'qsd') {
    const node = spec.qsdDriver === 'null-co'
      ? 'driver=null-co,node-name=f,size=1073741824'
      : `driver=file,node-name=f,filename=${spec.image},cache.direct=off${spec.qsdAio ? `,aio=${spec.qsdAio}` : ''}`;
    return {
      cmd: 'qemu-storage-daemon',
      args: ['--blockdev', node, '--export',
        `type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=${spec.socket},writable=on,num-queues=${spec.queues}`],
    };
  }
  const args = [...(spec.nodeArgs ?? []), path.join(spec.root ?? packageRoot(), 'bin', 'vhost-user-zbd.js'), 'serve', '--socket', spec.socket,
    '--queues', String(spec.queues), '--log-level', 'warn', '--no-hints'];
  if (spec.memory) {
    args.push('--memory', '--size', spec.memory.size, '--zone-size', spec.memory.zoneSize, '--conventional', String(spec.memory.conventional));
  } else {
    args.push('--image', spec.image as string, '--model', spec.model ?? 'hm');
  }
  return { cmd: process.execPath, args };
}

/** Daemons started and not stopped yet: an interrupted benchmark kills them (killDaemons). */
const live = new Set<ChildProcess>();

/** Kills every daemon still running (the benchmark was interrupted). */
export function killDaemons(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

async function waitForSocket(p: string, child: ChildProcess, stderr: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`daemon exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr().trim()}`);
    }
    try {
      if (fs.statSync(p).isSocket()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`daemon did not create ${p} within ${timeoutMs} ms: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startDaemon(spec: DaemonSpec): Promise<RunningDaemon> {
  fs.rmSync(spec.socket, { force: true });
  const { cmd, args } = daemonCommand(spec);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...spec.env } });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => { if (err.length < 20_000) err += d; });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  await spawned;
  await waitForSocket(spec.socket, child, () => err);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(); else child.once('exit', () => resolve());
  });
  return {
    spec,
    pid: child.pid as number,
    // As a user would type it: the installed command for ours, with any node flags in front.
    command: (cmd === process.execPath
      ? [...(spec.nodeArgs?.length ? ['node', ...spec.nodeArgs, '$(which vhost-user-zbd)'] : ['vhost-user-zbd']), ...args.slice(args.indexOf('serve'))]
      : [cmd, ...args]).map((a) => (a.startsWith('$(') ? a : quote(a))).join(' '),
    async stop() {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
      fs.rmSync(spec.socket, { force: true });
    },
  };
}
