// Guest smoke test: the User-Mode Linux 6.12 kernel builds from qemu-scripts/uml.config,
// boots with the host's / as root through qemu-scripts/run-uml.sh, passes stdout/stderr and
// the exit code back, and has what the zoned tests need (null_blk zoned + blkzone).
// The build is not optional: if it fails, these tests fail (they never skip).
import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TIMEOUT = 600_000;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const buildUml = join(repoRoot, 'qemu-scripts', 'build-uml.sh');
const runUml = join(repoRoot, 'qemu-scripts', 'run-uml.sh');

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { cwd: opts.cwd ?? repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** Show the output on failure: a bare "expected 125 to be 7" is useless for a guest run. */
function describeRun(r: RunResult): string {
  return `exit ${r.code} signal ${r.signal} after ${r.ms} ms\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

// A small host-managed null_blk: 4 conventional + 60 sequential 16 MiB zones.
const NULL_BLK_ARGS = [
  'null_blk.nr_devices=1',
  'null_blk.zoned=1',
  'null_blk.zone_size=16',
  'null_blk.gb=1',
  'null_blk.zone_nr_conv=4',
  'null_blk.zone_max_open=8',
  'null_blk.zone_max_active=12',
  'null_blk.memory_backed=1',
].join(' ');

describe('User-Mode Linux guest', () => {
  let kernel = '';

  it('builds the UML 6.12 kernel (cached after the first build)', async () => {
    const r = await run(buildUml, []);
    expect(r.code, describeRun(r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    kernel = lines[lines.length - 1] ?? '';
    expect(kernel, describeRun(r)).toMatch(/\/uml-6\.12-[0-9a-f]+\/linux$/);
    expect(existsSync(kernel)).toBe(true);
    // The cache lives outside the repository.
    expect(realpathSync(kernel).startsWith(realpathSync(repoRoot))).toBe(false);
  }, TIMEOUT);

  it('boots, runs a command and passes back its output and exit code', async () => {
    const r = await run(runUml, [
      ...(kernel ? ['--kernel', kernel] : []),
      '--timeout', '120',
      '--',
      'sh', '-c', 'cat /proc/version; ls /sys/block; echo to-stderr >&2; exit 7',
    ]);
    expect(r.code, describeRun(r)).toBe(7);
    // The host runs another kernel: "6.12" proves this is the guest's /proc.
    expect(r.stdout, describeRun(r)).toMatch(/^Linux version 6\.12\./);
    // Only the command's output: no kernel log lines mixed in.
    expect(r.stdout).not.toMatch(/Kernel command line|Booting Linux/);
    expect(r.stderr).toContain('to-stderr');
    expect(r.stdout).not.toContain('to-stderr');
  }, TIMEOUT);

  it('runs the command in the caller\'s cwd with --env variables and exit code 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uml-boot-test-'));
    try {
      const r = await run(
        runUml,
        [
          ...(kernel ? ['--kernel', kernel] : []),
          '--env', 'UML_TEST_VAR=hello world',
          '--timeout', '120',
          '--',
          'sh', '-c', 'pwd; echo "$UML_TEST_VAR"; id -u; echo written-in-guest > guest-file',
        ],
        { cwd: dir },
      );
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout.split('\n').slice(0, 3)).toEqual([realpathSync(dir), 'hello world', '0']);
      // The guest's root is the host's /: its writes are real.
      expect(existsSync(join(dir, 'guest-file'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, TIMEOUT);

  it('has a host-managed null_blk that blkzone can report', async () => {
    const r = await run(runUml, [
      ...(kernel ? ['--kernel', kernel] : []),
      '--kernel-args', NULL_BLK_ARGS,
      '--timeout', '120',
      '--',
      'sh', '-c',
      'set -e; cat /sys/block/nullb0/queue/zoned; cat /sys/block/nullb0/queue/nr_zones; ' +
        'cat /sys/block/nullb0/queue/max_open_zones; blkzone report /dev/nullb0 | head -3',
    ]);
    expect(r.code, describeRun(r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0], describeRun(r)).toBe('host-managed');
    expect(lines[1]).toBe('64');
    expect(lines[2]).toBe('8');
    const zones = lines.slice(3);
    expect(zones, describeRun(r)).toHaveLength(3);
    // 16 MiB zones = 0x8000 sectors; the first four are conventional.
    expect(zones[0]).toMatch(/start: 0x0+, len 0x008000/);
    expect(zones[1]).toMatch(/start: 0x0+8000, len 0x008000/);
    for (const z of zones) expect(z).toMatch(/CONVENTIONAL/);
  }, TIMEOUT);

  it('kills a guest that runs past --timeout and exits 124', async () => {
    const r = await run(runUml, [
      ...(kernel ? ['--kernel', kernel] : []),
      '--timeout', '3',
      '--',
      'sleep', '600',
    ]);
    expect(r.code, describeRun(r)).toBe(124);
    expect(r.stderr).toMatch(/timed out after 3 s/);
    expect(r.ms).toBeLessThan(30_000);
  }, TIMEOUT);
});
