// A preallocated image (create --preallocation falloc|full) used by a Linux 6.12 guest (UML):
// the guest's own blkzone resets zones it filled with dd, reads zeroes back, writes again;
// the image keeps its space reserved throughout (a reset zeroes instead of punching a hole).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, explain, runGuest, startDaemon, tempDir, umlKernel } from './harness.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
beforeAll(() => { umlKernel(); }, 1_800_000);

describe('preallocated image in a Linux 6.12 guest', () => {
  for (const mode of ['falloc', 'full']) {
    it(`--preallocation ${mode}: guest zone resets keep the space reserved`, async () => {
      const d = tempDir(`prealloc-${mode}`);
      dirs.push(d);
      const img = path.join(d, 'disk.img');
      cli('create', img, '--size', '256M', '--zone-size', '16M', '--preallocation', mode);
      const serial = JSON.parse(cli('report', img, '--json', '--count', '1')).serial;
      const before = fs.statSync(img).blocks * 512;
      expect(before).toBeGreaterThanOrEqual(256 * 2 ** 20);
      const daemon = await startDaemon(d, ['--image', img]);
      let r;
      try {
        r = await runGuest({ sockets: [daemon.socket], script: path.join(__dirname, 'scripts', 'preallocated-reset.sh'), env: { OUT: d, EXPECT_SERIAL: serial } });
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
      expect(r.code, explain(r, daemon.log)).toBe(0);
      // Three resets later every block is still allocated (a sparse image would have lost 32 MiB).
      expect(fs.statSync(img).blocks * 512).toBeGreaterThanOrEqual(before);
      const check = cli('check', img);
      expect(check).toMatch(new RegExp(`preallocation ${mode}\\n.*clean`));
    }, 600_000);
  }
});
