// The host device backend on real kernel zoned devices, beyond the shared conformance suite:
// discovery, exclusive open, refusals, device errors and how they reach the guest, zone state
// changed behind the backend's back, buffer alignment, append concurrency.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HostDeviceBackend } from '../../src/backends/host-device-backend.js';
import {
  BLK_ZONE_OP, blkGetNrZones, blkGetZoneSize, blkReportZones, blkReportZonesAsync, blkZoneMgmt, closeFd, memfdCreate, mmap, munmap,
} from '../../src/native/index.js';
import { ZoneCond, ZoneOp, ZoneResult } from '../../src/zoned/types.js';
import { reportHostZonesSync, type HostZone } from '../../src/backends/host-zone-report.js';
import { captureLogger } from '../harness/log-capture.js';
import { pattern, reportAll, zoneAt } from '../conformance/zone-suite.js';
import { findGuestDevices, makeNullb, nullbAttr, removeNullb } from './devices.js';

const devs = findGuestDevices();
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Mapped memory like guest RAM (the daemon maps the front-end's memfd). */
let ram: ArrayBuffer;
beforeAll(() => {
  const fd = memfdCreate('guest-ram', 16 << 20);
  ram = mmap(fd, 0, 16 << 20);
  closeFd(fd);
});
afterAll(() => munmap(ram));
const view = (off: number, len: number): Uint8Array => new Uint8Array(ram, off, len);

/** A second, non-exclusive fd: changes zones behind the backend's back, as a buggy co-user would. */
function foreign(dev: string): { fd: number; write(sector: number, bytes: number): void; close(): void } {
  const fd = fs.openSync(dev, fs.constants.O_RDWR | fs.constants.O_DIRECT);
  return {
    fd,
    // From mapped memory: heap buffers are not safe for O_DIRECT under UML (see direct-io.ts).
    write(sector, bytes) { const src = view(8 << 20, bytes); src.set(pattern(bytes, sector)); fs.writeSync(fd, src, 0, bytes, sector * 512); },
    close() { fs.closeSync(fd); },
  };
}

const open: HostDeviceBackend[] = [];
afterEach(async () => { for (const b of open.splice(0)) await b.close(); });
function openDev(dev: string, opts: Parameters<typeof HostDeviceBackend.open>[1] = {}): HostDeviceBackend {
  const b = HostDeviceBackend.open(dev, opts);
  open.push(b);
  return b;
}

describe('discovery', () => {
  for (const dev of [devs.nullb, devs.scsi]) {
    it(`${dev}: sysfs and the zone ioctls agree with what the backend serves`, () => {
      const b = openDev(dev);
      const name = dev.slice('/dev/'.length);
      const q = (f: string): string => fs.readFileSync(`/sys/block/${name}/queue/${f}`, 'utf8').trim();
      const z = b.info.zoned!;
      expect(b.facts.model).toBe('host-managed');
      expect(b.info.capacitySectors).toBe(Number(fs.readFileSync(`/sys/block/${name}/size`, 'utf8')));
      expect(b.info.blockSize).toBe(Number(q('logical_block_size')));
      expect(b.info.physicalBlockSize).toBe(Number(q('physical_block_size')));
      expect(b.facts.memAlign).toBe(Number(q('dma_alignment')) + 1);
      expect(z.zoneSectors).toBe(Number(q('chunk_sectors')));
      expect(z.nrZones).toBe(Number(q('nr_zones')));
      expect(z.maxOpenZones).toBe(Number(q('max_open_zones')));
      expect(z.maxActiveZones).toBe(Number(q('max_active_zones')));
      expect(z.maxAppendSectors).toBeLessThanOrEqual(Math.max(Number(q('zone_append_max_bytes')) / 512, 0) || Infinity);
      const fd = fs.openSync(dev, 'r');
      try {
        expect(blkGetZoneSize(fd)).toBe(z.zoneSectors);
        expect(blkGetNrZones(fd)).toBe(z.nrZones);
      } finally { fs.closeSync(fd); }
      expect(b.info.serial).toMatch(/^vuzbd-[0-9a-f]{14}$/);
    });
  }

  it('the serial is stable for the same device and differs between devices', async () => {
    const a = openDev(devs.nullb);
    const s1 = a.info.serial;
    await a.close();
    expect(openDev(devs.nullb).info.serial).toBe(s1);
    expect(openDev(devs.scsi).info.serial).not.toBe(s1);
  });
});

describe('exclusive open', () => {
  it('a second exclusive open fails while the first holds the device; a shared read-only look is fine', async () => {
    const b = openDev(devs.nullb);
    expect(() => HostDeviceBackend.open(devs.nullb)).toThrow(/EDEVICE: \/dev\/nullb0 is in use/);
    const look = openDev(devs.nullb, { readOnly: true, exclusive: false });
    expect((await reportAll(look)).length).toBe(b.info.zoned!.nrZones);
    // Not even the kernel can claim it (mkfs, mount): O_EXCL on a block device claims it.
    expect(() => fs.openSync(devs.nullb, fs.constants.O_RDONLY | fs.constants.O_EXCL)).toThrow(/EBUSY/);
    await b.close();
    open.splice(open.indexOf(b), 1);
    openDev(devs.nullb); // free again
  });

  it('a read-only backend refuses writes and zone operations without touching the device', async () => {
    const b = openDev(devs.scsi, { readOnly: true });
    const s = b.info.zoned!.conventionalZones * b.info.zoned!.zoneSectors;
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.READ_ONLY);
    expect((await b.append(s, [view(0, 4096)])).result).toBe(ZoneResult.READ_ONLY);
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.READ_ONLY);
    expect(await b.read(s, [view(0, 4096)])).toBe(ZoneResult.OK);
  });
});

