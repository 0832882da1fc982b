// Untrusted images: every header field and zone entry is validated with a specific error,
// plus locking and persistence of write pointers, finish and fault flags across reopen.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createImage, openImage, inspectImageFd, openLocked, repairImageFd } from '../../src/backends/file-backend.js';
import { crc32 } from '../../src/backends/crc32.js';
import { HEADER_BLOCK, ZONE_ENTRY_SIZE } from '../../src/backends/image-format.js';
import { ZoneCond, ZoneOp, ZoneResult } from '../../src/zoned/types.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-image-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const MiB = 2048; // sectors

function fresh(opts: Partial<Parameters<typeof createImage>[1]> = {}): string {
  const file = path.join(dir, `img${n++}.img`);
  createImage(file, { capacitySectors: 16 * MiB, zoneSectors: MiB, conventionalZones: 2, blockSize: 4096, ...opts });
  return file;
}

/** Patch bytes of the header; optionally fix the checksum so only the field is wrong. */
function patchHeader(file: string, at: number, bytes: Buffer, fixCrc = true): void {
  const fd = fs.openSync(file, 'r+');
  const h = Buffer.alloc(HEADER_BLOCK);
  fs.readSync(fd, h, 0, HEADER_BLOCK, 0);
  bytes.copy(h, at);
  if (fixCrc) h.writeUInt32LE(crc32(h, 0, 124), 124);
  fs.writeSync(fd, h, 0, HEADER_BLOCK, 0);
  fs.closeSync(fd);
}
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
const u64 = (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };

function expectOpenError(file: string, re: RegExp): void {
  expect(() => openImage(file)).toThrow(re);
}

describe('hostile image headers', () => {
  it('not an image', () => {
    const f = path.join(dir, 'junk.img');
    fs.writeFileSync(f, Buffer.alloc(8192, 0x41));
    expectOpenError(f, /EIMAGE: bad magic "AAAAAAAA"/);
  });
  it('too small', () => {
    const f = path.join(dir, 'tiny.img');
    fs.writeFileSync(f, 'VUZBDIMG');
    expectOpenError(f, /EIMAGE: file of 8 bytes is too small/);
  });
  it('unknown version', () => { const f = fresh(); patchHeader(f, 8, u32(7)); expectOpenError(f, /image version 7 is not supported/); });
  it('bad checksum', () => { const f = fresh(); patchHeader(f, 40, u32(512), false); expectOpenError(f, /header checksum mismatch/); });
  it('zero zone size', () => { const f = fresh(); patchHeader(f, 24, u32(0)); expectOpenError(f, /zone size \(sectors\) 0 is below the minimum/); });
  it('non power of two zone size', () => { const f = fresh(); patchHeader(f, 24, u32(3 * MiB)); expectOpenError(f, /zone size 3145728 bytes is not a power of two/); });
  it('huge zone size', () => { const f = fresh(); patchHeader(f, 24, u32(0x80000000)); expectOpenError(f, /capacity .* is smaller than one zone/); });
  it('zone count that does not match capacity', () => { const f = fresh(); patchHeader(f, 32, u32(17)); expectOpenError(f, /zone count 17 does not match capacity/); });
  it('capacity overflow', () => { const f = fresh(); patchHeader(f, 16, u64(1n << 62n)); expectOpenError(f, /capacity .* too large/); });
  it('absurd zone count is refused before allocating', () => {
    const f = fresh();
    patchHeader(f, 16, u64(1n << 40n));
    patchHeader(f, 24, u32(8));
    expectOpenError(f, /zone count .* exceeds the maximum/);
  });
  it('zone capacity above zone size', () => { const f = fresh(); patchHeader(f, 28, u32(2 * MiB)); expectOpenError(f, /zone capacity \(sectors\) 4096 is above the maximum 2048/); });
  it('all zones conventional', () => { const f = fresh(); patchHeader(f, 36, u32(16)); expectOpenError(f, /conventional zones 16 is above the maximum 15/); });
  it('bad block size', () => { const f = fresh(); patchHeader(f, 40, u32(1000)); expectOpenError(f, /block size 1000 must be 512 or 4096/); });
  it('data offset moved', () => { const f = fresh(); patchHeader(f, 72, u64(4096n)); expectOpenError(f, /data offset 4096 is invalid/); });
  it('truncated image', () => { const f = fresh(); fs.truncateSync(f, 100000); expectOpenError(f, /truncated inside the zone table|expected/); });
  it('short data area', () => { const f = fresh(); const sz = fs.statSync(f).size; fs.truncateSync(f, sz - 4096); expectOpenError(f, new RegExp(`is ${sz - 4096} bytes, expected ${sz}`)); });
});

