// INFLIGHT_SHMFD over a real socket with the test front-end: the region the back-end creates,
// its contents while requests are in flight and after they complete, and what a second
// back-end (standing in for a restarted daemon) does with it: settle the last batch, resubmit
// the requests still in flight oldest first, and continue the avail ring after them.
import { afterEach, describe, expect, it } from 'vitest';
import { closeFd, eventfd, mmap, munmap } from '../../src/native/index.js';
import { inflightQueueStride } from '../../src/vhost-user/inflight.js';
import {
  encodeU64, encodeVringAddr, encodeVringState, ProtocolFeature, Req, type InflightDesc,
} from '../../src/vhost-user/messages.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import type { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { startRig, until, type TestRig } from '../harness/setup.js';

const bit = (n: number): bigint => 1n << BigInt(n);
const PROTOCOL = bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) |
  bit(ProtocolFeature.INFLIGHT_SHMFD);
const SIZE = 16;

/** The front-end's view of one queue region (the layout of vhost-user.rst, little-endian). */
class RegionView {
  readonly dv: DataView;
  constructor(readonly mapping: ArrayBuffer, queue: number, queueSize: number) {
    this.dv = new DataView(mapping, queue * inflightQueueStride(queueSize), inflightQueueStride(queueSize));
  }
  get version(): number { return this.dv.getUint16(8, true); }
  get descNum(): number { return this.dv.getUint16(10, true); }
  get lastBatchHead(): number { return this.dv.getUint16(12, true); }
  get usedIdx(): number { return this.dv.getUint16(14, true); }
  set usedIdx(v: number) { this.dv.setUint16(14, v, true); }
  inflight(h: number): number { return this.dv.getUint8(16 + 16 * h); }
  setInflight(h: number, v: number): void { this.dv.setUint8(16 + 16 * h, v); }
  next(h: number): number { return this.dv.getUint16(16 + 16 * h + 6, true); }
  counter(h: number): bigint { return this.dv.getBigUint64(16 + 16 * h + 8, true); }
  inflightHeads(): number[] {
    const out: number[] = [];
    for (let h = 0; h < this.descNum; h++) if (this.inflight(h)) out.push(h);
    return out;
  }
}

