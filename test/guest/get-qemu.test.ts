// qemu-scripts/get-qemu.sh: Debian's QEMU >= 10.2 in a private prefix. The first call fetches
// it (or finds it cached); then it must work offline, print the same wrapper, and the wrapper
// must run QEMU with the prefix's modules (-device help aborted on the host's 7.2 modules).
// Fails, never skips, when it cannot be had.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, qemuBanner, qemuVersion } from './harness.js';

const GET = path.join(ROOT, 'qemu-scripts/get-qemu.sh');
const get = (env: Record<string, string> = {}, ...args: string[]) =>
  spawnSync('bash', [GET, ...args], { encoding: 'utf8', timeout: 1_200_000, env: { ...process.env, ...env } });

describe('get-qemu.sh', () => {
  it('prints a wrapper running QEMU >= 10.2 from its prefix; offline once cached; -device help works', () => {
    const first = get();
    expect(first.status, first.stderr).toBe(0);
    const wrapper = first.stdout.trim().split('\n').pop()!;
    expect(fs.existsSync(wrapper)).toBe(true);
    const banner = qemuBanner(wrapper);
    console.log(`[guest] get-qemu.sh: ${banner} at ${wrapper}`);
    const [major, minor] = qemuVersion(banner);
    expect(major * 100 + minor).toBeGreaterThanOrEqual(1002);

    // Cached: no archive needed (an unreachable mirror changes nothing), same path, quiet.
    const again = get({ GET_QEMU_MIRROR: 'http://127.0.0.1:9/debian' }, '-q');
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(wrapper);
    expect(again.stderr).toBe('');

    const stamp = fs.readFileSync(path.join(path.dirname(path.dirname(wrapper)), '.complete'), 'utf8');
    expect(stamp).toMatch(/^version \d+:\d+\.\d+/m);
    expect(stamp).toMatch(/all resolved in the prefix/);

    const help = spawnSync(wrapper, ['-device', 'help'], { encoding: 'utf8', timeout: 120_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('name "vhost-user-test-device-pci", bus PCI');
    expect(help.stderr).not.toMatch(/module/i);
  }, 1_200_000);
});