function patchEntry(file: string, zone: number, wp: bigint, dataEnd: bigint, flags = 0, fixCrc = true): void {
  const fd = fs.openSync(file, 'r+');
  const e = Buffer.alloc(ZONE_ENTRY_SIZE);
  e.writeBigUInt64LE(wp, 0); e.writeBigUInt64LE(dataEnd, 8); e.writeUInt32LE(flags, 16);
  e.writeUInt32LE(fixCrc ? crc32(e, 0, 28) : 0xdeadbeef, 28);
  fs.writeSync(fd, e, 0, ZONE_ENTRY_SIZE, HEADER_BLOCK + zone * ZONE_ENTRY_SIZE);
  fs.closeSync(fd);
}

describe('hostile zone tables', () => {
  it('write pointer outside its zone', () => { const f = fresh(); patchEntry(f, 5, 1n, 1n); expectOpenError(f, /zone 5: write pointer 1 outside the zone \[10240, 12288\]/); });
  it('write pointer beyond 2^53', () => { const f = fresh(); patchEntry(f, 5, 1n << 60n, 0n); expectOpenError(f, /zone 5: write pointer -1 outside/); });
  it('unaligned write pointer', () => { const f = fresh(); patchEntry(f, 5, 10241n, 10241n); expectOpenError(f, /not aligned to the 4096-byte block/); });
  it('data end above write pointer', () => { const f = fresh(); patchEntry(f, 5, 10248n, 10256n); expectOpenError(f, /data end 10256 outside/); });
  it('entry checksum', () => { const f = fresh(); patchEntry(f, 6, 12288n, 12288n, 0, false); expectOpenError(f, /zone 6: zone entry checksum mismatch/); });
  it('unknown flags', () => { const f = fresh(); patchEntry(f, 6, 12288n, 12288n, 0x80); expectOpenError(f, /unknown flags 0x80/); });

  it('check lists every problem and --repair fixes them without losing data', async () => {
    const f = fresh();
    {
      const { backend } = openImage(f);
      const data = Buffer.alloc(8192, 7);
      expect(await backend.write(4 * MiB, [data])).toBe(ZoneResult.OK);
      await backend.close();
    }
    patchEntry(f, 4, 4n * 2048n + 16n, 4n * 2048n + 8n);   // data end mismatch in a not-full zone
    patchEntry(f, 6, 0n, 0n, 0, false);                    // garbage entry
    let fd = openLocked(f, false);
    const ins = inspectImageFd(fd);
    fs.closeSync(fd);
    expect(ins.problems.map((p) => p.zone)).toEqual([4, 6]);
    fd = openLocked(f, true);
    const done = repairImageFd(fd, ins);
    fs.closeSync(fd);
    expect(done).toHaveLength(2);
    const { backend } = openImage(f);
    expect(backend.engine.zoneWp(4)).toBe(4 * MiB + 16);
    expect(backend.engine.zoneCond(6)).toBe(ZoneCond.FULL);
    const back = Buffer.alloc(8192);
    expect(await backend.read(4 * MiB, [back])).toBe(ZoneResult.OK);
    expect(back.every((b) => b === 7)).toBe(true);
    await backend.close();
  });
});

