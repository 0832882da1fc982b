// create --preallocation off|falloc|full (qemu-img's meanings): the header records the mode,
// the space is reserved up front, a zone reset keeps it reserved (and still zeroes the old
// data), `check` reports the allocation and repairs a preallocated image that lost blocks,
// and serve warns once at start when a sparse image could outgrow its filesystem.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createImage, openImage } from '../../src/backends/file-backend.js';
import { crc32 } from '../../src/backends/crc32.js';
import * as native from '../../src/native/index.js';
import { ZoneOp, ZoneResult } from '../../src/zoned/types.js';
import type { Preallocation } from '../../src/backends/image-format.js';

const bin = path.resolve(__dirname, '../../bin/vhost-user-zbd.js');
const MiB = 2 ** 20;
// ext4 (the test's tmpdir) zeroes a range in place; tmpfs cannot, and punches then re-allocates.
const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-prealloc-')), fs.mkdtempSync(path.join('/dev/shm', 'vuzbd-prealloc-'))];
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const allocated = (f: string): number => fs.statSync(f).blocks * 512;
const fsName = (d: string): string => (fs.statfsSync(d).type === 0x01021994 ? 'tmpfs' : 'ext4');

describe.each(dirs)('preallocation in %s', (dir) => {
  for (const mode of ['off', 'falloc', 'full'] as Preallocation[]) {
    it(`${mode}: header, allocation, and a zone reset (${fsName(dir)})`, async () => {
      const img = path.join(dir, `${mode}.img`);
      const r = run('create', img, '--size', '64M', '--zone-size', '4M', '--preallocation', mode);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`preallocation ${mode}`);
      // Header byte 112: 0 off, 1 falloc, 2 full.
      const head = Buffer.alloc(4096);
      const fd = fs.openSync(img, 'r');
      fs.readSync(fd, head, 0, 4096, 0);
      fs.closeSync(fd);
      expect(head[112]).toBe(['off', 'falloc', 'full'].indexOf(mode));
      const data = 64 * MiB;
      if (mode === 'off') expect(allocated(img)).toBeLessThan(MiB);
      else expect(allocated(img)).toBeGreaterThanOrEqual(data);
      const check = run('check', img);
      expect(check.code, check.out).toBe(0);
      expect(check.out).toMatch(new RegExp(`allocated \\d+ of ${data + MiB} bytes .*preallocation ${mode}\\n`));

      // Fill zone 2 (4 MiB), reset it.
      const { backend, header } = openImage(img);
      const zoneSectors = 4 * MiB / 512;
      const buf = new Uint8Array(MiB).fill(0xa5);
      for (let i = 0; i < 4; i++) expect(await backend.write(2 * zoneSectors + i * 2048, [buf])).toBe(ZoneResult.OK);
      expect(await backend.flush()).toBe(ZoneResult.OK);
      const before = allocated(img);
      expect(await backend.zoneMgmt(ZoneOp.RESET, 2 * zoneSectors)).toBe(ZoneResult.OK);
      const back = new Uint8Array(MiB).fill(1);
      expect(await backend.read(2 * zoneSectors, [back])).toBe(ZoneResult.OK);
      await backend.close();
      expect(back.every((b) => b === 0)).toBe(true);
      if (mode === 'off') expect(allocated(img)).toBeLessThanOrEqual(before - 4 * MiB);
      // (ext4 may add an extent block when zeroing splits an extent.)
      else expect(allocated(img)).toBeGreaterThanOrEqual(before);
      // The old data is gone from the file too, not only hidden by the write pointer.
      const raw = Buffer.alloc(4 * MiB, 1);
      const rfd = fs.openSync(img, 'r');
      fs.readSync(rfd, raw, 0, raw.byteLength, header.dataOffset + 2 * 4 * MiB);
      fs.closeSync(rfd);
      expect(raw.every((b) => b === 0)).toBe(true);
    });
  }
});

