// IoRing (io_uring for buffered file I/O) and pollFds: the addon pieces the file engines
// and the benchmark's load generator use.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZbdError } from '../../src/errors.js';
import { IoRing, closeFd, eventfd, pollFds, readCounter, writeCounter } from '../../src/native/index.js';

let dir: string;
let fd: number;
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'zbd-ioring-'));
  const file = join(dir, 'f');
  fs.writeFileSync(file, pattern(64 * 1024, 1));
  fd = fs.openSync(file, 'r+');
});
afterEach(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One entry through queueBatch: false when the submission queue is full. */
function queue(r: IoRing, write: boolean, fd: number, views: Uint8Array | Uint8Array[], offset: number, tag: number): boolean {
  return r.queueBatch(1, Float64Array.of(write ? 1 : 0, fd, offset, tag), [views]) === 1;
}

/** Submits and waits (polling the eventfd) until `count` completions arrived. */
function complete(r: IoRing, count: number): Map<number, number> {
  r.submit();
  const got = new Map<number, number>();
  const out = new Float64Array(2 * r.capacity);
  const deadline = Date.now() + 5000;
  while (got.size < count) {
    const n = r.reap(out);
    for (let i = 0; i < n; i++) got.set(out[2 * i], out[2 * i + 1]);
    if (got.size >= count) break;
    if (Date.now() > deadline) throw new Error(`${got.size}/${count} completions`);
    pollFds(Int32Array.of(r.eventFd), 100);
    readCounter(r.eventFd);
  }
  return got;
}

describe('IoRing', () => {
  it('reads into one view and into several, writes, and reports the bytes per tag', () => {
    const r = new IoRing(8);
    try {
      expect(r.capacity).toBeGreaterThanOrEqual(8);
      const a = new Uint8Array(4096), b = new Uint8Array(100), c = new Uint8Array(3000);
      expect(queue(r, false, fd, a, 0, 1)).toBe(true);
      expect(queue(r, false, fd, [b, c], 8192, 2)).toBe(true);
      const res = complete(r, 2);
      expect(res.get(1)).toBe(4096);
      expect(res.get(2)).toBe(3100);
      const file = pattern(64 * 1024, 1);
      expect(a).toEqual(file.subarray(0, 4096));
      expect(b).toEqual(file.subarray(8192, 8292));
      expect(c).toEqual(file.subarray(8292, 11292));

      const w = pattern(5000, 9);
      expect(queue(r, true, fd, [w.subarray(0, 1000), w.subarray(1000)], 70_000, 3)).toBe(true);
      expect(complete(r, 1).get(3)).toBe(5000);
      const back = new Uint8Array(5000);
      fs.readSync(fd, back, 0, 5000, 70_000);
      expect(back).toEqual(w);
    } finally {
      r.close();
    }
  });

  it('returns short counts at end of file and -errno for a bad fd', () => {
    const r = new IoRing(4);
    try {
      const big = new Uint8Array(8192);
      queue(r, false, fd, big, 64 * 1024 - 100, 0);
      const bad = eventfd();
      closeFd(bad);
      queue(r, false, bad, new Uint8Array(16), 0, 1);
      const res = complete(r, 2);
      expect(res.get(0)).toBe(100);
      expect(res.get(1)).toBe(-9); // EBADF
    } finally {
      r.close();
    }
  });

  it('refuses more queued entries than the submission queue holds until submitted', () => {
    const r = new IoRing(2);
    try {
      const buf = new Uint8Array(512);
      let queued = 0;
      while (queue(r, false, fd, buf, 0, queued % r.capacity)) queued++;
      expect(queued).toBeGreaterThanOrEqual(2);
      complete(r, Math.min(queued, r.capacity));
    } finally {
      r.close();
    }
  });

  it('queues a batch in one call, stops where the submission queue is full, and refuses a bad entry', () => {
    const r = new IoRing(4);
    try {
      const a = new Uint8Array(4096), b = new Uint8Array(100), c = new Uint8Array(3000);
      const w = pattern(5000, 5);
      const meta = Float64Array.of(0, fd, 0, 0, 0, fd, 8192, 1, 1, fd, 50_000, 2);
      expect(r.queueBatch(3, meta, [a, [b, c], [w.subarray(0, 1000), w.subarray(1000)]])).toBe(3);
      const res = complete(r, 3);
      expect([res.get(0), res.get(1), res.get(2)]).toEqual([4096, 3100, 5000]);
      const file = pattern(64 * 1024, 1);
      expect(a).toEqual(file.subarray(0, 4096));
      expect(b).toEqual(file.subarray(8192, 8292));
      expect(c).toEqual(file.subarray(8292, 11292));
      const back = new Uint8Array(5000);
      fs.readSync(fd, back, 0, 5000, 50_000);
      expect(back).toEqual(w);

      // A whole queue's worth and more: the rest is for after a submit.
      const sq = r.capacity;
      const many = new Float64Array(4 * (sq + 3));
      for (let i = 0; i < sq + 3; i++) many.set([0, fd, 512 * i, i % sq], 4 * i);
      const bufs = Array.from({ length: sq + 3 }, () => new Uint8Array(512));
      const placed = r.queueBatch(sq + 3, many, bufs);
      expect(placed).toBeGreaterThan(0);
      expect(placed).toBeLessThan(sq + 3);
      expect(complete(r, placed).size).toBe(placed);

      expect(() => r.queueBatch(1, Float64Array.of(0, -1, 0, 0), [a])).toThrow(/entry 0 is invalid/);
      expect(() => r.queueBatch(1, Float64Array.of(0, fd, 0, sq), [a])).toThrow(/entry 0 is invalid/);
      expect(() => r.queueBatch(1, Float64Array.of(0, fd, 0.5, 0), [a])).toThrow(/entry 0 is invalid/);
      expect(() => r.queueBatch(1, Float64Array.of(0, fd, 0, 0), [null])).toThrow(/Uint8Array/);
      expect(() => r.queueBatch(2, Float64Array.of(0, fd, 0, 0), [a])).toThrow(/exceeds/);
    } finally {
      r.close();
    }
  });

  it('submitAndReap turns eventfd signals off; armEventFd turns them on and reports what waits unsignalled', () => {
    const r = new IoRing(4);
    const out = new Float64Array(2 * r.capacity);
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    /** Spins (1 ms naps) until the completion queue holds something, reading it without reaping. */
    const waitPosted = (on: boolean): void => {
      const deadline = Date.now() + 5000;
      while (!r.armEventFd(on)) {
        if (Date.now() > deadline) throw new Error('no completion within 5 s');
        Atomics.wait(sleep, 0, 0, 1);
      }
    };
    try {
      const a = new Uint8Array(4096);
      expect(queue(r, false, fd, a, 4096, 0)).toBe(true);
      let n = r.submitAndReap(out);
      if (n === 0) { waitPosted(false); n = r.reap(out); }
      expect([n, out[0], out[1]]).toEqual([1, 0, 4096]);
      expect(a).toEqual(pattern(64 * 1024, 1).subarray(4096, 8192));
      expect(readCounter(r.eventFd)).toBeLessThanOrEqual(0); // signals were off

      // Posted while off, found when turned on: the caller must reap, no signal will come.
      expect(queue(r, false, fd, new Uint8Array(512), 0, 1)).toBe(true);
      r.submit();
      waitPosted(false);
      expect(r.armEventFd(true)).toBe(true);
      expect(readCounter(r.eventFd)).toBeLessThanOrEqual(0);
      expect(r.reap(out)).toBe(1);
      expect(r.armEventFd(true)).toBe(false);

      // On: a completion signals the eventfd again.
      expect(queue(r, false, fd, new Uint8Array(512), 0, 2)).toBe(true);
      r.submit();
      expect(pollFds(Int32Array.of(r.eventFd), 5000)).toBe(1);
      expect(readCounter(r.eventFd)).toBeGreaterThan(0);
      expect(r.reap(out)).toBe(1);
    } finally {
      r.close();
    }
  });

  it('checks its arguments in the wrapper', () => {
    expect(() => new IoRing(3)).toThrow(ZbdError);
    expect(() => new IoRing(0)).toThrow(/entries/);
    const r = new IoRing(2);
    try {
      expect(() => queue(r, false, fd, new Uint8Array(1), 0, r.capacity)).toThrow(/entry 0 is invalid/);
      expect(() => queue(r, false, fd, new Uint8Array(1), -1, 0)).toThrow(/entry 0 is invalid/);
    } finally {
      r.close();
      r.close(); // idempotent
    }
    expect(r.reap(new Float64Array(2))).toBe(0);
  });
});

describe('pollFds', () => {
  it('waits for readability, times out, and marks fds that were not ready', () => {
    const a = eventfd(), b = eventfd();
    try {
      const set = Int32Array.of(a, b);
      const t0 = Date.now();
      expect(pollFds(set, 30)).toBe(0);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(20);
      writeCounter(b, 1);
      set.set([a, b]);
      expect(pollFds(set, 1000)).toBe(1);
      expect(Array.from(set)).toEqual([-1, b]);
      expect(() => pollFds(new Int32Array(65), 0)).toThrow(ZbdError);
      expect(() => pollFds(Int32Array.of(a), -5)).toThrow(ZbdError);
    } finally {
      closeFd(a);
      closeFd(b);
    }
  });
});
