// The one rule for short transfers: the rest is asked for again; a call that moves nothing
// (or, with a unit, part of one) is a ShortTransferError (EIO); errors pass through.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { IoCallback } from '../../src/backends/file-io.js';
import { readAllSync, ShortTransferError, transferAllAsync, writeAllSync, type Mover } from '../../src/backends/transfer-all.js';
import type { IoVec } from '../../src/iovec.js';

/** A file in memory that moves at most the next of `limits` bytes per call (then everything). */
function stingyFile(size: number, limits: number[]): Mover & { data: Uint8Array; calls: Array<[number, number]> } {
  const data = new Uint8Array(size);
  const calls: Array<[number, number]> = [];
  const move = (write: boolean) => (_fd: number, iov: IoVec, pos: number, cb: IoCallback): void => {
    let want = 0;
    for (const b of iov) want += b.byteLength;
    const n = Math.max(0, Math.min(want, limits.length ? limits.shift()! : want, size - pos));
    calls.push([pos, n]);
    let done = 0;
    for (const b of iov) {
      const k = Math.min(b.byteLength, n - done);
      if (k <= 0) break;
      if (write) data.set(b.subarray(0, k), pos + done); else b.set(data.subarray(pos + done, pos + done + k));
      done += k;
    }
    queueMicrotask(() => cb(null, n));
  };
  return { data, calls, read: move(false), write: move(true) };
}

const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('transferAll', () => {
  it('continues a short write for the rest, across buffer boundaries', async () => {
    const f = stingyFile(8192, [100, 1000, 3]);
    const a = pattern(700, 1), b = pattern(1300, 2);
    await transferAllAsync(f, 'write', 0, [a, b], 4096, 2000);
    expect(f.calls).toEqual([[4096, 100], [4196, 1000], [5196, 3], [5199, 897]]);
    expect(Array.from(f.data.subarray(4096, 4796))).toEqual(Array.from(a));
    expect(Array.from(f.data.subarray(4796, 6096))).toEqual(Array.from(b));
  });

  it('continues a short read for the rest', async () => {
    const f = stingyFile(8192, [512]);
    f.data.set(pattern(8192, 9));
    const a = new Uint8Array(1024), b = new Uint8Array(1024);
    await transferAllAsync(f, 'read', 0, [a, b], 1000, 2048);
    expect(f.calls).toEqual([[1000, 512], [1512, 1536]]);
    expect(Array.from(a)).toEqual(Array.from(f.data.subarray(1000, 2024)));
    expect(Array.from(b)).toEqual(Array.from(f.data.subarray(2024, 3048)));
  });

  it('a call that moves nothing (end of file) is an EIO naming where and how much', async () => {
    const f = stingyFile(4096, []);
    const err = await transferAllAsync(f, 'read', 0, [new Uint8Array(8192)], 0, 8192).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShortTransferError);
    expect((err as ShortTransferError).errno).toBe(5);
    expect((err as ShortTransferError).errnoName).toBe('EIO');
    expect((err as ShortTransferError).code).toBe('EDEVICE');
    expect(String(err)).toMatch(/short read at byte 4096: 0 of 4096 bytes/);
    expect(f.calls).toEqual([[0, 4096], [4096, 0]]);
  });

  it('with a unit, a count that is not a multiple of it is an error', async () => {
    const f = stingyFile(8192, [4096 + 512]);
    const err = await transferAllAsync(f, 'write', 0, [new Uint8Array(8192)], 0, 8192, 4096).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShortTransferError);
    expect(String(err)).toMatch(/short write at byte 0: 4608 of 8192 bytes/);
  });

  it('passes an error through as it came', async () => {
    const boom = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    const f: Mover = { read: (_fd, _iov, _pos, cb) => cb(boom, 0), write: (_fd, _iov, _pos, cb) => cb(boom, 0) };
    await expect(transferAllAsync(f, 'write', 0, [new Uint8Array(512)], 0, 512)).rejects.toBe(boom);
  });
});

describe('readAllSync / writeAllSync', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'transfer-all-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('write then read back; reading past the end of the file is an EIO', () => {
    const file = path.join(dir, 'f');
    const fd = fs.openSync(file, 'w+');
    try {
      const data = pattern(10000, 5);
      writeAllSync(fd, data, 100);
      const back = new Uint8Array(10000);
      readAllSync(fd, back, 100);
      expect(Array.from(back)).toEqual(Array.from(data));
      const err = (() => { try { readAllSync(fd, new Uint8Array(200), 10000); } catch (e) { return e; } })();
      expect(err).toBeInstanceOf(ShortTransferError);
      expect(String(err)).toMatch(/short read at byte 10100: 0 of 100 bytes/);
    } finally { fs.closeSync(fd); }
  });
});
