// The host zoned device backend on real kernel zoned devices: boots the UML 6.12 guest with
// null_blk (zoned, memory backed, conventional zones, zone capacity < zone size, open and
// active limits) and scsi_debug (ZBC host-managed), and runs test/device inside it, where
// node and this repository are available because the guest's root is the host's /.
// The inner run includes the zone conformance suite shared with the emulations and a
// vhost-user front-end driving `serve --device /dev/nullb0` end to end.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST_DEVICE_KERNEL_ARGS } from '../conformance/geometries.js';
import { explain, runGuest, tempDir, umlKernel } from './harness.js';

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: Array<{ name: string; status: string; assertionResults: Array<{ fullName: string; status: string }> }>;
}

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
beforeAll(() => { umlKernel(); }, 1_800_000);

describe('host zoned device backend inside a Linux 6.12 guest (null_blk, scsi_debug)', () => {
  it('every device test passes: conformance suite, device errors, alignment, appends, CLI, vhost-user end to end', async () => {
    const out = tempDir('device');
    dirs.push(out);
    const r = await runGuest({
      sockets: [], script: path.join(__dirname, 'scripts/device-tests.sh'), env: { OUT: out },
      kernelArgs: GUEST_DEVICE_KERNEL_ARGS, mem: '1G', timeoutSec: 900,
    });
    expect(r.code, explain(r)).toBe(0);
    const devices = fs.readFileSync(path.join(out, 'devices.txt'), 'utf8');
    expect(devices).toMatch(/^kernel 6\.12\./);
    expect(devices).toMatch(/^nullb0 zoned=host-managed size=2097152 lbs=4096/m);
    expect(devices).toMatch(/^sd[a-z] zoned=host-managed size=131072 lbs=512 .*model=scsi_debug/m);
    const res = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as VitestJson;
    expect(res.numFailedTests, explain(r)).toBe(0);
    const files = Object.fromEntries(res.testResults.map((f) => [path.relative(path.resolve(__dirname, '../..'), f.name), f.status]));
    expect(files).toEqual({
      'test/device/cli.guest.ts': 'passed',
      'test/device/conformance.guest.ts': 'passed',
      'test/device/frontend.guest.ts': 'passed',
      'test/device/host-device.guest.ts': 'passed',
    });
    const passed = res.testResults.flatMap((f) => f.assertionResults).filter((t) => t.status === 'passed').map((t) => t.fullName);
    // The suite ran on both devices, and the end-to-end and error tests really ran.
    expect(passed.filter((n) => n.startsWith('zone conformance: host device: null_blk')).length).toBeGreaterThanOrEqual(20);
    expect(passed.filter((n) => n.startsWith('zone conformance: host device: scsi_debug')).length).toBeGreaterThanOrEqual(18);
    expect(passed).toContain('serve --device /dev/nullb0 driven by the vhost-user front-end concurrent zone appends (Linux 16-byte in-header) get distinct contiguous sectors');
    expect(passed.some((n) => n.includes('a write over a bad block: IOERR'))).toBe(true);
    expect(res.numPassedTests).toBeGreaterThanOrEqual(75);
  }, 1_000_000);
});