describe('close', () => {
  it('waits for the reads, writes and appends in flight, then releases the device', async () => {
    const b = HostDeviceBackend.open(devs.scsi);
    const z = b.info.zoned!;
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
    const s = z.conventionalZones * z.zoneSectors;
    const ops: Array<Promise<ZoneResult>> = [];
    for (let i = 0; i < 16; i++) ops.push(b.read(i * 64, [view(i * 65536, 32768)]));
    for (let i = 0; i < 8; i++) ops.push(b.write(i * 64, [view(2 << 20, 32768)]));
    for (let i = 0; i < 8; i++) ops.push(b.append(s, [view(4 << 20, 32768)]).then((a) => a.result));
    const closing = b.close();
    expect(await Promise.all(ops)).toEqual(new Array(32).fill(ZoneResult.OK));
    await closing;
    const again = openDev(devs.scsi); // the exclusive claim is gone
    expect((await zoneAt(again, s)).wp).toBe(s + 8 * 64);
  });
});

describe('models', () => {
  afterAll(() => removeNullb('plain'));
  it('a zoned device is not served as a regular disk', () => {
    expect(() => HostDeviceBackend.open(devs.nullb, { model: 'none' })).toThrow(/is host-managed: as a regular disk \(--model none\) every write off a write pointer would fail/);
  });

  it('a regular device needs --model none, and is then a plain disk', async () => {
    const dev = makeNullb('plain', [['zoned', 0], ['size', 64], ['blocksize', 512], ['memory_backed', 1], ['index', 9]]);
    expect(() => HostDeviceBackend.open(dev)).toThrow(/is not a zoned block device \(.*zoned = none\): serve it with --model none/);
    const b = openDev(dev, { model: 'none' });
    expect(b.info.zoned).toBeNull();
    expect(b.info.capacitySectors).toBe(64 * 2048);
    const data = view(0, 8192);
    data.set(pattern(8192, 3));
    expect(await b.write(777, [data])).toBe(ZoneResult.OK); // anywhere
    const back = view(1 << 20, 8192);
    expect(await b.read(777, [back])).toBe(ZoneResult.OK);
    expect(same(back, data)).toBe(true);
    expect((await b.append(0, [data])).result).toBe(ZoneResult.UNSUPPORTED);
    expect(await b.zoneMgmt(ZoneOp.RESET, 0)).toBe(ZoneResult.UNSUPPORTED);
    expect(await reportAll(b)).toEqual([]);
    expect(await b.write(b.info.capacitySectors - 8, [view(0, 8192)])).toBe(ZoneResult.OUT_OF_RANGE);
  });
});

