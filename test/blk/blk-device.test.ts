// The virtio-blk device model over the real transport, driven by the test front-end: config
// space, zone reports split across descriptors, the append tail in both layouts, a driver
// that did not negotiate ZONED, write-through, malformed requests.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { BlkDevice } from '../../src/blk/blk-device.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { BlkRequestSlot, REQ, STATUS } from '../../src/testing/blk-request.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

const ZS = 2048; // 1 MiB zones
const ZONED_BIT = 1n << 17n;
const S = { IOERR: 1, UNSUPP: 2, INVALID: 3, UNALIGNED: 4 };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

interface Setup { fe: VhostUserFrontend; mem: GuestMemoryImage; q: DriverQueue; backend: Backend & { flushes?: number }; offered: bigint }

async function start(opts: { ackZoned?: boolean } = {}): Promise<Setup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vu-blkdev-'));
  const log = pino({ level: 'silent' });
  const inner = createMemoryBackend({ capacitySectors: 16 * ZS, zoneSectors: ZS, zoneCapacitySectors: ZS - 256,
    conventionalZones: 2, blockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 }, { logger: log });
  // Forward every call to the real backend (its methods keep their own `this`), counting
  // flushes to observe write-through.
  const backend: Backend & { flushes: number } = {
    flushes: 0,
    info: inner.info,
    read: (s, iov) => inner.read(s, iov),
    write: (s, iov) => inner.write(s, iov),
    append: (s, iov) => inner.append(s, iov),
    flush: () => { backend.flushes++; return inner.flush(); },
    reportZones: (s, n, sink) => inner.reportZones(s, n, sink),
    zoneMgmt: (op, s) => inner.zoneMgmt(op, s),
    close: () => inner.close(),
  };
  const device = new BlkDevice({ backend, numQueues: 1, maxQueueSize: 256, logger: log });
  const server = new VhostUserServer({ socketPath: path.join(dir, 's'), device, logger: log });
  server.listen();
  const fe = VhostUserFrontend.connect(server.socketPath);
  const mem = GuestMemoryImage.simple(8 * 1024 * 1024);
  let q: DriverQueue | undefined;
  cleanups.push(async () => {
    fe.close(); await server.close(); await inner.close(); q?.closeFds(); mem.close(); rmSync(dir, { recursive: true, force: true });
  });
  const offered = await fe.getFeatures();
  await fe.negotiate({ features: opts.ackZoned === false ? offered & ~ZONED_BIT : offered });
  await fe.setMemTable(mem);
  q = await fe.setupQueue(mem, 0, { size: 128 });
  return { fe, mem, q, backend, offered };
}

async function run(q: DriverQueue, slot: BlkRequestSlot, r: Parameters<BlkRequestSlot['submit']>[1]): Promise<number> {
  return (await slot.run(q, r)).len;
}

