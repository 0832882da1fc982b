// O_DIRECT transfers with bounce buffers only when needed, on a regular file opened O_DIRECT
// (runs on any host whose /var/tmp supports O_DIRECT; the device tests in the guest repeat
// this on null_blk and scsi_debug).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BouncePool, DirectIo } from '../../src/backends/direct-io.js';
import { ZbdError } from '../../src/errors.js';
import { closeFd, isMapped, memfdCreate, mmap, munmap, pageOffsetOf } from '../../src/native/index.js';
import { pattern } from '../conformance/zone-suite.js';

let dir: string;
let fd: number;
let io: DirectIo;
let mem: ArrayBuffer;
const FILE_BYTES = 4 << 20;

beforeAll(() => {
  // /var/tmp, not /tmp: tmpfs refuses O_DIRECT.
  dir = fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'vuzbd-directio-'));
  const file = path.join(dir, 'disk');
  fs.writeFileSync(file, new Uint8Array(FILE_BYTES));
  fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT);
  io = new DirectIo(fd, { blockSize: 4096, memAlign: 512 });
  const mfd = memfdCreate('directio-test', 1 << 20);
  mem = mmap(mfd, 0, 1 << 20);
  closeFd(mfd);
});
afterAll(() => {
  io.close();
  munmap(mem);
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The file's bytes, read without O_DIRECT. */
function fileBytes(pos: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const f = fs.openSync(path.join(dir, 'disk'), 'r');
  try { fs.readSync(f, out, 0, len, pos); } finally { fs.closeSync(f); }
  return out;
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

describe('DirectIo', () => {
  it('mapped, aligned guest-like memory goes straight to the file, several segments at once', async () => {
    const before = { ...io.stats }, allocations = io.pool.allocations;
    const segs = [new Uint8Array(mem, 0, 4096), new Uint8Array(mem, 8192, 8192), new Uint8Array(mem, 4096 * 41, 4096)];
    segs.forEach((s, i) => s.set(pattern(s.byteLength, i + 1)));
    await io.writev(65536, segs);
    const want = Buffer.concat(segs.map((s) => Buffer.from(s)));
    expect(same(fileBytes(65536, want.length), want)).toBe(true);
    const back = [new Uint8Array(mem, 4096 * 100, 8192), new Uint8Array(mem, 4096 * 103, 8192)];
    await io.readv(65536, back);
    expect(same(Buffer.concat(back.map((b) => Buffer.from(b))), want)).toBe(true);
    expect(io.stats.direct - before.direct).toBe(2);
    expect(io.stats.bounced - before.bounced).toBe(0);
    expect(io.pool.allocations).toBe(allocations);
  });

  it('bounces a segment at an unaligned address, a segment shorter than a block, and heap memory', async () => {
    const cases: Uint8Array[][] = [
      [new Uint8Array(mem, 100, 4096)],                                   // address off by 100
      [new Uint8Array(mem, 512, 4096)],                                   // DMA-aligned, but the block would straddle two pages
      [new Uint8Array(mem, 0, 512), new Uint8Array(mem, 4096, 3584)],     // 512 + 3584 on a 4K-block device
      [pattern(8192, 9)],                                                 // JavaScript heap
    ];
    let pos = 1 << 20;
    for (const segs of cases) {
      const before = io.stats.bounced;
      segs.forEach((s, i) => { if (isMapped(s)) s.set(pattern(s.byteLength, 50 + i)); });
      const want = Buffer.concat(segs.map((s) => Buffer.from(s)));
      await io.writev(pos, segs);
      expect(io.stats.bounced - before, `write ${segs.map((s) => s.byteLength)}`).toBe(1);
      expect(same(fileBytes(pos, want.length), want)).toBe(true);
      const back = segs.map((s, i) => (isMapped(s)
        ? new Uint8Array(mem, 512 * 1024 + i * 16384 + (s.byteOffset % 4096), s.byteLength)
        : new Uint8Array(s.byteLength)));
      for (const b of back) b.fill(0xee);
      await io.readv(pos, back);
      expect(same(Buffer.concat(back.map((b) => Buffer.from(b))), want)).toBe(true);
      pos += 65536;
    }
  });

  it('reads any byte range (a sub-block read through the enclosing blocks)', async () => {
    const data = pattern(16384, 77);
    await io.writev(2 << 20, [data]);
    const part = new Uint8Array(1000);
    await io.readv((2 << 20) + 4100, [part]);
    expect(same(part, data.subarray(4100, 5100))).toBe(true);
  });

  it('refuses a write that is not whole blocks (no read-modify-write)', async () => {
    await expect(io.writev(512, [new Uint8Array(4096)])).rejects.toThrow(ZbdError);
    await expect(io.writev(4096, [new Uint8Array(1024)])).rejects.toThrow(/not aligned to the 4096-byte block/);
  });

  it('reports a read past the end of the file as a short transfer (EIO)', async () => {
    const err = await io.readv(FILE_BYTES - 4096, [new Uint8Array(8192)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZbdError);
    expect((err as { errno: number }).errno).toBe(5);
    expect(String(err)).toMatch(/short read/);
  });

  it('passes the kernel error of a failed transfer through', async () => {
    const ro = fs.openSync(path.join(dir, 'disk'), fs.constants.O_RDONLY | fs.constants.O_DIRECT);
    const rio = new DirectIo(ro, { blockSize: 4096, memAlign: 512 });
    try {
      const err = await rio.writev(0, [new Uint8Array(mem, 0, 4096)]).catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('EBADF');
    } finally {
      rio.close();
      fs.closeSync(ro);
    }
  });

  it('needs block-aligned addresses even where the DMA alignment is smaller', () => {
    expect(io.memAlign).toBe(4096);
    const small = new DirectIo(fd, { blockSize: 512, memAlign: 4 });
    expect(small.memAlign).toBe(512);
    expect(small.canGoDirect(0, [new Uint8Array(mem, 512, 1024)])).toBe(true);
    expect(small.canGoDirect(0, [new Uint8Array(mem, 4, 1024)])).toBe(false);
    small.close();
  });

  it('refuses impossible block sizes and alignments', () => {
    expect(() => new DirectIo(fd, { blockSize: 1000, memAlign: 512 })).toThrow(/logical block size 1000/);
    expect(() => new DirectIo(fd, { blockSize: 4096, memAlign: 3 })).toThrow(/DMA alignment 3/);
  });
});

describe('BouncePool', () => {
  it('hands out page-aligned mapped buffers of the exact size and reuses them', () => {
    const pool = new BouncePool(1 << 20);
    const a = pool.take(5000);
    expect(a.byteLength).toBe(5000);
    expect(pageOffsetOf(a)).toBe(0);
    expect(isMapped(a)).toBe(true);
    pool.give(a);
    const b = pool.take(60000); // same 64 KiB class: the same buffer again
    expect(b.buffer).toBe(a.buffer);
    expect(pool.allocations).toBe(1);
    const c = pool.take(100000); // next class
    expect(c.buffer.byteLength).toBe(128 << 10);
    pool.give(b);
    pool.give(c);
    pool.close();
    expect(a.buffer.byteLength).toBe(0); // unmapped and detached
    expect(() => pool.take(1)).toThrow(/after close/);
  });

  it('unmaps what does not fit the cache budget', () => {
    const pool = new BouncePool(64 << 10);
    const a = pool.take(4096), b = pool.take(4096);
    pool.give(a);
    pool.give(b); // over the budget: unmapped at once
    expect(b.buffer.byteLength).toBe(0);
    expect(a.buffer.byteLength).toBe(64 << 10);
    pool.close();
  });
});