describe('images and check', () => {
  const dir = dirs[0];

  it('an image from before the preallocation byte (byte 112 zero) is a sparse image; an unknown mode is refused', () => {
    const img = path.join(dir, 'old.img');
    createImage(img, { capacitySectors: 64 * 2048, zoneSectors: 4 * 2048 });
    const fd = fs.openSync(img, 'r+');
    const head = Buffer.alloc(4096);
    fs.readSync(fd, head, 0, 4096, 0);
    // Version-1 images were written with bytes 112..123 zero: this one is byte for byte such an image.
    expect(head.subarray(112, 124).every((b) => b === 0)).toBe(true);
    expect(head.readUInt32LE(8)).toBe(1);
    fs.closeSync(fd);
    expect(run('check', img).out).toMatch(/preallocation off\n.*clean/);
    expect(run('report', img, '--json', '--count', '1').out).toMatch(/"preallocation": "off"/);

    head[112] = 7;
    head.writeUInt32LE(crc32(head, 0, 124), 124);
    const wfd = fs.openSync(img, 'r+');
    fs.writeSync(wfd, head, 0, 4096, 0);
    fs.closeSync(wfd);
    const r = run('report', img);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EIMAGE: header preallocation mode 7 is unknown \(0 off, 1 falloc, 2 full\)/);
  });

  it('check finds a preallocated image that lost its reservation (copied sparse) and --repair reserves it again', () => {
    const img = path.join(dir, 'holes.img');
    expect(run('create', img, '--size', '64M', '--zone-size', '4M', '--preallocation', 'falloc').code).toBe(0);
    const fd = fs.openSync(img, 'r+');
    native.fallocate(fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, MiB + 8 * MiB, 16 * MiB);
    fs.closeSync(fd);
    let r = run('check', img);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/image: preallocated \(falloc\) but \d+ bytes \(16 MiB\) of the data area are not allocated: writes there may meet ENOSPC \[repair: allocate the missing space again/);
    r = run('check', img, '--repair');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/repaired data area: space allocated again \(preallocation falloc\)/);
    expect(allocated(img)).toBeGreaterThanOrEqual(64 * MiB);
    expect(run('check', img).code).toBe(0);
  });

  it('serve warns once at start when a sparse image can outgrow the free space of its filesystem', async () => {
    const free = fs.statfsSync(dir).bavail * fs.statfsSync(dir).bsize;
    // A sparse image larger than the free space (ext4 holds files up to 16 TiB).
    const size = Math.min(16 * 2 ** 40 - 2 ** 30, Math.ceil((free * 2) / 2 ** 30) * 2 ** 30);
    expect(size, 'the filesystem has too much free space for this test').toBeGreaterThan(free);
    const img = path.join(dir, 'sparse.img');
    expect(run('create', img, '--size', String(size), '--zone-size', '1G').code).toBe(0);
    const serveOnce = async (...extra: string[]): Promise<string> => {
      const sock = path.join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
      const p = spawn(process.execPath, [bin, 'serve', '--image', img, '--socket', sock, '--hints=false', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
      pids.push(p.pid as number);
      let err = '';
      p.stderr.on('data', (d) => { err += String(d); });
      const exit = new Promise((resolve) => p.on('exit', resolve));
      for (let i = 0; i < 600 && !/"msg":"serving"/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
      p.kill('SIGTERM');
      await exit;
      return err;
    };
    const err = await serveOnce();
    const warns = err.split('\n').filter((l) => /"level":40/.test(l));
    expect(warns, err).toHaveLength(1);
    const w = JSON.parse(warns[0]);
    expect(w).toMatchObject({ image: img, filesystem: 'ext4', capacityBytes: size });
    expect(w.unwrittenBytes).toBeGreaterThan(w.freeBytes);
    expect(w.msg).toMatch(/the filesystem holding the image has .* free but the sparse image can still grow by .*--preallocation falloc/);
    // Read-only, nothing will be written: no warning.
    expect((await serveOnce('--read-only')).split('\n').filter((l) => /"level":40/.test(l))).toEqual([]);
  }, 60_000);
});
