// End-to-end tests of the back-end over a real Unix socket with the TypeScript front-end.
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closeFd, eventfd, listenUnix, readCounter, recvMsg, socketpair } from '../../src/native/index.js';
import {
  encodeConfig, encodeMemRegionMsg, encodeMemTable, encodeMessage, encodeU64, encodeVringAddr, encodeVringState, F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY, ProtocolFeature, Req, VERSION, VRING_NOFD,
} from '../../src/vhost-user/messages.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { ECHO_CONFIG_SIZE, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../harness/echo-device.js';
import type { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { captureLogger } from '../harness/log-capture.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { startRig, until, type TestRig } from '../harness/setup.js';

const bit = (n: number): bigint => 1n << BigInt(n);
const ALL_PROTOCOL = bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) |
  bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) | bit(ProtocolFeature.BACKEND_REQ) |
  bit(ProtocolFeature.INFLIGHT_SHMFD);

/** Open fds of the kinds the transport handles (sockets, eventfds, memfds); the runtime's own
 * pipes and lazily opened files would make a plain count flaky. */
function openFds(): number {
  let n = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    let target: string;
    try { target = readlinkSync(`/proc/self/fd/${f}`); } catch { continue; }
    if (/^socket:|^anon_inode:\[eventfd\]|^\/memfd:/.test(target)) n++;
  }
  return n;
}

