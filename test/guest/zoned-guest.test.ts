// End to end with the real consumer: a Linux 6.12 guest (User-Mode Linux) whose own virtio_blk
// driver, block layer and util-linux/fio/btrfs tools use the zoned disk served by the daemon.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, explain, normaliseOpen, runGuest, startDaemon, tempDir, umlKernel } from './harness.js';

const SCRIPTS = path.join(__dirname, 'scripts');
const dirs: string[] = [];
const dir = (tag: string): string => { const d = tempDir(tag); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

beforeAll(() => { umlKernel(); }, 1_800_000);

function serialOf(image: string): string {
  return JSON.parse(cli('report', image, '--json', '--count', '1')).serial;
}

interface Boot { script: string; env?: Record<string, string>; mem?: string; afterStop?: (img: string) => void }

/**
 * Create an image with `createArgs`, then for each boot: start the daemon on it, run the guest
 * script, stop the daemon (a fresh daemon per boot: restarts are part of what is tested).
 */
async function onImage(tag: string, createArgs: string[], boots: Boot[]): Promise<{ img: string; out: string }> {
  const d = dir(tag);
  const img = path.join(d, 'disk.img');
  cli('create', img, ...createArgs);
  const serial = serialOf(img);
  const out = path.join(d, 'out');
  fs.mkdirSync(out);
  for (const [i, b] of boots.entries()) {
    const daemon = await startDaemon(d, ['--image', img], `boot${i}`);
    let r;
    try {
      r = await runGuest({ sockets: [daemon.socket], script: path.join(SCRIPTS, b.script), env: { OUT: out, EXPECT_SERIAL: serial, ...b.env }, mem: b.mem });
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
    expect(r.code, explain(r, daemon.log)).toBe(0);
    b.afterStop?.(img);
  }
  return { img, out };
}

describe('zoned disk in a Linux 6.12 guest', () => {
  it('sysfs limits, blkzone report, write pointer rules, zone management and resource limits', async () => {
    const { img, out } = await onImage('basic', ['--size', '1G', '--zone-size', '32M', '--zone-capacity', '31M', '--conventional', '2', '--max-open', '4', '--max-active', '6', '--block-size', '4096'],
      [{ script: 'zoned-basic.sh', env: { NCONV: '2', MAXOPEN: '4' } }]);
    expect(fs.readFileSync(path.join(out, 'sysfs.txt'), 'utf8').trim().split('\n')).toEqual([
      'zoned=host-managed', 'nr_zones=32', 'max_open_zones=4', 'max_active_zones=6', 'zone_append_max_bytes=1048576',
      'chunk_sectors=65536', 'logical_block_size=4096', 'physical_block_size=4096',
    ]);
    // The guest's blkzone and our host report print the same zones (open states end with the daemon).
    const host = cli('report', img);
    expect(normaliseOpen(host)).toBe(normaliseOpen(fs.readFileSync(path.join(out, 'report-final.txt'), 'utf8')));
    expect(host).toMatch(/start: 0x000020000, len 0x010000, cap 0x00f800, wptr 0x000100 .*zcond: 4\(cl\)/);
    expect(host).toMatch(/start: 0x000030000, len 0x010000, cap 0x00f800, wptr 0x000040 .*zcond: 4\(cl\)/);
    expect(host).toMatch(/start: 0x000040000, len 0x010000, cap 0x00f800, wptr 0x010000 .*zcond:14\(fu\)/);
    expect(cli('check', img)).toMatch(/clean/);
  });

  it('fio --zonemode=zbd with verification (psync and io_uring), after reset-all', async () => {
    const { img, out } = await onImage('fio', ['--size', '2G', '--zone-size', '16M', '--conventional', '1', '--max-open', '8', '--max-active', '12', '--block-size', '4096'],
      [{ script: 'fio-zbd.sh' }]);
    for (const f of ['fio-seq.txt', 'fio-rnd.txt']) {
      const txt = fs.readFileSync(path.join(out, f), 'utf8');
      expect(txt, f).toMatch(/err= 0/);
      expect(txt, f).not.toMatch(/verify: bad/);
    }
    expect(normaliseOpen(cli('report', img))).toBe(normaliseOpen(fs.readFileSync(path.join(out, 'report-after-fio.txt'), 'utf8')));
    expect(cli('check', img)).toMatch(/clean/);
  });

  it('btrfs -O zoned (zone append): files survive remount and a daemon restart between two boots', async () => {
    const { img } = await onImage('btrfs', ['--size', '4G', '--zone-size', '64M', '--conventional', '0', '--block-size', '4096'], [
      {
        script: 'btrfs-write.sh', mem: '768M',
        // The daemon served appends: they show in its persistent zone table.
        afterStop: (image) => expect(JSON.parse(cli('report', image, '--json')).zones.filter((z: { cond: number }) => z.cond !== 1).length).toBeGreaterThan(2),
      },
      { script: 'btrfs-verify.sh', mem: '768M' },
    ]);
    expect(cli('check', img)).toMatch(/clean/);
  });

  it('f2fs -m (zoned): metadata in conventional zones, data in sequential zones, survives remount', async () => {
    const { img } = await onImage('f2fs', ['--size', '2G', '--zone-size', '16M', '--conventional', '8', '--max-open', '12', '--block-size', '4096'],
      [{ script: 'f2fs.sh', mem: '768M' }]);
    expect(cli('check', img)).toMatch(/clean/);
  });

  it('a regular disk next to the zoned one: discard and write zeroes on --model none (fstrim on btrfs, blkdiscard -z), none on the zoned model', async () => {
    const d = dir('discard');
    const raw = path.join(d, 'raw.img');
    fs.closeSync(fs.openSync(raw, 'w'));
    fs.truncateSync(raw, 1024 * 1024 * 1024);
    const img = path.join(d, 'zoned.img');
    cli('create', img, '--size', '256M', '--zone-size', '16M', '--block-size', '4096');
    const zonedSerial = serialOf(img);
    const regular = await startDaemon(d, ['--image', raw, '--model', 'none'], 'regular');
    const zoned = await startDaemon(d, ['--image', img], 'zoned');
    let r;
    try {
      const serial = /"serial":"([^"]+)"/.exec(fs.readFileSync(regular.log, 'utf8'))?.[1] ?? '';
      r = await runGuest({ sockets: [regular.socket, zoned.socket], script: path.join(SCRIPTS, 'regular-discard.sh'),
        env: { OUT: d, EXPECT_SERIAL: serial, ZONED_SERIAL: zonedSerial, FS: 'btrfs' }, mem: '512M' });
    } finally {
      expect(await regular.stop()).toBe(0);
      expect(await zoned.stop()).toBe(0);
    }
    expect(r.code, explain(r, regular.log)).toBe(0);
    expect(r.stdout).toMatch(/ok {3}the zoned disk offers neither discard nor write zeroes/);
    // What the guest wrote through ext4 and then trimmed, and the discarded range, hold no space.
    expect(fs.statSync(raw).blocks * 512).toBeLessThan(96 * 1024 * 1024);
  });

  it('a VM reboot: the next guest connects to the same running daemon and finds its data', async () => {
    const d = dir('reboot');
    const img = path.join(d, 'disk.img');
    cli('create', img, '--size', '1G', '--zone-size', '64M', '--conventional', '2', '--block-size', '4096');
    const env = { OUT: d, EXPECT_SERIAL: serialOf(img), NCONV: '2' };
    const daemon = await startDaemon(d, ['--image', img]);
    try {
      for (const script of ['reboot-write.sh', 'reboot-verify.sh']) {
        const r = await runGuest({ sockets: [daemon.socket], script: path.join(SCRIPTS, script), env });
        expect(r.code, explain(r, daemon.log)).toBe(0);
      }
      expect(fs.readFileSync(daemon.log, 'utf8').match(/front-end connected/g)).toHaveLength(2);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
    expect(cli('report', img, '--zone', '2', '--count', '1')).toMatch(/wptr 0x000280 .*zcond: 4\(cl\)/);
  });
});