describe('virtio-blk device', () => {
  it('offers the zoned host-managed device and a 96-byte config space', async () => {
    const { fe, offered } = await start();
    for (const b of [32, 17, 28, 29, 6, 2, 9, 11, 12]) expect((offered >> BigInt(b)) & 1n, `feature bit ${b}`).toBe(1n);
    expect((offered >> 13n) & 1n, 'no DISCARD with host-managed').toBe(0n);
    const cfg = await fe.getConfig(0, 96);
    const dv = new DataView(cfg.data.buffer, cfg.data.byteOffset, 96);
    expect(dv.getBigUint64(0, true)).toBe(BigInt(16 * ZS));   // capacity
    expect(dv.getUint32(12, true)).toBe(254);                 // seg_max
    expect(dv.getUint32(20, true)).toBe(4096);                // blk_size
    expect(dv.getUint8(32)).toBe(1);                          // writeback
    expect(dv.getUint16(34, true)).toBe(1);                   // num_queues
    expect(dv.getUint32(72, true)).toBe(ZS);                  // zone_sectors
    expect(dv.getUint32(76, true)).toBe(4);                   // max_open_zones
    expect(dv.getUint32(80, true)).toBe(6);                   // max_active_zones
    expect(dv.getUint32(84, true)).toBe(1792);                // max_append_sectors = min(zone cap, 1 MiB)
    expect(dv.getUint32(88, true)).toBe(4096);                // write_granularity in bytes
    expect(dv.getUint8(92)).toBe(1);                          // model HM
    // UML reads each field as GET_CONFIG(offset 0, size = end of field).
    expect((await fe.getConfig(0, 93)).data.length).toBe(93);
  });

  it('fills a zone report into a buffer split across descriptors, whole descriptors only', async () => {
    const { mem, q } = await start();
    const slot = new BlkRequestSlot(mem, 8192);
    const data = new Uint8Array(4096 * 2);
    expect(await run(q, slot, { type: REQ.OUT, sector: 2 * ZS, out: [data] })).toBe(1);
    // 64-byte header + room for 3.5 descriptors, split 100 + 200 bytes: 3 zones, starting mid-zone.
    const len = await run(q, slot, { type: REQ.ZONE_REPORT, sector: 2 * ZS - 1, inLens: [100, 200] });
    expect(slot.status).toBe(STATUS.OK);
    expect(len).toBe(64 + 3 * 64 + 1);
    const rep = new Uint8Array(300);
    rep.set(slot.inData(0), 0);
    rep.set(slot.inData(1), 100);
    const dv = new DataView(rep.buffer);
    expect(dv.getBigUint64(0, true)).toBe(3n);
    const zone = (i: number) => ({
      cap: dv.getBigUint64(64 + i * 64, true), start: dv.getBigUint64(72 + i * 64, true), wp: dv.getBigUint64(80 + i * 64, true),
      type: dv.getUint8(88 + i * 64), cond: dv.getUint8(89 + i * 64),
    });
    expect(zone(0)).toEqual({ cap: BigInt(ZS), start: BigInt(ZS), wp: BigInt(2 * ZS), type: 1, cond: 0 });
    expect(zone(1)).toEqual({ cap: BigInt(ZS - 256), start: BigInt(2 * ZS), wp: BigInt(2 * ZS + 16), type: 2, cond: 2 });
    expect(zone(2)).toEqual({ cap: BigInt(ZS - 256), start: BigInt(3 * ZS), wp: BigInt(3 * ZS), type: 2, cond: 1 });
    // The reserved bytes stay zero; the fourth, partial descriptor slot is untouched by the count.
    expect(rep.subarray(8, 64).every((b) => b === 0)).toBe(true);
    // Last zone: nr_zones stops at the end of the disk.
    await run(q, slot, { type: REQ.ZONE_REPORT, sector: 15 * ZS, inLens: [4096] });
    expect(new DataView(slot.inData(0).buffer, slot.inData(0).byteOffset).getBigUint64(0, true)).toBe(1n);
    // Too small for the header: ZONE_INVALID_CMD; beyond capacity: ZONE_INVALID_CMD.
    await run(q, slot, { type: REQ.ZONE_REPORT, sector: 0, inLens: [32] });
    expect(slot.status).toBe(S.INVALID);
    await run(q, slot, { type: REQ.ZONE_REPORT, sector: 16 * ZS, inLens: [4096] });
    expect(slot.status).toBe(S.INVALID);
  });

  it('zone append answers in the 9-byte spec tail and in Linux\'s 16-byte in-header', async () => {
    const { mem, q } = await start();
    const slot = new BlkRequestSlot(mem, 8192);
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 3 * ZS, out: [new Uint8Array(4096)], tailLen: 9 });
    expect([slot.status, slot.appendSector]).toEqual([STATUS.OK, 3 * ZS]);
    const len = await run(q, slot, { type: REQ.ZONE_APPEND, sector: 3 * ZS, out: [new Uint8Array(8192)], tailLen: 16 });
    expect([slot.status, slot.appendSector, len]).toEqual([STATUS.OK, 3 * ZS + 8, 16]);
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 3 * ZS + 8, out: [new Uint8Array(4096)], tailLen: 9 });
    expect(slot.status, 'append not at the zone start').toBe(S.INVALID);
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 0, out: [new Uint8Array(4096)], tailLen: 9 });
    expect(slot.status, 'append to a conventional zone').toBe(S.INVALID);
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 3 * ZS, out: [new Uint8Array(4096)], tailLen: 8 });
    expect(slot.status, 'tail too short for the sector').toBe(S.IOERR);
  });

  it('a driver that did not negotiate ZONED gets UNSUPP for zone commands and IOERR for zone violations', async () => {
    const { mem, q } = await start({ ackZoned: false });
    const slot = new BlkRequestSlot(mem, 8192);
    await run(q, slot, { type: REQ.ZONE_REPORT, sector: 0, inLens: [4096] });
    expect(slot.status).toBe(S.UNSUPP);
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 2 * ZS, out: [new Uint8Array(4096)], tailLen: 9 });
    expect(slot.status).toBe(S.UNSUPP);
    await run(q, slot, { type: REQ.ZONE_RESET, sector: 2 * ZS });
    expect(slot.status).toBe(S.UNSUPP);
    // A write off the write pointer is still refused, with the status this driver knows.
    await run(q, slot, { type: REQ.OUT, sector: 2 * ZS + 8, out: [new Uint8Array(4096)] });
    expect(slot.status).toBe(S.IOERR);
    await run(q, slot, { type: REQ.OUT, sector: 2 * ZS, out: [new Uint8Array(4096)] });
    expect(slot.status).toBe(STATUS.OK);
  });

  it('flushes every write while the guest has the write cache disabled', async () => {
    const { fe, mem, q, backend } = await start();
    const slot = new BlkRequestSlot(mem, 8192);
    await run(q, slot, { type: REQ.OUT, sector: 0, out: [new Uint8Array(4096)] });
    expect(backend.flushes).toBe(0);
    await fe.setConfig(32, new Uint8Array([0]));
    expect((await fe.getConfig(0, 96)).data[32]).toBe(0);
    await run(q, slot, { type: REQ.OUT, sector: 8, out: [new Uint8Array(4096)] });
    await run(q, slot, { type: REQ.ZONE_APPEND, sector: 2 * ZS, out: [new Uint8Array(4096)], tailLen: 9 });
    expect(backend.flushes).toBe(2);
  });

  it('refuses malformed requests with IOERR and keeps serving', async () => {
    const { mem, q } = await start();
    const slot = new BlkRequestSlot(mem, 8192);
    await run(q, slot, { type: REQ.OUT, sector: 0, out: [new Uint8Array(1000)] });
    expect(slot.status, 'data not a multiple of 512').toBe(S.IOERR);
    await run(q, slot, { type: REQ.IN, sector: 16 * ZS - 1, inLens: [4096] });
    expect(slot.status, 'read past the end').toBe(S.IOERR);
    await run(q, slot, { type: 99, sector: 0 });
    expect(slot.status, 'unknown type').toBe(S.UNSUPP);
    await run(q, slot, { type: REQ.IN, sector: 0, inLens: [4096] });
    expect(slot.status).toBe(STATUS.OK);
  });
});