describe('zone state changed behind the backend (a second opener), and device errors', () => {
  let b: HostDeviceBackend;
  let other: ReturnType<typeof foreign>;
  let seq0: number;
  let zs: number;
  const logs = captureLogger('debug');
  beforeAll(async () => {
    b = HostDeviceBackend.open(devs.nullb, { logger: logs.log });
    other = foreign(devs.nullb);
    zs = b.info.zoned!.zoneSectors;
    seq0 = b.info.zoned!.conventionalZones * zs;
    // Other test files leave the device as they used it.
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
  });
  afterAll(async () => { other.close(); await b.close(); });
  afterEach(async () => {
    // The foreign opens hold resources the backend's reset-all must clear too.
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
  });

  it('a write at a write pointer the device has moved on: UNALIGNED_WP with the host errno logged, then the new one works', async () => {
    expect(await b.write(seq0, [view(0, 8192)])).toBe(ZoneResult.OK);
    // 16 sectors: more than our write would have moved it, so it cannot be taken for ours.
    other.write(seq0 + 16, 8192);
    logs.lines.length = 0;
    expect(await b.write(seq0 + 16, [view(0, 4096)])).toBe(ZoneResult.UNALIGNED_WP);
    const line = logs.lines.find((l) => l.msg === 'write failed on the device');
    expect(line).toMatchObject({ errno: 5, result: 'UNALIGNED_WP', zone: b.info.zoned!.conventionalZones, wpAfter: seq0 + 32 });
    // The zone was re-read (which also clears the host kernel's "write pointer unknown" flag).
    expect(b.zoneState(b.info.zoned!.conventionalZones).wp).toBe(seq0 + 32);
    expect(await b.write(seq0 + 32, [view(0, 4096)])).toBe(ZoneResult.OK);
  });

  it('a zone reset behind our back: the stale write fails with UNALIGNED_WP, then writing from the zone start works', async () => {
    const s = seq0 + zs;
    expect(await b.write(s, [view(0, 16384)])).toBe(ZoneResult.OK);
    blkZoneMgmt(other.fd, BLK_ZONE_OP.RESET, s, zs);
    expect(await b.write(s + 32, [view(0, 4096)])).toBe(ZoneResult.UNALIGNED_WP);
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.OK);
  });

  it('an append after a foreign write lands at the real write pointer (retried once after the re-read)', async () => {
    const s = seq0 + 2 * zs;
    expect((await b.append(s, [view(0, 4096)])).sector).toBe(s);
    other.write(s + 8, 8192);
    const data = view(4096, 4096);
    data.set(pattern(4096, 99));
    const a = await b.append(s, [data]);
    expect(a).toEqual({ result: ZoneResult.OK, sector: s + 24 });
    const back = view(1 << 20, 4096);
    expect(await b.read(s + 24, [back])).toBe(ZoneResult.OK);
    expect(same(back, data)).toBe(true);
    expect(logs.lines.some((l) => l.msg === 'append retried at the re-read write pointer')).toBe(true);
  });

  it('open resources taken by someone else: the device says ETOOMANYREFS, the guest gets OPEN_RESOURCE', async () => {
    const maxOpen = b.info.zoned!.maxOpenZones;
    for (let i = 0; i < maxOpen; i++) blkZoneMgmt(other.fd, BLK_ZONE_OP.OPEN, seq0 + (10 + i) * zs, zs);
    logs.lines.length = 0;
    expect(await b.write(seq0 + 30 * zs, [view(0, 4096)])).toBe(ZoneResult.OPEN_RESOURCE);
    expect(logs.lines.find((l) => l.msg === 'write failed on the device')).toMatchObject({ errno: 109, result: 'OPEN_RESOURCE' });
    expect(await b.zoneMgmt(ZoneOp.OPEN, seq0 + 30 * zs)).toBe(ZoneResult.OPEN_RESOURCE);
    expect((await zoneAt(b, seq0 + 30 * zs)).cond).toBe(ZoneCond.EMPTY);
  });

  it('active resources taken by someone else: EOVERFLOW → ACTIVE_RESOURCE', async () => {
    const maxActive = b.info.zoned!.maxActiveZones;
    for (let i = 0; i < maxActive; i++) {
      other.write(seq0 + (10 + i) * zs, 4096);
      blkZoneMgmt(other.fd, BLK_ZONE_OP.CLOSE, seq0 + (10 + i) * zs, zs);
    }
    logs.lines.length = 0;
    expect(await b.write(seq0 + 40 * zs, [view(0, 4096)])).toBe(ZoneResult.ACTIVE_RESOURCE);
    expect(logs.lines.find((l) => l.msg === 'write failed on the device')).toMatchObject({ errno: 75, result: 'ACTIVE_RESOURCE' });
  });
});

