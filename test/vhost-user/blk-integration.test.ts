// The transport with the real virtio-blk device model and a memory backend: checks the
// VirtioDevice contract end to end (chains in, status bytes and used lengths out, drain on
// GET_VRING_BASE and on disconnect) with requests framed by the test front-end.
import { afterEach, describe, expect, it } from 'vitest';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import {
  BlkRequestSlot, REQ, STATUS,
} from '../../src/testing/blk-request.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { RIG_ZONE_SECTORS, startBlkRig } from '../harness/setup.js';

const ZONE_SECTORS = RIG_ZONE_SECTORS; // 1 MiB zones

describe('vhost-user transport with the virtio-blk device', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

  async function start(numQueues = 2): Promise<{ fe: VhostUserFrontend; mem: GuestMemoryImage; qs: DriverQueue[]; server: VhostUserServer }> {
    const rig = startBlkRig({ zones: 16, numQueues });
    cleanups.push(() => rig.cleanup());
    const { fe, mem, server } = rig;
    const qs = rig.queues;
    await fe.negotiate();
    await fe.setMemTable(mem);
    for (let i = 0; i < numQueues; i++) qs.push(await fe.setupQueue(mem, i, { size: 128 }));
    return { fe, mem, qs, server };
  }

  async function run(q: DriverQueue, slot: BlkRequestSlot, r: Parameters<BlkRequestSlot['submit']>[1],
    opts: { indirect?: boolean } = {}): Promise<number> {
    return (await slot.run(q, r, opts)).len;
  }

  it('writes at the write pointer, reads back, appends, flushes, reports its id', async () => {
    const { fe, mem, qs } = await start();
    const cfg = await fe.getConfig(0, 96);
    expect(cfg.total).toBe(12 + 96);
    const slot = new BlkRequestSlot(mem, 64 * 1024, 16);
    const data = new Uint8Array(8192).map((_, i) => (i * 7 + 1) & 0xff);
    const seq = ZONE_SECTORS; // first sequential zone
    await run(qs[0], slot, { type: REQ.OUT, sector: seq, out: [data.subarray(0, 4096), data.subarray(4096)] });
    expect(slot.status).toBe(STATUS.OK);
    // Read through an indirect table on the other queue.
    const len = await run(qs[1], slot, { type: REQ.IN, sector: seq, inLens: [8192] }, { indirect: true });
    expect(slot.status).toBe(STATUS.OK);
    expect(len).toBe(8192 + 1);
    expect(slot.inData(0)).toEqual(data);
    await run(qs[0], slot, { type: REQ.ZONE_APPEND, sector: seq, out: [data.subarray(0, 4096)], tailLen: 9 });
    expect(slot.status).toBe(STATUS.OK);
    expect(slot.appendSector).toBe(seq + 16);
    await run(qs[0], slot, { type: REQ.FLUSH });
    expect(slot.status).toBe(STATUS.OK);
    await run(qs[0], slot, { type: REQ.GET_ID, inLens: [20] });
    expect(new TextDecoder().decode(slot.inData(0)).replace(/\0+$/, '')).toBe('vuzbd-memory');
  });

  it('a write off the write pointer fails with a zone status, and a malformed chain gets IOERR', async () => {
    const { mem, qs } = await start(1);
    const slot = new BlkRequestSlot(mem, 8192);
    await run(qs[0], slot, { type: REQ.OUT, sector: ZONE_SECTORS + 8, out: [new Uint8Array(4096)] });
    expect(slot.status).toBe(4); // UNALIGNED_WP
    // Status byte outside guest memory: the transport flags the chain, the device completes it.
    const hdr = mem.alloc(16);
    qs[0].add([{ gpa: hdr, len: 16 }, { gpa: 0x10, len: 1, write: true }]);
    qs[0].kick();
    const [u] = await qs[0].waitUsed(1);
    expect(u.len).toBe(0);
    await run(qs[0], slot, { type: REQ.FLUSH });
    expect(slot.status).toBe(STATUS.OK);
  });

  it('many requests in flight on several queues all complete, and GET_VRING_BASE reports them', async () => {
    const { fe, mem, qs } = await start(2);
    const slots = Array.from({ length: 32 }, () => new BlkRequestSlot(mem, 4096));
    for (const [i, s] of slots.entries()) s.submit(qs[i % 2], { type: REQ.IN, sector: (i % 16) * 8, inLens: [4096] });
    qs[0].kick();
    qs[1].kick();
    await qs[0].waitUsed(16);
    await qs[1].waitUsed(16);
    expect(slots.every((s) => s.status === STATUS.OK)).toBe(true);
    expect(await fe.getVringBase(0)).toBe(16);
    expect(await fe.getVringBase(1)).toBe(16);
  });
});
