// The zoned-disk guest suite (zoned-suite.ts) on User-Mode Linux 6.12: virtio_uml passes the
// daemon's feature bits to the guest unfiltered, so its virtio_blk sees the zoned disk.
// Below it, a UML-only test of a regular disk served next to the zoned one.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, explain, runGuest, startDaemon, tempDir, umlFrontend } from './harness.js';
import { zonedGuestSuite } from './zoned-suite.js';

zonedGuestSuite(umlFrontend);

const SCRIPTS = path.join(__dirname, 'scripts');
const dirs: string[] = [];
const dir = (tag: string): string => { const d = tempDir(tag); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const serialOf = (image: string): string => JSON.parse(cli('report', image, '--json', '--count', '1')).serial;

describe('regular and zoned disks side by side in a Linux 6.12 guest (UML)', () => {
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
});