describe('media errors and zones going read-only or offline (configfs null_blk)', () => {
  const NAME = 'zbad';
  let dev: string;
  let b: HostDeviceBackend;
  const logs = captureLogger('debug');
  const ZS = 16384; // 8 MiB zones; zone 0 conventional
  beforeAll(() => {
    dev = makeNullb(NAME, [['zoned', 1], ['size', 64], ['blocksize', 4096], ['zone_size', 8], ['zone_nr_conv', 1],
      ['memory_backed', 1], ['index', 10]]);
    b = HostDeviceBackend.open(dev, { logger: logs.log });
  });
  afterAll(async () => { await b?.close(); removeNullb(NAME); });

  it('a write over a bad block: IOERR, the write pointer stays, and once the block is good the zone takes writes again', async () => {
    const s = ZS;
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.OK);
    nullbAttr(NAME, 'badblocks', `+${s + 8}-${s + 15}`);
    logs.lines.length = 0;
    expect(await b.write(s + 8, [view(0, 4096)])).toBe(ZoneResult.IO_ERROR);
    expect(logs.lines.find((l) => l.msg === 'write failed on the device')).toMatchObject({ errno: 5, result: 'IO_ERROR', wpAfter: s + 8 });
    expect((await zoneAt(b, s)).wp).toBe(s + 8);
    nullbAttr(NAME, 'badblocks', `-${s + 8}-${s + 15}`);
    // Without the re-read after the error the host kernel would still refuse this write
    // (zone write plugging marks the zone's write pointer unknown after a failed write).
    const data = view(4096, 4096);
    data.set(pattern(4096, 5));
    expect(await b.write(s + 8, [data])).toBe(ZoneResult.OK);
    const back = view(1 << 20, 4096);
    expect(await b.read(s + 8, [back])).toBe(ZoneResult.OK);
    expect(same(back, data)).toBe(true);
  });

  it('a read of a bad block: IOERR', async () => {
    nullbAttr(NAME, 'badblocks', '+64-71');
    try {
      expect(await b.read(64, [view(0, 4096)])).toBe(ZoneResult.IO_ERROR);
      expect(await b.read(72, [view(0, 4096)])).toBe(ZoneResult.OK);
    } finally {
      nullbAttr(NAME, 'badblocks', '-64-71');
    }
  });

  it('a zone that went offline: writes, reads and zone operations are INVALID, the report shows it without write pointer', async () => {
    const s = 2 * ZS;
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.OK);
    nullbAttr(NAME, 'zone_offline', s);
    expect(await b.write(s + 8, [view(0, 4096)])).toBe(ZoneResult.INVALID); // device EIO, re-read: offline
    expect(await b.read(s, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    expect(await b.zoneMgmt(ZoneOp.RESET, s)).toBe(ZoneResult.INVALID);
    expect((await b.append(s, [view(0, 4096)])).result).toBe(ZoneResult.INVALID);
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.OFFLINE, wp: -1 });
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK); // leaves it alone
    expect((await zoneAt(b, s)).cond).toBe(ZoneCond.OFFLINE);
    nullbAttr(NAME, 'zone_offline', s); // null_blk: setting it again brings the zone back, EMPTY
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.EMPTY, wp: s });
  });

  it('a zone that went read-only: writes INVALID, reads fine', async () => {
    const s = 3 * ZS;
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.OK);
    nullbAttr(NAME, 'zone_readonly', s);
    expect(await b.write(s + 8, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    expect(await b.read(s, [view(0, 4096)])).toBe(ZoneResult.OK);
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.READONLY, wp: -1 });
    nullbAttr(NAME, 'zone_readonly', s);
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
  });

  it('a device opened with a read-only or offline zone already in it', async () => {
    const s = 4 * ZS;
    nullbAttr(NAME, 'zone_offline', s);
    const again = HostDeviceBackend.open(dev, { readOnly: true, exclusive: false });
    try {
      expect(again.zoneState(4)).toMatchObject({ cond: ZoneCond.OFFLINE });
      expect(await again.read(s, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    } finally {
      await again.close();
      nullbAttr(NAME, 'zone_offline', s);
    }
  });
});

