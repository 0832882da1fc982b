// The addon primitives added for the host device backend, where no zoned device is needed:
// asynchronous zone ioctls fail like their synchronous versions on a file that is not a
// zoned device, and buffer addresses are visible.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BLK_ZONE_OP, NativeError, blkReportZonesAsync, blkZoneMgmtAsync, closeFd, isMapped, memfdCreate, mmap, munmap, pageOffsetOf, pageSize,
} from '../../src/native/index.js';
import { ZbdError } from '../../src/errors.js';

let dir: string;
let fd: number;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-native-async-'));
  fd = fs.openSync(path.join(dir, 'f'), 'w+');
});
afterAll(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('asynchronous zone ioctls', () => {
  it('blkReportZonesAsync rejects with the errno of the ioctl and its arguments', async () => {
    const err = await blkReportZonesAsync(fd, 2048, new Uint8Array(16 + 64 * 4)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).errnoName).toBe('ENOTTY');
    expect((err as NativeError).syscall).toBe('ioctl');
    expect(String(err)).toMatch(/BLKREPORTZONE, sector=2048, nr_zones=4/);
  });

  it('blkZoneMgmtAsync rejects the same way for every operation', async () => {
    for (const [name, op] of Object.entries(BLK_ZONE_OP)) {
      const err = await blkZoneMgmtAsync(fd, op, 524288, 524288).catch((e: unknown) => e);
      expect((err as NativeError).errnoName, name).toBe('ENOTTY');
      expect(String(err)).toContain(`BLK${name}ZONE, sector=524288, nr_sectors=524288`);
    }
  });

  it('a closed fd is EBADF, not a crash', async () => {
    const err = await blkZoneMgmtAsync(0x7ffffff0, BLK_ZONE_OP.RESET, 0, 1).catch((e: unknown) => e);
    expect((err as NativeError).errnoName).toBe('EBADF');
  });

  it('checks its arguments before any system call', () => {
    expect(() => blkReportZonesAsync(fd, 0, new Uint8Array(79))).toThrow(ZbdError);
    expect(() => blkReportZonesAsync(-1, 0, new Uint8Array(80))).toThrow(/fd must be/);
    expect(() => blkZoneMgmtAsync(fd, 1234, 0, 1)).toThrow(/op must be a BLK_ZONE_OP value/);
    expect(() => blkZoneMgmtAsync(fd, BLK_ZONE_OP.OPEN, -1, 1)).toThrow(/sector/);
  });

  it('many at once all settle (thread pool round trips)', async () => {
    const all = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => blkReportZonesAsync(fd, i, new Uint8Array(80))));
    expect(all.every((r) => r.status === 'rejected')).toBe(true);
  });
});

describe('buffer addresses', () => {
  it('pageOffsetOf sees the address of the view, byteOffset included', () => {
    const mfd = memfdCreate('page-offset', 3 * pageSize());
    const ab = mmap(mfd, 0, 3 * pageSize());
    closeFd(mfd);
    const view = new Uint8Array(ab, 8, 8);
    try {
      expect(pageOffsetOf(new Uint8Array(ab))).toBe(0);
      expect(pageOffsetOf(new Uint8Array(ab, 1, 10))).toBe(1);
      expect(pageOffsetOf(new Uint8Array(ab, pageSize() + 512, 10))).toBe(512);
      expect(pageOffsetOf(new Uint8Array(ab).subarray(4095))).toBe(4095 % pageSize());
      expect(isMapped(new Uint8Array(ab, 100, 10))).toBe(true);
      expect(isMapped(new Uint8Array(4096))).toBe(false);
    } finally {
      munmap(ab);
    }
    expect(isMapped(view)).toBe(false); // unmapped: the view is detached
    expect(() => pageOffsetOf('x' as unknown as Uint8Array)).toThrow(/must be a Uint8Array/);
  });
});