describe('persistence and locking', () => {
  it('a second writer gets a clear lock error', async () => {
    const f = fresh();
    const { backend } = openImage(f);
    expect(() => openImage(f)).toThrow(/EIMAGELOCK: .* is in use by another process/);
    expect(() => openImage(f, { readOnly: true })).toThrow(/EIMAGELOCK/);
    await backend.close();
    const again = openImage(f);
    await again.backend.close();
  });

  it('write pointers, finish, read-only and offline survive reopen; open states do not', async () => {
    const f = fresh({ maxOpenZones: 4 });
    {
      const { backend } = openImage(f);
      const blk = Buffer.alloc(4096, 1);
      expect(await backend.write(2 * MiB, [blk])).toBe(ZoneResult.OK);        // zone 2 implicitly open, wp +8
      expect(await backend.zoneMgmt(ZoneOp.OPEN, 3 * MiB)).toBe(ZoneResult.OK); // zone 3 explicitly open, empty
      expect(await backend.write(4 * MiB, [blk])).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.FINISH, 4 * MiB)).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.SET_READONLY, 5 * MiB)).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.SET_OFFLINE, 6 * MiB)).toBe(ZoneResult.OK);
      expect(backend.engine.zoneCond(2)).toBe(ZoneCond.IMP_OPEN);
      await backend.close();
    }
    const { backend } = openImage(f);
    const e = backend.engine;
    expect([e.zoneCond(2), e.zoneWp(2)]).toEqual([ZoneCond.CLOSED, 2 * MiB + 8]);
    expect(e.zoneCond(3)).toBe(ZoneCond.EMPTY);
    expect(e.zoneCond(4)).toBe(ZoneCond.FULL);
    expect(e.zoneCond(5)).toBe(ZoneCond.READONLY);
    expect(e.zoneCond(6)).toBe(ZoneCond.OFFLINE);
    // Finished zone: written block reads back, the rest reads zeroes.
    const two = Buffer.alloc(8192, 0xee);
    expect(await backend.read(4 * MiB, [two])).toBe(ZoneResult.OK);
    expect(two.subarray(0, 4096).every((b) => b === 1)).toBe(true);
    expect(two.subarray(4096).every((b) => b === 0)).toBe(true);
    expect(await backend.read(6 * MiB, [two])).toBe(ZoneResult.INVALID);
    await backend.close();
  });

  it('cleared faults are persisted: read-only back to CLOSED with its data, offline back to EMPTY', async () => {
    const f = fresh();
    const blk = Buffer.alloc(4096, 3);
    {
      const { backend } = openImage(f);
      expect(await backend.write(5 * MiB, [blk])).toBe(ZoneResult.OK);
      expect(await backend.write(6 * MiB, [blk])).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.SET_READONLY, 5 * MiB)).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.SET_OFFLINE, 6 * MiB)).toBe(ZoneResult.OK);
      await backend.close();
    }
    {
      const { backend } = openImage(f);
      expect(await backend.zoneMgmt(ZoneOp.CLEAR_FAULT, 5 * MiB)).toBe(ZoneResult.OK);
      expect(await backend.zoneMgmt(ZoneOp.CLEAR_FAULT, 6 * MiB)).toBe(ZoneResult.OK);
      await backend.close();
    }
    const { backend } = openImage(f);
    const e = backend.engine;
    expect([e.zoneCond(5), e.zoneWp(5), e.zoneFlags(5)]).toEqual([ZoneCond.CLOSED, 5 * MiB + 8, 0]);
    expect([e.zoneCond(6), e.zoneWp(6), e.zoneFlags(6)]).toEqual([ZoneCond.EMPTY, 6 * MiB, 0]);
    const back = Buffer.alloc(4096, 0xee);
    expect(await backend.read(5 * MiB, [back])).toBe(ZoneResult.OK);
    expect(back.every((b) => b === 3)).toBe(true);
    expect(await backend.read(6 * MiB, [back])).toBe(ZoneResult.OK);
    expect(back.every((b) => b === 0)).toBe(true);
    await backend.close();
  });

  it('a 1 TiB image is sparse', () => {
    const f = fresh({ capacitySectors: 2 ** 31, zoneSectors: 64 * MiB });
    const st = fs.statSync(f);
    expect(st.size).toBeGreaterThan(2 ** 40);
    expect(st.blocks * 512).toBeLessThan(1 << 20);
  });

  it('reset frees the zone space (punch hole)', async () => {
    const f = fresh();
    const { backend } = openImage(f);
    const before = fs.statSync(f).blocks;
    expect(await backend.write(8 * MiB, [Buffer.alloc(MiB * 512, 3)])).toBe(ZoneResult.OK);
    await backend.flush();
    expect(fs.statSync(f).blocks).toBeGreaterThan(before + 1000);
    expect(await backend.zoneMgmt(ZoneOp.RESET, 8 * MiB)).toBe(ZoneResult.OK);
    expect(fs.statSync(f).blocks).toBeLessThan(before + 100);
    await backend.close();
  });

  it('create refuses to overwrite without force', () => {
    const f = fresh();
    expect(() => createImage(f, { capacitySectors: 16 * MiB, zoneSectors: MiB })).toThrow(/EIMAGEEXIST/);
  });
});
