// The file I/O engines: each moves the same bytes, reports short counts and errors the same
// way, and fileIoFor picks the synchronous one for memory-backed filesystems only.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileIoFor, type FileIo } from '../../src/backends/file-io.js';

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
