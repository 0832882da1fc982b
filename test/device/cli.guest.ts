// The command line on real kernel zoned devices: `report --device` against util-linux blkzone,
// and what `serve --device` refuses.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HostDeviceBackend } from '../../src/backends/host-device-backend.js';
import { closeFd, memfdCreate, mmap, munmap } from '../../src/native/index.js';
import { ZoneOp, ZoneResult } from '../../src/zoned/types.js';
import { pattern } from '../conformance/zone-suite.js';
import { BIN, runCli as run } from '../harness/cli-process.js';
import { findGuestDevices, makeNullb, removeNullb } from './devices.js';

const devs = findGuestDevices();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * blkzone prints the device's raw write pointer for a FULL zone; the daemon reports it at the
 * zone end, as the Linux virtio_blk driver normalises it for the guest. Everything else is the
 * same line.
 */
function normaliseFull(report: string): string[] {
  return report.trim().split('\n').map((l) => (/zcond:14\(fu\)/.test(l) ? l.replace(/wptr 0x[0-9a-f]+/, 'wptr FULL') : l));
}

async function arrange(dev: string): Promise<void> {
  const fd = memfdCreate('cli-data', 1 << 20);
  const ram = mmap(fd, 0, 1 << 20);
  closeFd(fd);
  const b = HostDeviceBackend.open(dev);
  try {
    const z = b.info.zoned!;
    const seq = (i: number): number => (z.conventionalZones + i) * z.zoneSectors;
    const data = new Uint8Array(ram, 0, 1 << 20);
    data.set(pattern(1 << 20, 1));
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
    expect(await b.write(seq(0), [data.subarray(0, 65536)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.OPEN, seq(1))).toBe(ZoneResult.OK);
    expect(await b.write(seq(2), [data.subarray(0, 8192)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.CLOSE, seq(2))).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.FINISH, seq(3))).toBe(ZoneResult.OK);
    for (let s = seq(4); s < seq(4) + z.zoneCapacitySectors; s += 2048) {
      expect(await b.write(s, [data.subarray(0, Math.min(2048, seq(4) + z.zoneCapacitySectors - s) * 512)])).toBe(ZoneResult.OK);
    }
  } finally {
    await b.close();
    munmap(ram);
  }
}

describe('report --device', () => {
  for (const which of ['nullb', 'scsi'] as const) {
    it(`${which}: prints what blkzone prints (FULL write pointers at the zone end, as the guest sees them)`, async () => {
      const dev = devs[which];
      await arrange(dev);
      const ours = await run('report', '--device', dev);
      expect(ours.code, ours.err).toBe(0);
      const theirs = execFileSync('blkzone', ['report', dev], { encoding: 'utf8' });
      expect(normaliseFull(ours.out)).toEqual(normaliseFull(theirs));
      expect(ours.out).toMatch(/zcond: 2\(oi\)/);
      expect(ours.out).toMatch(/zcond: 3\(oe\)/);
      expect(ours.out).toMatch(/zcond: 4\(cl\)/);
      expect(ours.out).toMatch(/zcond:14\(fu\)/);
      // --zone / --count select the same lines.
      const some = await run('report', '--device', dev, '--zone', '2', '--count', '3');
      const lines = (t: string): string[] => t.split('\n').filter(Boolean);
      expect(lines(some.out)).toEqual(lines(ours.out).slice(2, 5));
    });
  }

  it('--json describes the device and every zone', async () => {
    const r = await run('report', '--device', devs.scsi, '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ device: devs.scsi, model: 'host-managed', blockSize: 512, zoneSectors: 8192, nrZones: 16, conventionalZones: 2, maxOpenZones: 4 });
    expect(j.serial).toMatch(/^vuzbd-/);
    expect(j.zones).toHaveLength(16);
    expect(j.zones[0]).toMatchObject({ zone: 0, type: 1, typeName: 'CONVENTIONAL', wp: null });
    expect(j.zones[2]).toMatchObject({ zone: 2, start: 16384, cond: 2, condName: 'implicitly-opened', wp: 16384 + 128 });
  });

  it('--zone beyond the device is a usage error', async () => {
    const r = await run('report', '--device', devs.scsi, '--zone', '16');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--zone 16 is not a zone of \/dev\/sd[a-z]+ \(0\.\.15\)/);
  });
});

describe('serve --device refuses what it cannot serve', () => {
  afterAll(() => removeNullb('clireg'));

  it('a zoned device with --model none', async () => {
    const r = await run('serve', '--socket', path.join(dir, 'a.sock'), '--device', devs.nullb, '--model', 'none', '--no-hints', '--log-level', 'silent');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/host-managed: as a regular disk/);
  });

  it('a regular device without --model none; with it, the daemon serves and stops cleanly', async () => {
    const dev = makeNullb('clireg', [['zoned', 0], ['size', 32], ['memory_backed', 1], ['index', 11]]);
    const refused = await run('serve', '--socket', path.join(dir, 'b.sock'), '--device', dev, '--no-hints', '--log-level', 'silent');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/is not a zoned block device .*serve it with --model none/);
    const report = await run('report', '--device', dev);
    expect(report.code).toBe(1);
    expect(report.err).toMatch(/EDEVICE: \/dev\/clireg is not zoned: no zones to report/);
    const socket = path.join(dir, 'c.sock');
    const p = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--device', dev, '--model', 'none', '--no-hints'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += String(d); });
    const exit = new Promise<string>((resolve) => p.on('exit', (code, signal) => resolve(`code ${code} signal ${signal}`)));
    for (let i = 0; i < 300 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(socket), err).toBe(true);
    expect(err).toMatch(/"model":"none"/);
    p.kill('SIGTERM');
    expect(await exit, err).toBe('code 0 signal null');
    expect(fs.existsSync(socket)).toBe(false);
  });
});
