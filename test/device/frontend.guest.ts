// End to end inside the guest: the real daemon (`serve --device /dev/nullb0`, compiled dist/)
// and the project's TypeScript vhost-user front-end, speaking virtio-blk requests over the
// vhost-user socket with shared guest memory, as a VM would.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { ProtocolFeature } from '../../src/vhost-user/messages.js';
import { pattern } from '../conformance/zone-suite.js';
import { NULLB_GEOMETRY } from '../conformance/geometries.js';
import { BlkClient, REQ, STATUS } from '../../src/testing/blk-request.js';
import { BIN, runCli as cli } from '../harness/cli-process.js';
import { findGuestDevices } from './devices.js';

const devs = findGuestDevices();
const bit = (n: number): bigint => 1n << BigInt(n);
const ZS = NULLB_GEOMETRY.zoneSectors;
const CAP = NULLB_GEOMETRY.zoneCapacitySectors;
const SEQ0 = NULLB_GEOMETRY.conventionalZones * ZS;
const seq = (i: number): number => SEQ0 + i * ZS;

let dir: string;
let daemon: ChildProcess;
let daemonExit: Promise<number | null>;
let logFile: string;
let fe: VhostUserFrontend;
let mem: GuestMemoryImage;
let q: DriverQueue;
let blk: BlkClient;
let features: bigint;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-frontend-'));
  const socket = path.join(dir, 'vu.sock');
  logFile = path.join(dir, 'daemon.log');
  const log = fs.openSync(logFile, 'a');
  daemon = spawn(process.execPath, [BIN, 'serve', '--socket', socket, '--device', devs.nullb, '--no-hints', '--log-level', 'debug'],
    { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  daemonExit = new Promise((resolve) => daemon.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!fs.existsSync(socket)) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start:\n${fs.readFileSync(logFile, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  fe = VhostUserFrontend.connect(socket);
  // Negotiate like UML's virtio_uml: everything offered, REPLY_ACK and CONFIG.
  const offered = await fe.getFeatures();
  expect(offered & bit(17)).toBe(bit(17)); // VIRTIO_BLK_F_ZONED
  ({ features } = await fe.negotiate({ protocol: bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) }));
  mem = new GuestMemoryImage([{ guestPhysAddr: 0x4000_0000, userAddr: 0x7f00_4000_0000, size: 192 << 20 }]);
  await fe.setMemTable(mem);
  q = await fe.setupQueue(mem, 0, { size: 256 });
  blk = new BlkClient(mem, q);
}, 60_000);

afterAll(async () => {
  q?.closeFds();
  fe?.close();
  if (daemon && daemon.exitCode === null) daemon.kill('SIGTERM');
  const code = await daemonExit;
  mem?.close();
  const log = fs.readFileSync(logFile, 'utf8');
  fs.rmSync(dir, { recursive: true, force: true });
  // A clean stop: the device was flushed and released.
  expect(code, log.slice(-3000)).toBe(0);
});

describe('serve --device /dev/nullb0 driven by the vhost-user front-end', () => {
  it('negotiates the zoned feature and serves the device geometry in the config space', async () => {
    expect(features & bit(17)).toBe(bit(17));
    const cfg = await fe.getConfig(0, 96);
    expect(cfg.size).toBe(96);
    const dv = new DataView(cfg.data.buffer, cfg.data.byteOffset, 96);
    expect(Number(dv.getBigUint64(0, true))).toBe(NULLB_GEOMETRY.capacitySectors);
    expect(dv.getUint32(20, true)).toBe(4096); // blk_size
    expect(dv.getUint32(72, true)).toBe(ZS); // zone_sectors
    expect(dv.getUint32(76, true)).toBe(NULLB_GEOMETRY.maxOpenZones);
    expect(dv.getUint32(80, true)).toBe(NULLB_GEOMETRY.maxActiveZones);
    expect(dv.getUint32(84, true)).toBe(NULLB_GEOMETRY.maxAppendSectors);
    expect(dv.getUint32(88, true)).toBe(4096); // write_granularity (bytes)
    expect(dv.getUint8(92)).toBe(1); // host-managed
  });

  it('GET_ID returns the serial report --device prints (the device can be looked at while it is served)', async () => {
    const r = await blk.one({ type: REQ.GET_ID, sector: 0, inLens: [20] });
    expect(r.status).toBe(STATUS.OK);
    const id = Buffer.from(mem.read(r.inGpa, 20)).toString('latin1').replace(/\0+$/, '');
    const rep = await cli('report', '--device', devs.nullb, '--json', '--count', '1');
    expect(rep.code, rep.err).toBe(0);
    expect(JSON.parse(rep.out).serial).toBe(id);
  });

  it('reset-all, writes at the write pointer, reads, zeroes above it, UNALIGNED_WP off it', async () => {
    expect(await blk.mgmt(REQ.ZONE_RESET_ALL, 0)).toBe(STATUS.OK);
    const data = pattern(64 * 1024, 1);
    expect(await blk.write(seq(0), data)).toBe(STATUS.OK);
    const back = await blk.read(seq(0), 96 * 1024);
    expect(back.status).toBe(STATUS.OK);
    expect(Buffer.from(back.data.subarray(0, 64 * 1024)).equals(Buffer.from(data))).toBe(true);
    expect(back.data.subarray(64 * 1024).every((v) => v === 0)).toBe(true);
    expect(await blk.write(seq(0) + 256, pattern(4096, 2))).toBe(STATUS.UNALIGNED_WP);
    expect(await blk.write(seq(0) + 128, pattern(4096, 3))).toBe(STATUS.OK);
    expect(await blk.write(seq(0) + ZS - 8, pattern(8192, 4))).toBe(STATUS.INVALID); // across the zone end
  });

  it('guest buffers at odd addresses and in many small segments still work (bounced, not refused)', async () => {
    const s = seq(1);
    const data = pattern(16384, 7);
    const out = [blk.place(data.subarray(0, 1000), 8, 3), blk.place(data.subarray(1000, 4096), 8, 1), blk.place(data.subarray(4096), 4096, 512)];
    expect((await blk.one({ type: REQ.OUT, sector: s, out })).status).toBe(STATUS.OK);
    const back = await blk.read(s, 16384);
    expect(Buffer.from(back.data).equals(Buffer.from(data))).toBe(true);
    const log = fs.readFileSync(logFile, 'utf8');
    expect(log).not.toMatch(/"level":50/); // no error logged
  });

  it('concurrent zone appends (Linux 16-byte in-header) get distinct contiguous sectors', async () => {
    const s = seq(2);
    const datas = Array.from({ length: 24 }, (_, i) => pattern(4096 * (1 + (i % 3)), 100 + i));
    const res = await blk.run(datas.map((d) => ({ type: REQ.ZONE_APPEND, sector: s, out: [blk.place(d)] })));
    for (const r of res) expect(r.status).toBe(STATUS.OK);
    const order = res.map((r, i) => ({ sector: Number(r.appendSector), i })).sort((a, b) => a.sector - b.sector);
    let next = s;
    for (const { sector, i } of order) {
      expect(sector).toBe(next);
      const back = await blk.read(sector, datas[i].length);
      expect(Buffer.from(back.data).equals(Buffer.from(datas[i])), `append ${i}`).toBe(true);
      next += datas[i].length / 512;
    }
    const rep = await blk.report(s, 1);
    expect(rep.zones[0]).toMatchObject({ start: s, wp: BigInt(next), cond: 2 });
  });

  it('zone management and resource limits answer with the zoned status codes', async () => {
    expect(await blk.mgmt(REQ.ZONE_RESET_ALL, 0)).toBe(STATUS.OK);
    expect(await blk.mgmt(REQ.ZONE_CLOSE, seq(3))).toBe(STATUS.INVALID); // EMPTY cannot be closed
    expect(await blk.mgmt(REQ.ZONE_OPEN, 0)).toBe(STATUS.INVALID); // conventional
    for (let i = 0; i < NULLB_GEOMETRY.maxOpenZones; i++) expect(await blk.mgmt(REQ.ZONE_OPEN, seq(3 + i))).toBe(STATUS.OK);
    expect(await blk.mgmt(REQ.ZONE_OPEN, seq(20))).toBe(STATUS.OPEN_RESOURCE);
    expect(await blk.write(seq(20), pattern(4096, 1))).toBe(STATUS.OPEN_RESOURCE);
    expect(await blk.mgmt(REQ.ZONE_FINISH, seq(3))).toBe(STATUS.OK);
    expect(await blk.write(seq(3), pattern(4096, 1))).toBe(STATUS.INVALID); // full
    // Active limit: 5 explicitly open + 5 closed = 10 active.
    for (let i = 0; i < 5; i++) {
      expect(await blk.write(seq(30 + i), pattern(4096, i))).toBe(STATUS.OK);
      expect(await blk.mgmt(REQ.ZONE_CLOSE, seq(30 + i))).toBe(STATUS.OK);
    }
    expect(await blk.write(seq(40), pattern(4096, 1))).toBe(STATUS.ACTIVE_RESOURCE);
    const rep = await blk.report(seq(3), 1);
    expect(rep.zones[0]).toMatchObject({ start: seq(3), cond: 14, wp: BigInt(seq(3) + ZS), cap: CAP });
    expect(await blk.mgmt(REQ.ZONE_RESET, seq(3))).toBe(STATUS.OK);
    expect((await blk.report(seq(3), 1)).zones[0]).toMatchObject({ cond: 1, wp: BigInt(seq(3)) });
    expect(await blk.mgmt(REQ.ZONE_RESET_ALL, 0)).toBe(STATUS.OK);
  });

  it('a full zone report through the ring equals report --device (run while the daemon serves)', async () => {
    expect(await blk.write(seq(5), pattern(8192, 5))).toBe(STATUS.OK);
    expect(await blk.mgmt(REQ.ZONE_OPEN, seq(6))).toBe(STATUS.OK);
    expect(await blk.mgmt(REQ.ZONE_FINISH, seq(7))).toBe(STATUS.OK);
    const nr = Math.ceil(NULLB_GEOMETRY.capacitySectors / ZS);
    const ring = await blk.report(0, nr);
    expect(ring.zones.length).toBe(nr);
    const rep = await cli('report', '--device', devs.nullb, '--json');
    expect(rep.code, rep.err).toBe(0);
    const host = JSON.parse(rep.out).zones as Array<{ start: number; cap: number; wp: number | null; type: number; cond: number }>;
    expect(ring.zones.map((z) => ({ start: z.start, cap: z.cap, type: z.type, cond: z.cond, wp: z.type === 1 ? null : Number(z.wp) })))
      .toEqual(host.map((z) => ({ start: z.start, cap: z.cap, type: z.type, cond: z.cond, wp: z.wp })));
    expect(ring.zones[NULLB_GEOMETRY.conventionalZones + 5]).toMatchObject({ cond: 2, wp: BigInt(seq(5) + 16) });
    expect(ring.zones[NULLB_GEOMETRY.conventionalZones + 6].cond).toBe(3);
    expect(ring.zones[NULLB_GEOMETRY.conventionalZones + 7].cond).toBe(14);
  });

  it('FLUSH completes', async () => {
    expect(await blk.mgmt(REQ.FLUSH, 0)).toBe(STATUS.OK);
  });

  it('a second daemon cannot take the device while this one serves it', async () => {
    const r = await cli('serve', '--socket', path.join(dir, 'second.sock'), '--device', devs.nullb, '--no-hints', '--log-level', 'silent');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/EDEVICE: \/dev\/nullb0 is in use/);
  });
});