describe('emulated zone faults (SET_READONLY, SET_OFFLINE, CLEAR_FAULT) over a real device', () => {
  const NAME = 'zfault';
  let dev: string;
  let b: HostDeviceBackend;
  const ZS = 16384; // 8 MiB zones; zone 0 conventional
  beforeAll(() => {
    dev = makeNullb(NAME, [['zoned', 1], ['size', 64], ['blocksize', 4096], ['zone_size', 8], ['zone_nr_conv', 1],
      ['memory_backed', 1], ['index', 11]]);
    b = HostDeviceBackend.open(dev);
  });
  afterAll(async () => { await b?.close(); removeNullb(NAME); });
  /** The zone as the device itself reports it (the faults are the daemon's, not the drive's). */
  function onDevice(z: number): HostZone {
    const fd = fs.openSync(dev, fs.constants.O_RDONLY);
    try {
      const got: HostZone[] = [];
      reportHostZonesSync(fd, z * ZS, 1, (hz) => { got.push(hz); return false; });
      return got[0];
    } finally {
      fs.closeSync(fd);
    }
  }
  const data = (seed: number): Uint8Array => { const v = view(2 << 20, 8192); v.set(pattern(8192, seed)); return v; };

  it('read-only: writes, appends and zone operations INVALID, reads serve the data, reset-all leaves it; clear brings back the device state', async () => {
    const s = 2 * ZS;
    expect(await b.write(s, [data(7)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.SET_READONLY, s)).toBe(ZoneResult.OK);
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.READONLY, wp: -1 });
    expect(onDevice(2)).toMatchObject({ cond: ZoneCond.IMP_OPEN, wp: s + 16 });
    expect(await b.write(s + 16, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    expect((await b.append(s, [view(0, 4096)])).result).toBe(ZoneResult.INVALID);
    expect(await b.zoneMgmt(ZoneOp.FINISH, s)).toBe(ZoneResult.INVALID);
    expect(await b.zoneMgmt(ZoneOp.RESET, s)).toBe(ZoneResult.INVALID);
    expect(await b.write(3 * ZS, [view(0, 4096)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
    expect(await zoneAt(b, 3 * ZS)).toMatchObject({ cond: ZoneCond.EMPTY, wp: 3 * ZS });
    const back = view(4 << 20, 8192);
    expect(await b.read(s, [back])).toBe(ZoneResult.OK);
    expect(same(back, pattern(8192, 7))).toBe(true);
    expect(await b.zoneMgmt(ZoneOp.CLEAR_FAULT, s)).toBe(ZoneResult.OK);
    expect(b.zoneState(2)).toMatchObject({ cond: ZoneCond.IMP_OPEN, wp: s + 16, flags: 0 });
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.IMP_OPEN, wp: s + 16 });
    expect(await b.write(s + 16, [view(0, 4096)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.CLEAR_FAULT, s)).toBe(ZoneResult.OK); // nothing to clear
  });

  it('offline: reads and writes INVALID, read-only refused on top; clear resets the zone on the device, EMPTY and zeroes', async () => {
    const s = 4 * ZS;
    expect(await b.write(s, [data(9)])).toBe(ZoneResult.OK);
    expect(await b.zoneMgmt(ZoneOp.SET_OFFLINE, s)).toBe(ZoneResult.OK);
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.OFFLINE, wp: -1 });
    expect(await b.read(s, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    expect(await b.write(s + 16, [view(0, 4096)])).toBe(ZoneResult.INVALID);
    expect(await b.zoneMgmt(ZoneOp.SET_READONLY, s)).toBe(ZoneResult.INVALID);
    expect(onDevice(4).wp).toBe(s + 16);
    expect(await b.zoneMgmt(ZoneOp.CLEAR_FAULT, s)).toBe(ZoneResult.OK);
    expect(onDevice(4)).toMatchObject({ cond: ZoneCond.EMPTY, wp: s });
    expect(await zoneAt(b, s)).toMatchObject({ cond: ZoneCond.EMPTY, wp: s });
    const back = view(4 << 20, 8192);
    expect(await b.read(s, [back])).toBe(ZoneResult.OK);
    expect(back.every((x) => x === 0)).toBe(true);
    expect(await b.write(s, [view(0, 4096)])).toBe(ZoneResult.OK);
  });

  it('faults on a conventional zone or off a zone start are INVALID; on a read-only device READ_ONLY', async () => {
    expect(await b.zoneMgmt(ZoneOp.SET_OFFLINE, 0)).toBe(ZoneResult.INVALID);
    expect(await b.zoneMgmt(ZoneOp.SET_READONLY, 5 * ZS + 8)).toBe(ZoneResult.INVALID);
    const ro = HostDeviceBackend.open(dev, { readOnly: true, exclusive: false });
    try {
      expect(await ro.zoneMgmt(ZoneOp.SET_OFFLINE, 5 * ZS)).toBe(ZoneResult.READ_ONLY);
    } finally {
      await ro.close();
    }
  });
});

describe('buffers as guest memory gives them', () => {
  for (const which of ['nullb', 'scsi'] as const) {
    it(`${which}: aligned mapped segments go to the device directly; odd addresses, short segments and heap memory are bounced; all read back`, async () => {
      const b = openDev(devs[which]);
      const z = b.info.zoned!;
      const bs = b.info.blockSize;
      expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
      const s = z.conventionalZones * z.zoneSectors;
      const dma = b.facts.memAlign;
      expect(b.io.memAlign).toBe(Math.max(dma, bs));
      const cases: Array<{ name: string; segs: Uint8Array[]; direct: boolean }> = [
        { name: 'page-aligned pages', segs: [view(0, 4096), view(3 * 4096, 8192)], direct: true },
        ...(bs < 4096 ? [{ name: 'aligned to the block, not the page', segs: [view(4096 + bs, 2 * bs)], direct: true }] : []),
        ...(dma < bs ? [{ name: 'aligned to the DMA alignment only, not to the block', segs: [view(4096 + dma, 2 * bs)], direct: false }] : []),
        { name: 'address off by one', segs: [view(1, 2 * bs)], direct: false },
        { name: 'heap memory', segs: [new Uint8Array(2 * bs)], direct: false },
        ...(bs > 512 ? [{ name: 'segments shorter than a block', segs: [view(0, 512), view(8192, bs - 512)], direct: false }] : []),
      ];
      let wp = s;
      for (const c of cases) {
        let seed = 1;
        for (const seg of c.segs) seg.set(pattern(seg.byteLength, seed++));
        const want = Buffer.concat(c.segs.map((x) => Buffer.from(x)));
        const before = { ...b.io.stats };
        expect(await b.write(wp, c.segs), c.name).toBe(ZoneResult.OK);
        expect(b.io.stats.direct - before.direct, c.name).toBe(c.direct ? 1 : 0);
        const back = view(4 << 20, want.length);
        back.fill(0xee);
        expect(await b.read(wp, [back])).toBe(ZoneResult.OK);
        expect(same(back, want), c.name).toBe(true);
        wp += want.length / 512;
      }
      // A read smaller than a block, at an offset inside one (conventional zone).
      if (z.conventionalZones) {
        const data = view(0, 2 * bs);
        data.set(pattern(2 * bs, 42));
        expect(await b.write(0, [data])).toBe(ZoneResult.OK);
        const part = view(2 << 20, 512);
        expect(await b.read(1, [part])).toBe(ZoneResult.OK);
        expect(same(part, data.subarray(512, 1024))).toBe(true);
      }
    });
  }
});

describe('append concurrency', () => {
  for (const which of ['nullb', 'scsi'] as const) {
    it(`${which}: 256 appends in flight over 4 zones get distinct contiguous sectors and keep their data; the device agrees`, async () => {
      const b = openDev(devs[which]);
      const z = b.info.zoned!;
      const bs = b.info.blockSize;
      expect(await b.zoneMgmt(ZoneOp.RESET_ALL, 0)).toBe(ZoneResult.OK);
      const zones = [0, 1, 2, 3].map((i) => (z.conventionalZones + i) * z.zoneSectors);
      const per = 64;
      const jobs: Array<{ zone: number; bytes: number; off: number; seed: number }> = [];
      let off = 0;
      for (let i = 0; i < per * zones.length; i++) {
        const bytes = bs * (1 + (i * 5) % 4);
        jobs.push({ zone: zones[i % zones.length], bytes, off, seed: 1000 + i });
        off += bytes;
      }
      for (const j of jobs) view(j.off, j.bytes).set(pattern(j.bytes, j.seed));
      const results = await Promise.all(jobs.map((j) => b.append(j.zone, [view(j.off, j.bytes)])));
      const fd = fs.openSync(devs[which], 'r');
      try {
        for (const zone of zones) {
          const mine = jobs.map((j, i) => ({ j, r: results[i] })).filter((x) => x.j.zone === zone).sort((a, c) => a.r.sector - c.r.sector);
          let next = zone;
          for (const { j, r } of mine) {
            expect(r.result).toBe(ZoneResult.OK);
            expect(r.sector).toBe(next);
            next += j.bytes / 512;
            const back = view((12 << 20), j.bytes);
            expect(await b.read(r.sector, [back])).toBe(ZoneResult.OK);
            expect(same(back, view(j.off, j.bytes))).toBe(true);
          }
          // The device's own write pointer, read with a separate fd.
          const rep = new Uint8Array(16 + 64);
          expect(blkReportZones(fd, zone, rep)).toBe(1);
          expect(Number(new DataView(rep.buffer).getBigUint64(16 + 16, true))).toBe(next);
          expect(await blkReportZonesAsync(fd, zone, rep)).toBe(1);
        }
      } finally {
        fs.closeSync(fd);
      }
    });
  }
});