describe('inflight tracking (INFLIGHT_SHMFD)', () => {
  const rigs: TestRig[] = [];
  const fds: number[] = [];
  const maps: ArrayBuffer[] = [];
  const mems: GuestMemoryImage[] = [];
  const queues: DriverQueue[] = [];
  afterEach(async () => {
    // A back-end standing for a crashed daemon still holds requests: let them go first.
    for (const r of rigs) r.device.release();
    for (const r of rigs.splice(0)) await r.cleanup();
    for (const q of queues.splice(0)) q.closeFds();
    for (const m of maps.splice(0)) munmap(m);
    for (const f of fds.splice(0)) closeFd(f);
    for (const m of mems.splice(0)) m.close();
  });

  function rig(): TestRig {
    const r = startRig({ numQueues: 2 });
    rigs.push(r);
    return r;
  }

  /** Negotiates, shares memory, gets a region and hands it back, like QEMU's vhost-user-blk start. */
  async function start(r: TestRig, mem: GuestMemoryImage): Promise<{ fe: VhostUserFrontend; desc: InflightDesc; fd: number; q: DriverQueue }> {
    const fe = r.connect();
    await fe.negotiate({ protocol: PROTOCOL });
    const { desc, fd } = await fe.getInflightFd(1, SIZE);
    fds.push(fd);
    await fe.setInflightFd(desc, fd);
    await fe.setMemTable(mem);
    const q = await fe.setupQueue(mem, 0, { size: SIZE });
    queues.push(q);
    return { fe, desc, fd, q };
  }

  /** What QEMU sends to a reconnected back-end: the same region, the ring restarted at used.idx. */
  async function reconnect(r: TestRig, mem: GuestMemoryImage, desc: InflightDesc, fd: number, q: DriverQueue): Promise<VhostUserFrontend> {
    const fe = r.connect();
    await fe.negotiate({ protocol: PROTOCOL });
    await fe.setInflightFd(desc, fd);
    await fe.setMemTable(mem);
    await fe.command(Req.SET_VRING_NUM, encodeVringState(0, SIZE));
    await fe.command(Req.SET_VRING_BASE, encodeVringState(0, q.usedIdx));
    await fe.command(Req.SET_VRING_ADDR, encodeVringAddr({ index: 0, ...q.addrs }));
    closeFd(q.callFd);
    q.callFd = eventfd();
    await fe.command(Req.SET_VRING_CALL, encodeU64(0), [q.callFd]);
    closeFd(q.kickFd);
    q.kickFd = eventfd();
    await fe.command(Req.SET_VRING_KICK, encodeU64(0), [q.kickFd]);
    await fe.command(Req.SET_VRING_ENABLE, encodeVringState(0, 1));
    return fe;
  }

  function memory(): GuestMemoryImage {
    const m = GuestMemoryImage.simple(4 * 1024 * 1024);
    mems.push(m);
    return m;
  }

  function view(desc: InflightDesc, fd: number): RegionView {
    const m = mmap(fd, desc.mmapOffset, desc.mmapSize, true);
    maps.push(m);
    return new RegionView(m, 0, desc.queueSize);
  }

  /** Adds one request with a recognisable payload; returns its head. */
  function request(mem: GuestMemoryImage, q: DriverQueue, tag: number): number {
    const buf = mem.alloc(32);
    mem.write(buf, new Uint8Array(16).fill(tag));
    return q.add([{ gpa: buf, len: 16 }, { gpa: buf + 16, len: 16, write: true }]);
  }

  it('GET_INFLIGHT_FD returns a zeroed memfd of one libvhost-user-sized region per queue; refused when not negotiated', async () => {
    const r = rig();
    const fe = r.connect();
    await fe.negotiate({ protocol: PROTOCOL });
    const { desc, fd } = await fe.getInflightFd(2, 256);
    fds.push(fd);
    expect(inflightQueueStride(256)).toBe(4160); // align64(16 * 256 + 2)
    expect(desc).toEqual({ mmapSize: 2 * 4160, mmapOffset: 0, numQueues: 2, queueSize: 256 });
    const bytes = new Uint8Array(mmap(fd, 0, desc.mmapSize, true));
    maps.push(bytes.buffer as ArrayBuffer);
    // Fresh: version 0 (uninitialised); desc_num says how many entries follow.
    expect(new RegionView(bytes.buffer as ArrayBuffer, 1, 256).version).toBe(0);
    expect(new RegionView(bytes.buffer as ArrayBuffer, 1, 256).descNum).toBe(256);
    expect(bytes.filter((b, i) => b !== 0 && i % 4160 !== 10 && i % 4160 !== 11)).toHaveLength(0);
    // More queues than the device has: refused with an empty reply (the front-end fails).
    const bad = await fe.request(Req.GET_INFLIGHT_FD, new Uint8Array(24).fill(0).map((_, i) => (i === 16 ? 3 : i === 18 ? 16 : 0)));
    expect(bad!.payload.length).toBe(0);
    expect(r.errors().at(-1)!.msg).toMatch(/num_queues 3 > 2 queues/);

    const r2 = rig();
    const plain = r2.connect();
    await plain.negotiate({ protocol: PROTOCOL & ~bit(ProtocolFeature.INFLIGHT_SHMFD) });
    const refused = await plain.request(Req.GET_INFLIGHT_FD, new Uint8Array(24).map((_, i) => (i === 16 ? 1 : i === 18 ? 16 : 0)));
    expect(refused!.payload.length).toBe(0);
    expect(r2.errors().at(-1)!.msg).toMatch(/INFLIGHT_SHMFD not negotiated/);
    expect(await plain.ping()).toBeGreaterThan(0n);
  });

  it('marks heads in flight on pop with increasing counters, clears them on publish and records the batch', async () => {
    const r = rig();
    const mem = memory();
    const { desc, fd, q } = await start(r, mem);
    const region = view(desc, fd);
    expect(region.version).toBe(1); // initialised at the first start
    r.device.mode = 'hold';
    const heads = [request(mem, q, 1), request(mem, q, 2), request(mem, q, 3)];
    q.kick();
    await until(() => r.device.heldCount === 3, 2000, 'held requests');
    expect(region.inflightHeads()).toEqual([...heads].sort((a, b) => a - b));
    expect(heads.map((h) => region.counter(h))).toEqual([0n, 1n, 2n]);
    expect(region.usedIdx).toBe(0);
    // Complete two in one batch (out of order): both cleared, the batch linked from its last head.
    expect(r.device.release((h) => h !== heads[0])).toBe(2);
    await q.waitUsed(2);
    expect(region.inflightHeads()).toEqual([heads[0]]);
    expect(region.usedIdx).toBe(2);
    expect(region.lastBatchHead).toBe(heads[2]);
    expect(region.next(heads[2])).toBe(heads[1]);
    r.device.release();
    await q.waitUsed(1);
    expect(region.inflightHeads()).toEqual([]);
    expect(region.usedIdx).toBe(3);
    expect(region.lastBatchHead).toBe(heads[0]);
  });

  it('a restarted back-end resubmits what was in flight, oldest first, and continues after it (no request repeated or lost)', async () => {
    const mem = memory();
    const a = rig();
    const { desc, fd, q } = await start(a, mem);
    a.device.mode = 'hold';
    const heads = [request(mem, q, 11), request(mem, q, 12), request(mem, q, 13), request(mem, q, 14)];
    q.kick();
    await until(() => a.device.heldCount === 4, 2000, 'held requests');
    // The second one completes; then the back-end "crashes" with three in flight (it never
    // completes them: its held requests are only let go after the test).
    a.device.release((h) => h === heads[1]);
    expect((await q.waitUsed(1)).map((u) => u.id)).toEqual([heads[1]]);
    const late = request(mem, q, 15); // queued while no back-end runs

    const b = rig();
    await reconnect(b, mem, desc, fd, q);
    const used = await q.waitUsed(4);
    // Resubmitted in fetch order (counter), then the one queued meanwhile; head 12 is not repeated.
    expect(b.device.seen.map((s) => [s.head, s.readable[0]])).toEqual([[heads[0], 11], [heads[2], 13], [heads[3], 14], [late, 15]]);
    expect(used.map((u) => u.id)).toEqual([heads[0], heads[2], heads[3], late]);
    expect(used.every((u) => u.len === 16)).toBe(true);
    expect(view(desc, fd).inflightHeads()).toEqual([]);
    expect(b.lines.some((l) => l.msg === 'inflight: resuming after the requests in flight at the last stop' && l.resubmit === 3)).toBe(true);
    expect(b.errors()).toEqual([]);
  });

  it('a crash between publishing used.idx and clearing the batch: the batch is settled, not resubmitted', async () => {
    const mem = memory();
    const a = rig();
    const { desc, fd, q } = await start(a, mem);
    const region = view(desc, fd);
    a.device.mode = 'hold';
    const heads = [request(mem, q, 21), request(mem, q, 22), request(mem, q, 23)];
    q.kick();
    await until(() => a.device.heldCount === 3, 2000, 'held requests');
    a.device.release((h) => h !== heads[2]);
    await q.waitUsed(2);
    // Put back what the region held just before step "clear the batch": both still marked,
    // used_idx one batch behind used.idx.
    region.setInflight(heads[0], 1);
    region.setInflight(heads[1], 1);
    region.usedIdx = 0;

    const b = rig();
    await reconnect(b, mem, desc, fd, q);
    expect((await q.waitUsed(1)).map((u) => u.id)).toEqual([heads[2]]);
    expect(b.device.seen.map((s) => s.head)).toEqual([heads[2]]);
    expect(region.usedIdx).toBe(3);
    expect(region.inflightHeads()).toEqual([]);
  });

  it('refuses a region too small for its queues, keeps serving, and without SET_INFLIGHT_FD runs untracked', async () => {
    const r = rig();
    const mem = memory();
    const fe = r.connect();
    await fe.negotiate({ protocol: PROTOCOL });
    const { desc, fd } = await fe.getInflightFd(1, SIZE);
    fds.push(fd);
    expect(await fe.requestAck(Req.SET_INFLIGHT_FD, new Uint8Array(24).map((_, i) => (i === 0 ? 64 : i === 16 ? 1 : i === 18 ? SIZE : 0)), [fd])).toBe(1n);
    expect(r.errors().at(-1)!.msg).toMatch(/mmap_size 64 < 320 for 1 queues of 16/);
    expect(desc.mmapSize).toBe(320);
    await fe.setMemTable(mem);
    const q = await fe.setupQueue(mem, 0, { size: SIZE });
    queues.push(q);
    request(mem, q, 7);
    q.kick();
    expect((await q.waitUsed(1))[0].len).toBe(16);
  });
});
