// What the host device backend and the CLI refuse before touching any device (runs
// anywhere; the refusals that need a kernel zoned device run in the guest).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HostDeviceBackend } from '../../src/backends/host-device-backend.js';
import { main } from '../../src/cli/main.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-hostdev-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, {
    out: (l) => out.push(l), err: (l) => err.push(l),
    write: (d) => { out.push(Buffer.from(d).toString().replace(/\n$/, '')); return undefined; },
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('HostDeviceBackend.open refuses what is not a block device', () => {
  it('a regular file', () => {
    const f = path.join(dir, 'file');
    fs.writeFileSync(f, new Uint8Array(1 << 20));
    expect(() => HostDeviceBackend.open(f)).toThrow(/EDEVICE: .*file: is not a block device \(serve an emulated image with --image instead\)/);
  });
  it('a character device', () => {
    expect(() => HostDeviceBackend.open('/dev/null', { readOnly: true, exclusive: false })).toThrow(/EDEVICE: \/dev\/null(:| ).*(not a block device|O_DIRECT)/);
  });
  it('a path that does not exist', () => {
    expect(() => HostDeviceBackend.open(path.join(dir, 'nope'))).toThrow(/EDEVICE: .*nope does not exist/);
  });
  it('a shared open for writing', () => {
    expect(() => HostDeviceBackend.open('/dev/null', { exclusive: false })).toThrow(/EARG: a host device opened for writing must be opened exclusively/);
  });
});

describe('CLI', () => {
  it('serve takes exactly one of --image, --memory, --device', async () => {
    const r = await run('serve', '--socket', path.join(dir, 's'), '--device', '/dev/null', '--memory');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/exactly one of --image IMG, --memory or --device/);
  });
  it('serve --device refuses geometry flags it would ignore', async () => {
    const r = await run('serve', '--socket', path.join(dir, 's'), '--device', '/dev/null', '--zone-size', '64M', '--max-open', '3');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--device takes its geometry from the device; drop --zone-size, --max-open/);
  });
  it('serve --device of a file fails with the reason and exit code 1', async () => {
    const f = path.join(dir, 'img');
    fs.writeFileSync(f, '');
    const r = await run('serve', '--socket', path.join(dir, 's2'), '--device', f, '--log-level', 'silent');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is not a block device/);
    expect(fs.existsSync(path.join(dir, 's2'))).toBe(false);
  });
  it('report takes exactly one of IMAGE and --device', async () => {
    expect((await run('report')).err).toMatch(/exactly one of IMAGE or --device/);
    const both = await run('report', path.join(dir, 'x.img'), '--device', '/dev/null');
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/exactly one of IMAGE or --device/);
  });
  it('report --device of something that is not a block device fails with the reason', async () => {
    const r = await run('report', '--device', '/dev/null');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EDEVICE/);
  });
});
