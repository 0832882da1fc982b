// The raw-file backend (`serve --model none`): a block device with a minor number above 255
// (device numbers decoded as glibc does), discard and write-zeroes on a sparse file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeDeviceNumber } from '../../src/backends/device-number.js';
import { RawFileBackend } from '../../src/backends/raw-file-backend.js';
import { ZoneResult } from '../../src/zoned/types.js';

const MiB = 1 << 20;

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

function tempDir(base = os.tmpdir()): string {
  const d = fs.mkdtempSync(path.join(base, 'vu-raw-'));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('device numbers', () => {
  it('decodes major and minor as glibc does, minors above 255 included', () => {
    // makedev(7, 300) = (300 & 0xff) | (7 << 8) | ((300 & ~0xff) << 12)
    expect(decodeDeviceNumber((300 & 0xff) | (7 << 8) | ((300 & ~0xff) << 12))).toEqual({ major: 7, minor: 300 });
    expect(decodeDeviceNumber(0x0803)).toEqual({ major: 8, minor: 3 });
    // The largest minor the kernel encodes (20 bits): its bits 8..19 sit in dev_t bits 20..31.
    expect(decodeDeviceNumber((0xff | (259 << 8) | (0xfff00 << 12)) >>> 0)).toEqual({ major: 259, minor: 0xfffff });
    // glibc's 64-bit dev_t: major bits 12.. and minor bits 20.. above bit 32.
    expect(decodeDeviceNumber(0x1_0000_0000 * 0x1001 + 0x0800)).toEqual({ major: 0x1008, minor: 0x100000 });
  });

  it('serves a block device whose minor is above 255 (/dev/loop300) with its real size', () => {
    if (process.getuid?.() !== 0) throw new Error('this test attaches a loop device: run it as root');
    const d = tempDir();
    const file = path.join(d, 'disk');
    fs.writeFileSync(file, Buffer.alloc(0));
    fs.truncateSync(file, 3 * 1024 * 1024);
    // The first free loop index from 300 on (other loop devices on the host are left alone).
    let n = 300;
    while (fs.existsSync(`/sys/block/loop${n}`)) n++;
    const dev = `/dev/loop${n}`;
    execFileSync('losetup', [dev, file]);
    cleanups.push(() => { execFileSync('losetup', ['-d', dev]); });
    const st = fs.statSync(dev);
    expect(decodeDeviceNumber(st.rdev)).toEqual({ major: 7, minor: n });
    const b = RawFileBackend.open(dev);
    cleanups.push(() => b.close());
    expect(b.info.capacitySectors).toBe(3 * 2048);
  });
});

// ext4 (the repository's disk) can zero a range in place; tmpfs cannot, and punches a hole
// and allocates it again instead. Both free the space of a discard.
describe.each([['ext4', () => os.tmpdir()], ['tmpfs', () => '/dev/shm']])('discard and write zeroes on %s', (fsName, base) => {
  async function filled(): Promise<{ file: string; b: RawFileBackend; blocks: () => number; readAt: (mib: number) => Uint8Array }> {
    const file = path.join(tempDir(base()), 'disk.raw');
    fs.writeFileSync(file, Buffer.alloc(8 * MiB, 0x5a));
    const b = RawFileBackend.open(file, { blockSize: 4096 });
    cleanups.push(() => b.close());
    const blocks = (): number => fs.statSync(file).blocks * 512;
    const readAt = (mib: number): Uint8Array => {
      const out = Buffer.alloc(MiB);
      const fd = fs.openSync(file, 'r');
      try { fs.readSync(fd, out, 0, MiB, mib * MiB); } finally { fs.closeSync(fd); }
      return out;
    };
    expect(blocks()).toBeGreaterThanOrEqual(8 * MiB);
    return { file, b, blocks, readAt };
  }

  it(`discard punches a hole: the space is freed, the range reads zeroes (${fsName})`, async () => {
    const { b, blocks, readAt } = await filled();
    expect(await b.discard(2048, 4 * 2048)).toBe(ZoneResult.OK);
    expect(blocks()).toBeLessThanOrEqual(4 * MiB + 64 * 1024);
    expect(readAt(1).every((x) => x === 0)).toBe(true);
    expect(readAt(0).every((x) => x === 0x5a) && readAt(5).every((x) => x === 0x5a)).toBe(true);
    expect(await b.discard(16 * 2048 - 8, 16)).toBe(ZoneResult.OUT_OF_RANGE);
  });

  it(`write zeroes: zeroes either way; space kept without unmap, freed with it (${fsName})`, async () => {
    const { b, blocks, readAt } = await filled();
    expect(await b.writeZeroes(0, 2 * 2048, false)).toBe(ZoneResult.OK);
    expect(readAt(0).every((x) => x === 0) && readAt(1).every((x) => x === 0)).toBe(true);
    expect(blocks()).toBeGreaterThanOrEqual(8 * MiB);
    expect(await b.writeZeroes(4 * 2048, 2 * 2048, true)).toBe(ZoneResult.OK);
    expect(readAt(4).every((x) => x === 0) && readAt(5).every((x) => x === 0)).toBe(true);
    expect(blocks()).toBeLessThanOrEqual(6 * MiB + 64 * 1024);
    expect(readAt(2).every((x) => x === 0x5a) && readAt(7).every((x) => x === 0x5a)).toBe(true);
  });
});
