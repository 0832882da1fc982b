// The file I/O engines: each moves the same bytes, reports short counts and errors the same
// way, and fileIoFor picks the synchronous one for memory-backed filesystems only.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fileIoFor, type FileIo } from '../../src/backends/file-io.js';
import { closeFd, memfdCreate, mmap, munmap } from '../../src/native/index.js';

// What every preadNowait call returned, in order.
const nowait = vi.hoisted(() => ({ calls: [] as number[] }));
vi.mock('../../src/native/index.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/native/index.js')>();
  return {
    ...real,
    preadNowait: (...args: Parameters<typeof real.preadNowait>): number => {
      const r = real.preadNowait(...args);
      nowait.calls.push(r);
      return r;
    },
  };
});

let dir: string;
let fd: number;
const saved = process.env.VHOST_USER_ZBD_IO;
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'zbd-fileio-'));
  fs.writeFileSync(join(dir, 'f'), pattern(32 * 1024, 3));
  fd = fs.openSync(join(dir, 'f'), 'r+');
});
afterEach(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
  if (saved === undefined) delete process.env.VHOST_USER_ZBD_IO; else process.env.VHOST_USER_ZBD_IO = saved;
});

function engine(kind: string): FileIo {
  process.env.VHOST_USER_ZBD_IO = kind;
  return fileIoFor(join(dir, 'f'));
}

const op = (f: (cb: (err: Error | null, n: number) => void) => void): Promise<number> =>
  new Promise((resolve, reject) => f((err, n) => (err ? reject(err) : resolve(n))));

describe.each(['sync', 'io_uring', 'threads'])('%s engine', (kind) => {
  it('reads and writes scatter/gather lists, many at once', async () => {
    const io = engine(kind);
    expect(kind === 'io_uring' ? ['io_uring', 'threads'] : [kind]).toContain(io.kind);
    const file = pattern(32 * 1024, 3);
    const bufs = Array.from({ length: 40 }, () => [new Uint8Array(300), new Uint8Array(212)]);
    const n = await Promise.all(bufs.map((b, i) => op((cb) => io.read(fd, b, i * 512, cb))));
    expect(n).toEqual(bufs.map(() => 512));
    bufs.forEach((b, i) => {
      expect(b[0]).toEqual(file.subarray(i * 512, i * 512 + 300));
      expect(b[1]).toEqual(file.subarray(i * 512 + 300, i * 512 + 512));
    });
    const w = pattern(4096, 77);
    expect(await op((cb) => io.write(fd, [w.subarray(0, 100), w.subarray(100)], 40_000, cb))).toBe(4096);
    const back = new Uint8Array(4096);
    fs.readSync(fd, back, 0, 4096, 40_000);
    expect(back).toEqual(w);
  });

  it('reports a short read at end of file and an error for a bad fd', async () => {
    const io = engine(kind);
    expect(await op((cb) => io.read(fd, [new Uint8Array(1024)], 32 * 1024 - 24, cb))).toBe(24);
    const bad = fs.openSync(join(dir, 'f'), 'r');
    fs.closeSync(bad);
    await expect(op((cb) => io.read(bad, [new Uint8Array(16)], 0, cb))).rejects.toThrow(/EBADF/);
  });
});

describe('fileIoFor', () => {
  it('uses synchronous I/O on tmpfs and asynchronous I/O elsewhere', () => {
    delete process.env.VHOST_USER_ZBD_IO;
    if (fs.existsSync('/dev/shm') && Number(fs.statfsSync('/dev/shm').type) === 0x01021994) {
      expect(fileIoFor('/dev/shm').kind).toBe('sync');
    }
    expect(fileIoFor(null).kind).not.toBe('sync');
    if (Number(fs.statfsSync(dir).type) !== 0x01021994) expect(fileIoFor(dir).kind).not.toBe('sync');
  });
});

// A batch of one read (QD1) skips the ring: preadv2(RWF_NOWAIT) on the loop thread when the
// data is cached, the ring when it is not or the file cannot say. The spy counts which.
describe('io_uring engine: a lone read', () => {
  let diskDir: string;
  beforeEach(() => { diskDir = fs.mkdtempSync('/var/tmp/zbd-fileio-'); nowait.calls.length = 0; });
  afterEach(() => fs.rmSync(diskDir, { recursive: true, force: true }));

  function uring(): FileIo {
    const io = engine('io_uring');
    expect(io.kind).toBe('io_uring');
    return io;
  }

  it('is read on this thread, inside flush, when its data is cached', () => {
    const io = uring();
    const buf = new Uint8Array(512);
    let got = -1;
    io.read(fd, [buf], 1024, (err, n) => { expect(err).toBeNull(); got = n; });
    expect(got).toBe(-1);
    io.flush();
    expect(got).toBe(512);
    expect(buf).toEqual(pattern(32 * 1024, 3).subarray(1024, 1536));
    expect(nowait.calls).toEqual([512]);
  });

  it('goes through the ring with the rest of its batch when others join it', async () => {
    const io = uring();
    const bufs = [new Uint8Array(512), new Uint8Array(512), new Uint8Array(512)];
    const n = await Promise.all(bufs.map((b, i) => op((cb) => io.read(fd, [b], i * 4096, cb))));
    expect(n).toEqual([512, 512, 512]);
    bufs.forEach((b, i) => expect(b).toEqual(pattern(32 * 1024, 3).subarray(i * 4096, i * 4096 + 512)));
    expect(nowait.calls).toEqual([]);
  });

  it('goes through the ring when its data is not cached (EAGAIN)', async () => {
    const io = uring();
    // Written with O_DIRECT, so the page cache holds none of it.
    const path = join(diskDir, 'direct');
    fs.writeFileSync(path, new Uint8Array(0));
    const dfd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_DIRECT);
    const mfd = memfdCreate('zbd-test', 65536);
    const aligned = new Uint8Array(mmap(mfd, 0, 65536, true));
    closeFd(mfd);
    try {
      aligned.set(pattern(65536, 9));
      expect(fs.writeSync(dfd, aligned, 0, 65536, 0)).toBe(65536);
      const buf = new Uint8Array(4096);
      const bfd = fs.openSync(path, 'r');
      try {
        expect(await op((cb) => io.read(bfd, [buf], 8192, cb))).toBe(4096);
      } finally {
        fs.closeSync(bfd);
      }
      expect(buf).toEqual(pattern(65536, 9).subarray(8192, 12288));
      expect(nowait.calls).toEqual([-11]);
    } finally {
      fs.closeSync(dfd);
      munmap(aligned.buffer as ArrayBuffer);
    }
  });

  // Last: the engine stops trying RWF_NOWAIT for the rest of the process after this.
  it('goes through the ring where the file refuses RWF_NOWAIT (EOPNOTSUPP), and from then on', async () => {
    const io = uring();
    const pfd = fs.openSync('/proc/version', 'r');
    try {
      const want = fs.readFileSync('/proc/version');
      const buf = new Uint8Array(want.byteLength);
      expect(await op((cb) => io.read(pfd, [buf], 0, cb))).toBe(want.byteLength);
      expect(Buffer.from(buf)).toEqual(want);
      expect(nowait.calls).toEqual([-95]);
      expect(await op((cb) => io.read(fd, [new Uint8Array(16)], 0, cb))).toBe(16);
      expect(nowait.calls).toEqual([-95]);
    } finally {
      fs.closeSync(pfd);
    }
  });
});