describe('vhost-user back-end', () => {
  let rig: TestRig;
  const mems: GuestMemoryImage[] = [];
  const queues: DriverQueue[] = [];
  afterEach(async () => {
    await rig?.cleanup();
    rig = undefined as unknown as TestRig; // session() starts a fresh rig per test
    for (const q of queues.splice(0)) q.closeFds();
    for (const m of mems.splice(0)) m.close();
  });

  function memory(size = 8 * 1024 * 1024): GuestMemoryImage {
    const m = GuestMemoryImage.simple(size);
    mems.push(m);
    return m;
  }

  async function session(opts: { numQueues?: number; size?: number; protocol?: bigint; features?: bigint;
    call?: 'eventfd' | 'socketpair' | 'none' } = {}): Promise<{ fe: VhostUserFrontend; mem: GuestMemoryImage; qs: DriverQueue[] }> {
    rig ??= startRig({ numQueues: opts.numQueues ?? 1 });
    const fe = rig.connect();
    await fe.negotiate({ protocol: opts.protocol ?? ALL_PROTOCOL, features: opts.features });
    const mem = memory();
    await fe.setMemTable(mem);
    const qs: DriverQueue[] = [];
    for (let i = 0; i < (opts.numQueues ?? 1); i++) {
      qs.push(await fe.setupQueue(mem, i, { size: opts.size ?? 64, call: opts.call }));
    }
    queues.push(...qs);
    return { fe, mem, qs };
  }

  /** One echo round trip on q: returns the bytes the device wrote back. */
  async function echo(mem: GuestMemoryImage, q: DriverQueue, data: Uint8Array, opts: { indirect?: boolean } = {}): Promise<Uint8Array> {
    const src = mem.alloc(data.length);
    mem.write(src, data);
    const dst = mem.alloc(data.length);
    const head = q.add([{ gpa: src, len: data.length }, { gpa: dst, len: data.length, write: true }], opts);
    q.kick();
    const used = await q.waitUsed(1);
    expect(used).toEqual([{ id: head, len: data.length }]);
    return mem.read(dst, data.length);
  }

  const pattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * seed + seed) & 0xff);

  describe('happy paths', () => {
    it('negotiates features and protocol features', async () => {
      rig = startRig({ numQueues: 3 });
      const fe = rig.connect();
      const f = await fe.getFeatures();
      expect(f).toBe(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX | F_PROTOCOL_FEATURES);
      expect(await fe.getProtocolFeatures()).toBe(ALL_PROTOCOL);
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      await fe.command(Req.SET_OWNER);
      expect(await fe.getQueueNum()).toBe(3n);
      expect(await fe.getMaxMemSlots()).toBe(509n);
      await fe.command(Req.SET_FEATURES, encodeU64(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | F_PROTOCOL_FEATURES));
      // The device sees the virtio bits, not the vhost-user bit 30.
      expect(rig.device.driverFeatures).toBe(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
      expect(rig.server.connection!.negotiatedProtocolFeatures).toBe(ALL_PROTOCOL);
      expect(rig.errors()).toEqual([]);
      // Debug level traces every message by name, with the connection in the context.
      const traced = rig.lines.filter((l) => l.level === 20 && l.msg === 'message');
      expect(traced.map((l) => l.req)).toEqual(['GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'SET_PROTOCOL_FEATURES',
        'SET_OWNER', 'GET_QUEUE_NUM', 'GET_MAX_MEM_SLOTS', 'SET_FEATURES']);
      expect(traced.every((l) => l.conn === 1)).toBe(true);
    });

    it('serves requests on a ring set up QEMU-style (direct and indirect chains)', async () => {
      const { mem, qs } = await session();
      expect(await echo(mem, qs[0], pattern(4096, 3))).toEqual(pattern(4096, 3));
      expect(await echo(mem, qs[0], pattern(777, 5), { indirect: true })).toEqual(pattern(777, 5));
      expect(rig.errors()).toEqual([]);
    });

    it('answers NEED_REPLY with a zero ack when REPLY_ACK is negotiated, and not otherwise', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      expect(await fe.requestAck(Req.SET_OWNER)).toBe(0n);
      expect(await fe.requestAck(Req.SET_VRING_NUM, encodeVringState(0, 128))).toBe(0n);
      // Own-reply messages do not get an extra ack.
      const r = await fe.request(Req.GET_FEATURES, undefined, { needReply: true });
      expect(r!.payload.length).toBe(8);
      expect(await fe.quietFor(50)).toBe(true);
      await fe.setProtocolFeatures(0n);
      fe.send(Req.SET_VRING_NUM, encodeVringState(0, 64), { needReply: true });
      expect(await fe.quietFor(50)).toBe(true);
      await fe.ping();
    });

    it('GET_CONFIG replies exactly 12+size bytes for UML-style reads (offset 0, size N)', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      for (let n = 1; n <= 100; n++) {
        const r = await fe.getConfig(0, n);
        expect(r.total).toBe(12 + n);
        expect(r.size).toBe(n);
        expect(r.offset).toBe(0);
        const want = new Uint8Array(n);
        want.set(rig.device.config.subarray(0, Math.min(n, ECHO_CONFIG_SIZE)));
        expect(r.data).toEqual(want);
      }
      const mid = await fe.getConfig(10, 8);
      expect(mid.data).toEqual(rig.device.config.slice(10, 18));
      const full = await fe.getConfig(0, 256);
      expect(full.total).toBe(268);
    });

    it('SET_CONFIG reaches the device', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      await fe.setConfig(40, Uint8Array.of(1, 2, 3));
      expect(Array.from(rig.device.config.subarray(40, 43))).toEqual([1, 2, 3]);
      expect((await fe.getConfig(40, 3)).data).toEqual(Uint8Array.of(1, 2, 3));
    });

    it('serves a UML-style session: 72-byte table, guest == user address, socketpair call fd, queue 256', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.command(Req.SET_OWNER);
      const f = await fe.getFeatures();
      const p = await fe.getProtocolFeatures();
      await fe.setProtocolFeatures(p & (bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG)));
      await fe.command(Req.SET_FEATURES, encodeU64(f));
      const mem = new GuestMemoryImage([{ guestPhysAddr: 0x6000_0000, userAddr: 0x6000_0000, size: 8 * 1024 * 1024 }]);
      mems.push(mem);
      await fe.setMemTable(mem, { fixedSize: 72 });
      const q = await fe.setupQueue(mem, 0, { size: 256, call: 'socketpair' });
      queues.push(q);
      expect(await echo(mem, q, pattern(512, 9))).toEqual(pattern(512, 9));
      // The call arrives as an 8-byte message on the stream socket.
      await until(() => q.collectCalls() > 0, 2000, 'call on socketpair');
      expect(rig.errors()).toEqual([]);
    });

    it('GET_VRING_BASE waits for in-flight requests, then returns the next avail index', async () => {
      const { fe, mem, qs } = await session();
      const q = qs[0];
      await echo(mem, q, pattern(16, 1));
      rig.device.mode = 'hold';
      const buf = mem.alloc(64);
      for (let i = 0; i < 3; i++) q.add([{ gpa: buf, len: 16 }, { gpa: buf + 16, len: 16, write: true }]);
      q.kick();
      await until(() => rig.device.heldCount === 3, 2000, 'held requests');
      const base = fe.getVringBase(0);
      let replied = false;
      void base.then(() => { replied = true; });
      await new Promise((r) => setTimeout(r, 100));
      expect(replied).toBe(false);
      // Later messages wait behind it (strict order).
      const features = fe.getFeatures();
      expect(rig.device.release()).toBe(3);
      expect(await base).toBe(4);
      expect(await features).toBeGreaterThan(0n);
      expect(q.usedIdx).toBe(4); // completions were published before the reply
      // The ring is stopped: a new request is not processed until restarted.
      rig.device.mode = 'immediate';
      q.add([{ gpa: buf, len: 16 }]);
      q.kick();
      expect(await fe.quietFor(50)).toBe(true);
      expect(q.usedIdx).toBe(4);
      // Restart like QEMU: base, addr, new kick fd → the waiting request is served.
      await fe.command(Req.SET_VRING_BASE, encodeVringState(0, 4));
      await fe.command(Req.SET_VRING_ADDR, encodeVringAddr({ index: 0, ...q.addrs }));
      closeFd(q.kickFd);
      q.kickFd = eventfd();
      await fe.command(Req.SET_VRING_KICK, encodeU64(0), [q.kickFd]);
      await q.waitUsed(4); // 3 released + the one queued while stopped
      expect(q.usedIdx).toBe(5);
    });

    it('processes requests queued before the kick fd was set', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.negotiate({ protocol: ALL_PROTOCOL });
      const mem = memory();
      await fe.setMemTable(mem);
      const q = await fe.setupQueue(mem, 0, { size: 16, enable: false });
      queues.push(q);
      const b = mem.alloc(32);
      q.add([{ gpa: b, len: 16 }, { gpa: b + 16, len: 16, write: true }]);
      // Disabled: nothing happens even when kicked.
      q.kick();
      await new Promise((r) => setTimeout(r, 30));
      expect(q.usedIdx).toBe(0);
      await fe.command(Req.SET_VRING_ENABLE, encodeVringState(0, 1));
      await q.waitUsed(1);
    });

    it('enables rings at SET_FEATURES when bit 30 is not acked', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.command(Req.SET_OWNER);
      await fe.command(Req.SET_FEATURES, encodeU64(VIRTIO_F_VERSION_1));
      const mem = memory();
      await fe.setMemTable(mem);
      const q = await fe.setupQueue(mem, 0, { size: 16, enable: false });
      queues.push(q);
      expect(await echo(mem, q, pattern(64, 2))).toEqual(pattern(64, 2));
    });

    it('SET_VRING_CALL replaces and closes the previous call fd; NOFD stops calls', async () => {
      const { fe, mem, qs } = await session();
      const q = qs[0];
      const before = openFds();
      const fresh = eventfd();
      await fe.command(Req.SET_VRING_CALL, encodeU64(0), [fresh]);
      // +1 for `fresh` on our side; the back-end closed its old call fd and holds one copy of fresh.
      expect(openFds()).toBe(before + 1);
      await echo(mem, q, pattern(8, 1));
      await until(() => readCounter(fresh) > 0, 2000, 'call on the new fd');
      expect(q.collectCalls()).toBe(0); // the old one is not used any more
      await fe.command(Req.SET_VRING_CALL, encodeU64(VRING_NOFD));
      expect(openFds()).toBe(before);
      await echo(mem, q, pattern(8, 1));
      expect(readCounter(fresh)).toBe(0);
      closeFd(fresh);
    });

    it('SET_VRING_ERR fd is signalled when a guest bug stops the queue', async () => {
      const { fe, mem, qs } = await session();
      const err = eventfd();
      await fe.command(Req.SET_VRING_ERR, encodeU64(0), [err]);
      qs[0].setAvailIdx(1000);
      qs[0].kick();
      await until(() => readCounter(err) > 0, 2000, 'err fd');
      expect(rig.errors().some((l) => /queue stopped/.test(l.msg))).toBe(true);
      // The session goes on; a restart with a sane base recovers the queue.
      await fe.ping();
      await fe.getVringBase(0);
      qs[0].setAvailIdx(0);
      await fe.command(Req.SET_VRING_BASE, encodeVringState(0, 0));
      closeFd(qs[0].kickFd);
      qs[0].kickFd = eventfd();
      await fe.command(Req.SET_VRING_KICK, encodeU64(0), [qs[0].kickFd]);
      expect(await echo(mem, qs[0], pattern(8, 4))).toEqual(pattern(8, 4));
      closeFd(err);
    });

    it('ADD_MEM_REG / REM_MEM_REG build and shrink the table', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.negotiate({ protocol: ALL_PROTOCOL });
      const mem = new GuestMemoryImage([
        { guestPhysAddr: 0x1_0000_0000, userAddr: 0x7f00_0000_0000, size: 4 * 1024 * 1024 },
        { guestPhysAddr: 0x1_0040_0000, userAddr: 0x7f10_0000_0000, size: 4 * 1024 * 1024 },
      ]);
      mems.push(mem);
      for (const r of mem.regions) await fe.addMemReg(r, r.fd);
      expect(rig.server.connection!.memory.regions).toHaveLength(2);
      const q = await fe.setupQueue(mem, 0, { size: 16 });
      queues.push(q);
      // A buffer spanning both regions (separate memfds) echoes intact.
      const start = 0x1_0040_0000 - 1000;
      mem.write(start, pattern(3000, 11));
      const dst = mem.alloc(3000);
      q.add([{ gpa: start, len: 3000 }, { gpa: dst, len: 3000, write: true }]);
      q.kick();
      await q.waitUsed(1);
      expect(mem.read(dst, 3000)).toEqual(pattern(3000, 11));
      const seen = rig.device.seen.at(-1)!;
      expect(seen.readableViews).toBe(2);
      // Removing a region no ring lives in; unknown regions are refused.
      const second = mem.descs[1];
      expect(await fe.requestAck(Req.REM_MEM_REG, encodeMemRegionMsg({ ...second, size: 4096 }))).toBe(1n);
      await fe.remMemReg(second);
      expect(rig.server.connection!.memory.regions).toHaveLength(1);
      // Buffers in the removed region now fail as malformed chains, the ring keeps going.
      q.add([{ gpa: 0x1_0040_0000 + 100, len: 10 }]);
      q.kick();
      await q.waitUsed(1);
      expect(rig.device.seen.at(-1)!.error).toMatch(/outside guest memory/);
      expect(await echo(mem, q, pattern(100, 6))).toEqual(pattern(100, 6));
    });

    it('maps two regions of one memfd (QEMU RAM split below/above 4 GiB)', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.negotiate({ protocol: ALL_PROTOCOL });
      const mem = new GuestMemoryImage([
        { guestPhysAddr: 0, userAddr: 0x7f00_0000_0000, size: 2 * 1024 * 1024 },
        { guestPhysAddr: 0x1_0000_0000, userAddr: 0x7f00_0020_0000, size: 4 * 1024 * 1024 },
      ], { shareFd: true });
      mems.push(mem);
      expect(mem.fds[0]).toBe(mem.fds[1]);
      await fe.setMemTable(mem);
      const q = await fe.setupQueue(mem, 0, { size: 32 }); // rings in the low region
      queues.push(q);
      mem.alloc(2 * 1024 * 1024); // move the allocator into the high region
      const src = mem.alloc(4096);
      expect(src).toBeGreaterThanOrEqual(0x1_0000_0000);
      expect(await echo(mem, q, pattern(4096, 29))).toEqual(pattern(4096, 29));
      // Guest address 0 is valid memory here: a descriptor pointing there is served.
      mem.write(0x100, pattern(16, 3));
      const dst = mem.alloc(16);
      q.add([{ gpa: 0x100, len: 16 }, { gpa: dst, len: 16, write: true }]);
      q.kick();
      await q.waitUsed(1);
      expect(mem.read(dst, 16)).toEqual(pattern(16, 3));
    });

    it('SET_MEM_TABLE can replace the table while rings run', async () => {
      const { fe, mem, qs } = await session();
      await echo(mem, qs[0], pattern(10, 1));
      await fe.setMemTable(mem); // same regions, new mappings: rings re-resolve
      expect(await echo(mem, qs[0], pattern(10, 2))).toEqual(pattern(10, 2));
      expect(rig.errors()).toEqual([]);
    });

    it('keeps a replaced table mapped until requests popped before the change complete', async () => {
      const { fe, mem, qs } = await session();
      const conn = rig.server.connection!;
      const oldRegion = conn.memory.regions[0];
      rig.device.mode = 'hold';
      const src = mem.alloc(64);
      mem.write(src, pattern(64, 21));
      const dst = mem.alloc(64);
      qs[0].add([{ gpa: src, len: 64 }, { gpa: dst, len: 64, write: true }]);
      qs[0].kick();
      await until(() => rig.device.heldCount === 1, 2000, 'held request');
      await fe.setMemTable(mem); // hot-plug style replacement while the request is in flight
      // (Boolean compare: formatting a region with its 8 MiB views would take seconds.)
      expect(conn.memory.regions[0] === oldRegion).toBe(false);
      expect(oldRegion.isMapped).toBe(true); // the held request's views still point into it
      rig.device.release();
      await qs[0].waitUsed(1);
      expect(mem.read(dst, 64)).toEqual(pattern(64, 21));
      await until(() => !oldRegion.isMapped, 2000, 'old mapping released');
      rig.device.mode = 'immediate';
      expect(await echo(mem, qs[0], pattern(32, 22))).toEqual(pattern(32, 22));
    });

    it('RESET_DEVICE stops rings and resets the device; the session can start again', async () => {
      const { fe, mem, qs } = await session();
      await echo(mem, qs[0], pattern(10, 1));
      await fe.command(Req.RESET_DEVICE);
      expect(rig.device.resets).toBe(1);
      qs[0].add([{ gpa: mem.alloc(8), len: 8 }]);
      qs[0].kick();
      await new Promise((r) => setTimeout(r, 30));
      expect(qs[0].usedIdx).toBe(1);
      await fe.command(Req.SET_FEATURES, encodeU64(VIRTIO_F_VERSION_1 | F_PROTOCOL_FEATURES));
      const q2 = await fe.setupQueue(mem, 0, { size: 32 });
      queues.push(q2);
      expect(await echo(mem, q2, pattern(10, 3))).toEqual(pattern(10, 3));
    });

    it('SET_BACKEND_REQ_FD keeps the channel and CONFIG_CHANGE_MSG goes out on it', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      expect(await fe.ping()).toBeGreaterThan(0n); // session accepted: its fds exist
      expect(rig.server.notifyConfigChanged()).toBe(false); // no channel yet
      const before = openFds();
      const [ours, theirs] = socketpair();
      await fe.command(Req.SET_BACKEND_REQ_FD, undefined, [theirs]);
      closeFd(theirs);
      expect(openFds()).toBe(before + 2); // ours + the back-end's copy of theirs
      expect(rig.server.notifyConfigChanged()).toBe(true);
      const buf = new Uint8Array(64);
      const n = recvMsg(ours, buf, new Int32Array(4));
      expect(n).toBe(12);
      expect(Array.from(buf.subarray(0, 12))).toEqual([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
      // Replacing the channel closes the old copy; the session end closes the last one.
      const [ours2, theirs2] = socketpair();
      await fe.command(Req.SET_BACKEND_REQ_FD, undefined, [theirs2]);
      closeFd(theirs2);
      expect(openFds()).toBe(before + 3); // ours, ours2, the back-end's copy of theirs2
      const gone = new Promise((r) => rig.server.once('disconnect', r));
      fe.close();
      await gone;
      closeFd(ours);
      closeFd(ours2);
      expect(openFds()).toBe(before - 2); // both ends of the session socket are gone too
    });

    it('RESET_OWNER is handled like a device reset', async () => {
      const { fe, mem, qs } = await session();
      await echo(mem, qs[0], pattern(10, 1));
      await fe.command(Req.RESET_OWNER);
      expect(rig.device.resets).toBe(1);
      await fe.ping();
    });
  });

  describe('malformed messages are refused and the session goes on', () => {
    async function rejected(fe: VhostUserFrontend, request: number, payload?: Uint8Array, fds?: number[]): Promise<void> {
      const errors = rig.errors().length;
      expect(await fe.requestAck(request, payload, fds)).toBe(1n);
      expect(rig.errors().length).toBe(errors + 1);
      expect(await fe.ping()).toBeGreaterThan(0n);
    }

    it('bad sizes, unknown requests, bad values', async () => {
      rig = startRig({ numQueues: 2 });
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      await rejected(fe, Req.SET_VRING_NUM, new Uint8Array(4));
      await rejected(fe, Req.SET_FEATURES, new Uint8Array(9));
      await rejected(fe, Req.SET_VRING_ADDR, new Uint8Array(39));
      await rejected(fe, Req.SET_OWNER, new Uint8Array(8));
      await rejected(fe, 99);
      await rejected(fe, Req.SET_LOG_BASE, new Uint8Array(8));
      await rejected(fe, Req.SET_VRING_NUM, encodeVringState(0, 100));
      await rejected(fe, Req.SET_VRING_NUM, encodeVringState(0, 512)); // above maxQueueSize 256
      await rejected(fe, Req.SET_VRING_NUM, encodeVringState(2, 64)); // no queue 2
      await rejected(fe, Req.SET_VRING_BASE, encodeVringState(0, 0x10000));
      await rejected(fe, Req.SET_VRING_ENABLE, encodeVringState(0, 2));
      await rejected(fe, Req.SET_FEATURES, encodeU64(1n << 40n));
      await rejected(fe, Req.SET_PROTOCOL_FEATURES, encodeU64(bit(ProtocolFeature.INBAND_NOTIFICATIONS)));
      await rejected(fe, Req.SET_CONFIG, encodeConfig(250, 10, 0));
      await rejected(fe, Req.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 1, desc: 0, used: 0, avail: 0 }));
      // Kick on a ring that has no size/addresses yet.
      const e = eventfd();
      await rejected(fe, Req.SET_VRING_KICK, encodeU64(0), [e]);
      await rejected(fe, Req.SET_VRING_KICK, encodeU64(VRING_NOFD));
      closeFd(e);
      // Unknown request without NEED_REPLY: logged, no reply, next message served.
      fe.send(77);
      expect(await fe.ping()).toBeGreaterThan(0n);
      // Wrong header version.
      fe.send(Req.SET_OWNER, undefined, { flags: 2 | FLAG_NEED_REPLY });
      const r = await fe.nextReply();
      expect(r!.flags).toBe(5);
      expect(new DataView(r!.payload.buffer).getBigUint64(0, true)).toBe(1n);
    });

    it('refuses a ring whose used area is not 4-byte aligned, naming it, and keeps serving', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.negotiate({ protocol: ALL_PROTOCOL });
      const mem = memory();
      await fe.setMemTable(mem);
      const desc = mem.gpaToUva(mem.alloc(16 * 16, 16));
      const avail = mem.gpaToUva(mem.alloc(6 + 2 * 16, 2));
      const used = mem.gpaToUva(mem.alloc(6 + 8 * 16 + 2, 4)) + 2;
      await fe.command(Req.SET_VRING_NUM, encodeVringState(0, 16));
      await fe.command(Req.SET_VRING_BASE, encodeVringState(0, 0));
      await fe.command(Req.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, desc, avail, used }));
      const e = eventfd();
      await rejected(fe, Req.SET_VRING_KICK, encodeU64(0), [e]);
      closeFd(e);
      expect(JSON.stringify(rig.errors().at(-1))).toContain(`used ring at 0x${used.toString(16)} is not 4-byte aligned`);
    });

    it('own-reply requests that fail get an empty reply instead of none', async () => {
      rig = startRig();
      const fe = rig.connect();
      const r = await fe.request(Req.GET_CONFIG, encodeConfig(0, 300, 0).subarray(0, 12));
      expect(r!.payload.length).toBe(0);
      const r2 = await fe.request(Req.GET_VRING_BASE, encodeVringState(5, 0));
      expect(r2!.payload.length).toBe(0);
      await fe.ping();
    });

    it('closes fds that arrive with a message it rejects', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      await fe.ping();
      const before = openFds();
      const a = eventfd();
      const b = eventfd();
      // fds on a message that takes none
      const r = await fe.request(Req.GET_FEATURES, undefined, { fds: [a, b] });
      expect(r!.payload.length).toBe(0);
      // fd with NOFD
      expect(await fe.requestAck(Req.SET_VRING_CALL, encodeU64(VRING_NOFD), [a])).toBe(1n);
      // wrong fd count for the table
      const mem = memory(1024 * 1024);
      expect(await fe.requestAck(Req.SET_MEM_TABLE, encodeMemTable(mem.descs), [a, b])).toBe(1n);
      // 9 regions
      expect(await fe.requestAck(Req.SET_MEM_TABLE, encodeMemTable(Array(9).fill(mem.descs[0])), [a, b, a, b, a, b, a, b])).toBe(1n);
      // unknown request with an fd
      expect(await fe.requestAck(123, undefined, [a])).toBe(1n);
      closeFd(a);
      closeFd(b);
      // memfd of `mem` is ours: +1. Everything the back-end received was closed.
      expect(openFds()).toBe(before + 1);
    });

    it('reassembles a message that arrives in pieces, with fds on the first byte', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.setProtocolFeatures(ALL_PROTOCOL);
      const mem = memory(1024 * 1024);
      const bytes = encodeMessage(Req.SET_MEM_TABLE, VERSION | FLAG_NEED_REPLY, encodeMemTable(mem.descs));
      fe.sendRaw(bytes.subarray(0, 1), mem.fds);
      for (let i = 1; i < bytes.length; i += 7) {
        await new Promise((r) => setTimeout(r, 2));
        fe.sendRaw(bytes.subarray(i, Math.min(i + 7, bytes.length)));
      }
      const r = await fe.nextReply();
      expect(new DataView(r!.payload.buffer).getBigUint64(0, true)).toBe(0n);
      expect(rig.server.connection!.memory.regions).toHaveLength(1);
    });

    it('drops a front-end whose header announces an absurd size, then accepts the next one', async () => {
      rig = startRig();
      const fe = rig.connect();
      const h = encodeMessage(Req.SET_FEATURES, VERSION, undefined, 1 << 24);
      fe.sendRaw(h);
      expect(await fe.nextReply(2000)).toBeNull();
      const fe2 = rig.connect();
      expect(await fe2.ping()).toBeGreaterThan(0n);
    });
  });

  describe('rings', () => {
    it('keeps queues independent (4 queues, one broken)', async () => {
      const { mem, qs } = await session({ numQueues: 4, size: 32 });
      const err = rig.errors().length;
      qs[2].setAvailIdx(500); // guest bug on queue 2 only
      qs[2].kick();
      const results = await Promise.all(qs.filter((_, i) => i !== 2).map(async (q, j) => {
        const out: Uint8Array[] = [];
        for (let k = 0; k < 5; k++) out.push(await echo(mem, q, pattern(100 + j, 17 + j * 5 + k)));
        return out;
      }));
      results.forEach((out, j) => out.forEach((o, k) => expect(o).toEqual(pattern(100 + j, 17 + j * 5 + k))));
      const conn = rig.server.connection!;
      expect(conn.vrings[2].ring!.broken).toMatch(/avail idx jumped/);
      for (const i of [0, 1, 3]) {
        expect(conn.vrings[i].ring!.broken).toBeNull();
        expect(conn.vrings[i].ring!.stats.pushed).toBe(5);
      }
      expect(rig.device.seen.filter((s) => s.queue === 2)).toHaveLength(0);
      expect(rig.errors().length).toBe(err + 1);
      // The error line names the connection and the queue.
      expect(rig.errors().at(-1)).toMatchObject({ conn: 1, queue: 2, msg: 'guest bug: queue stopped' });
    });

    it('EVENT_IDX suppresses calls the guest did not ask for', async () => {
      const { mem, qs } = await session({ size: 64 });
      const q = qs[0];
      await echo(mem, q, pattern(8, 1)); // first completion always signals
      q.collectCalls();
      q.setUsedEvent(q.usedIdx + 5);
      for (let i = 0; i < 8; i++) await echo(mem, q, pattern(8, i));
      const ring = rig.server.connection!.vrings[0].ring!;
      expect(q.collectCalls()).toBe(1);
      expect(ring.stats.suppressed).toBe(7);
      // The device asked to be kicked at the next avail entry.
      expect(q.availEvent).toBe(q.availIdx);
    });

    it('hostile chains over the socket complete with errors and leave guard memory intact', async () => {
      rig = startRig();
      const fe = rig.connect();
      await fe.negotiate({ protocol: ALL_PROTOCOL });
      const mem = new GuestMemoryImage([{ guestPhysAddr: 0x1_0000_0000, userAddr: 0x7f00_0000_0000,
        size: 1024 * 1024, mmapOffset: 65536, guardAfter: 65536 }]);
      mems.push(mem);
      await fe.setMemTable(mem);
      const q = await fe.setupQueue(mem, 0, { size: 16 });
      queues.push(q);
      const end = 0x1_0000_0000 + 1024 * 1024;
      q.writeDesc(0, end - 8, 4096, 2, 0); // writable past the end into the guard
      q.publish(0);
      q.writeDesc(1, 0x1_0000_0000 - 4096, 4096, 2, 0); // writable before the start
      q.publish(1);
      q.writeDesc(2, end - 4096, 4096, 1 | 2, 2); // self loop
      q.publish(2);
      q.kick();
      const used = await q.waitUsed(3);
      expect(used.map((u) => u.len)).toEqual([0, 0, 0]);
      expect(rig.device.seen.map((s) => s.error !== null)).toEqual([true, true, true]);
      expect(mem.guardsIntact()).toBe(true);
      expect(await echo(mem, q, pattern(32, 8))).toEqual(pattern(32, 8));
    });
  });

  describe('connection lifecycle', () => {
    it('on disconnect waits for in-flight requests, unmaps, resets, and serves the next front-end', async () => {
      const { fe, mem, qs } = await session();
      rig.device.mode = 'hold';
      const b = mem.alloc(64);
      qs[0].add([{ gpa: b, len: 8 }, { gpa: b + 8, len: 8, write: true }]);
      qs[0].kick();
      await until(() => rig.device.heldCount === 1, 2000, 'held request');
      let disconnected = false;
      rig.server.once('disconnect', () => { disconnected = true; });
      const conn = rig.server.connection!;
      fe.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(disconnected).toBe(false); // still draining
      expect(rig.device.resets).toBe(0);
      rig.device.release();
      await until(() => disconnected, 2000, 'disconnect');
      expect(rig.device.resets).toBe(1);
      expect(conn.memory.regions).toHaveLength(0);
      expect(qs[0].usedIdx).toBe(1); // the completion reached the guest before unmapping
      rig.device.mode = 'immediate';
      // A new VM (new memory, new rings) is served.
      const s2 = await session();
      expect(await echo(s2.mem, s2.qs[0], pattern(64, 13))).toEqual(pattern(64, 13));
    });

    it('a second front-end waits until the first one is gone', async () => {
      const { fe } = await session();
      const fe2 = rig.connect();
      const pending = fe2.getFeatures();
      let answered = false;
      void pending.then(() => { answered = true; });
      await new Promise((r) => setTimeout(r, 50));
      expect(answered).toBe(false);
      await fe.ping(); // the first session is unaffected
      fe.close();
      expect(await pending).toBeGreaterThan(0n);
    });

    it('does not leak fds across sessions', async () => {
      rig = startRig();
      const base = openFds();
      for (let i = 0; i < 3; i++) {
        const fe = rig.connect();
        await fe.negotiate({ protocol: ALL_PROTOCOL });
        const mem = memory(1024 * 1024);
        await fe.setMemTable(mem);
        const q = await fe.setupQueue(mem, 0, { size: 8, call: i === 1 ? 'socketpair' : 'eventfd' });
        const err = eventfd();
        await fe.command(Req.SET_VRING_ERR, encodeU64(0), [err]);
        closeFd(err);
        await echo(mem, q, pattern(8, i));
        const gone = new Promise((r) => rig.server.once('disconnect', r));
        fe.close();
        await gone;
        q.closeFds();
        mems.pop()!.close();
      }
      expect(openFds()).toBe(base);
    });

    it('refuses a socket path where a daemon listens, replaces a stale socket, keeps other files', async () => {
      rig = startRig();
      const { log } = captureLogger();
      const other = new VhostUserServer({ socketPath: rig.socketPath, device: rig.device, logger: log });
      expect(() => other.listen()).toThrow(/ESOCKET: another daemon is already listening/);
      // Stale socket: a listening socket whose owner went away without unlinking.
      const stalePath = `${rig.dir}/stale.sock`;
      closeFd(listenUnix(stalePath));
      const s2 = new VhostUserServer({ socketPath: stalePath, device: rig.device, logger: log });
      s2.listen();
      expect(s2.listening).toBe(true);
      await s2.close();
      const file = `${rig.dir}/not-a-socket`;
      writeFileSync(file, 'keep me');
      const s3 = new VhostUserServer({ socketPath: file, device: rig.device, logger: log });
      expect(() => s3.listen()).toThrow(/not a socket/);
      expect(existsSync(file)).toBe(true);
      expect(existsSync(stalePath)).toBe(false);
    });

    it('close() drains in-flight requests and removes the socket', async () => {
      const { mem, qs } = await session();
      rig.device.mode = 'hold';
      qs[0].add([{ gpa: mem.alloc(8), len: 8 }]);
      qs[0].kick();
      await until(() => rig.device.heldCount === 1, 2000, 'held');
      let closed = false;
      const p = rig.server.close().then(() => { closed = true; });
      await new Promise((r) => setTimeout(r, 30));
      expect(closed).toBe(false);
      rig.device.release();
      await p;
      expect(existsSync(rig.socketPath)).toBe(false);
      expect(qs[0].usedIdx).toBe(1);
    });
  });
});
