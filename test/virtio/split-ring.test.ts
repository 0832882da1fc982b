import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { closeFd, eventfd, pageSize, writeCounter } from '../../src/native/index.js';
import { MemoryTable, type MemoryTableOptions } from '../../src/vhost-user/memory-table.js';
import {
  SplitRing, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, vringNeedEvent,
} from '../../src/virtio/split-ring.js';
import { DriverQueue } from '../../src/testing/driver-queue.js';
import { GuestMemoryImage, type RegionSpec } from '../../src/testing/guest-memory.js';

const PAGE = pageSize();
const GPA = 0x1_0000_0000;
const UVA = 0x7f55_0000_0000;
const MiB = 1024 * 1024;
const { NEXT, WRITE, INDIRECT } = { NEXT: VRING_DESC_F_NEXT, WRITE: VRING_DESC_F_WRITE, INDIRECT: VRING_DESC_F_INDIRECT };

interface Rig {
  img: GuestMemoryImage;
  t: MemoryTable;
  dq: DriverQueue;
  ring: SplitRing;
  broken: string[];
}

describe('split ring', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => { for (const c of cleanups.splice(0).reverse()) c(); });

  function rig(opts: { size?: number; eventIdx?: boolean; specs?: RegionSpec[]; memory?: MemoryTableOptions;
    maxChainBytes?: number; base?: number } = {}): Rig {
    const size = opts.size ?? 16;
    const img = new GuestMemoryImage(opts.specs ??
      [{ guestPhysAddr: GPA, userAddr: UVA, size: MiB, mmapOffset: PAGE, guardAfter: PAGE }]);
    const t = new MemoryTable(opts.memory);
    t.replaceAll(img.regions.map((r) => t.mapRegion(r, r.fd)));
    const dq = new DriverQueue(img, 0, size);
    const broken: string[] = [];
    const call = eventfd();
    const ring = new SplitRing({ index: 0, size, log: pino({ level: 'silent' }), maxChainBytes: opts.maxChainBytes,
      onBroken: (_r, reason) => broken.push(reason), call: { signal: () => { writeCounter(call, 1); return true; } } });
    expect(ring.attach(t, dq.addrs)).toBeNull();
    if (opts.base !== undefined) {
      dq.setAvailIdx(opts.base);
      dq.lastUsed = opts.base;
      const { dv, off } = img.at(dq.usedGpa);
      dv.setUint16(off + 2, opts.base, true);
    }
    ring.start(opts.base ?? 0);
    ring.active = true;
    ring.eventIdx = opts.eventIdx ?? false;
    dq.callFd = call;
    cleanups.push(() => {
      closeFd(call);
      for (const r of t.clear()) r.unmap();
      img.close();
    });
    return { img, t, dq, ring, broken };
  }

  function joined(views: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(views.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of views) { out.set(v, at); at += v.length; }
    return out;
  }

  it('pops a direct chain as views, publishes used.idx only on notify', () => {
    const { img, dq, ring } = rig();
    const hdr = img.alloc(16);
    img.write(hdr, Uint8Array.of(1, 2, 3, 4));
    const data = img.alloc(512);
    const status = img.alloc(1);
    const head = dq.add([{ gpa: hdr, len: 16 }, { gpa: data, len: 512, write: true }, { gpa: status, len: 1, write: true }]);
    const c = ring.pop()!;
    expect(c).not.toBeNull();
    expect(c.error).toBeNull();
    expect(c.head).toBe(head);
    expect(c.readableBytes).toBe(16);
    expect(c.writableBytes).toBe(513);
    expect(Array.from(c.readable[0].subarray(0, 4))).toEqual([1, 2, 3, 4]);
    c.writable[1][0] = 0; // status OK
    c.writable[0].fill(0x42);
    expect(ring.pop()).toBeNull();
    ring.push(c, 513);
    expect(dq.usedIdx).toBe(0); // not yet published
    ring.notify();
    expect(dq.usedIdx).toBe(1);
    expect(dq.takeUsed()).toEqual([{ id: head, len: 513 }]);
    expect(img.read(data, 512).every((b) => b === 0x42)).toBe(true);
    expect(dq.collectCalls()).toBe(1);
    expect(ring.stats).toMatchObject({ popped: 1, pushed: 1, notified: 1, malformed: 0 });
  });

  it('reuses one pooled chain object per head and clears it on push', () => {
    const { img, dq, ring } = rig({ size: 4 });
    const b = img.alloc(64);
    dq.add([{ gpa: b, len: 64 }]);
    const c1 = ring.pop()!;
    ring.push(c1, 0);
    expect(c1.readable).toHaveLength(0);
    ring.notify();
    expect(dq.takeUsed()).toHaveLength(1);
    dq.add([{ gpa: b, len: 32 }]);
    const c2 = ring.pop()!;
    expect(c2.head).toBe(c1.head);
    expect(c2).toBe(c1);
    expect(c2.readableBytes).toBe(32);
  });

  it('follows an indirect table', () => {
    const { img, dq, ring } = rig();
    const a = img.alloc(100);
    img.write(a, new Uint8Array(100).fill(5));
    const w = img.alloc(200);
    dq.add([{ gpa: a, len: 100 }, { gpa: a, len: 50 }, { gpa: w, len: 200, write: true }], { indirect: true });
    const c = ring.pop()!;
    expect(c.error).toBeNull();
    expect(c.readable.map((v) => v.length)).toEqual([100, 50]);
    expect(c.writableBytes).toBe(200);
  });

  it('crosses the 16-bit index wrap', async () => {
    const { img, dq, ring } = rig({ size: 8, base: 65530 });
    const b = img.alloc(8);
    for (let i = 0; i < 20; i++) {
      dq.add([{ gpa: b, len: 8, write: true }]);
      const c = ring.pop()!;
      expect(c.error).toBeNull();
      ring.push(c, 8);
      ring.notify();
      expect(dq.takeUsed()).toHaveLength(1);
    }
    expect(ring.lastAvailIdx).toBe((65530 + 20) & 0xffff);
    expect(dq.usedIdx).toBe((65530 + 20) & 0xffff);
  });

  describe('hostile chains complete with an error and never touch memory outside the guest', () => {
    function expectMalformed(r: Rig, re: RegExp): void {
      const c = r.ring.pop()!;
      expect(c).not.toBeNull();
      expect(c.error).toMatch(re);
      // The device can still complete it; views validated before the fault are in guest memory.
      for (const v of c.writable) v.fill(0x77);
      r.ring.push(c, 0);
      r.ring.notify();
      expect(r.dq.takeUsed()).toEqual([{ id: c.head, len: 0 }]);
      expect(r.img.guardsIntact()).toBe(true);
      expect(r.ring.broken).toBeNull();
      // The queue keeps serving well-formed chains.
      const ok = r.img.alloc(8);
      r.dq.add([{ gpa: ok, len: 8, write: true }]);
      const good = r.ring.pop()!;
      expect(good.error).toBeNull();
      r.ring.push(good, 8);
      r.ring.notify();
      r.dq.takeUsed();
    }

    it('descriptor loop', () => {
      const r = rig();
      const b = r.img.alloc(8);
      r.dq.writeDesc(0, b, 8, NEXT, 1);
      r.dq.writeDesc(1, b, 8, NEXT, 0);
      r.dq.publish(0);
      expectMalformed(r, /loops or exceeds queue size 16/);
    });

    it('self loop through an indirect table', () => {
      const r = rig();
      const b = r.img.alloc(8);
      const table = r.img.alloc(32, 16);
      r.dq.writeDesc(0, b, 8, NEXT, 1, table);
      r.dq.writeDesc(1, b, 8, NEXT, 0, table);
      r.dq.writeDesc(2, table, 32, INDIRECT, 0);
      r.dq.publish(2);
      expectMalformed(r, /indirect chain loops/);
    });

    it('buffer outside guest memory', () => {
      const r = rig();
      r.dq.writeDesc(0, 0x1000, 8, 0, 0);
      r.dq.publish(0);
      expectMalformed(r, /buffer 0x1000 len 8 is outside guest memory/);
    });

    it('length running past the region end (and u32 max)', () => {
      const r = rig();
      r.dq.writeDesc(0, GPA + MiB - 16, 17, WRITE, 0);
      r.dq.publish(0);
      expectMalformed(r, /outside guest memory/);
      r.dq.writeDesc(1, GPA + 16, 0xffff_ffff, WRITE, 0);
      r.dq.publish(1);
      expectMalformed(r, /outside guest memory/);
    });

    it('address at or beyond 2^53', () => {
      const r = rig();
      r.dq.writeDesc(0, 0xffff_ffff_ffff_f000n, 8, 0, 0);
      r.dq.publish(0);
      expectMalformed(r, /beyond 2\^53/);
    });

    it('readable after writable', () => {
      const r = rig();
      const b = r.img.alloc(16);
      r.dq.writeDesc(0, b, 8, WRITE | NEXT, 1);
      r.dq.writeDesc(1, b + 8, 8, 0, 0);
      r.dq.publish(0);
      expectMalformed(r, /device-readable descriptor 1 after a device-writable one/);
    });

    it('INDIRECT together with NEXT', () => {
      const r = rig();
      const table = r.img.alloc(16, 16);
      r.dq.writeDesc(0, table, 16, INDIRECT | NEXT, 1);
      r.dq.publish(0);
      expectMalformed(r, /both INDIRECT and NEXT/);
    });

    it('nested indirect table', () => {
      const r = rig();
      const inner = r.img.alloc(16, 16);
      const outer = r.img.alloc(16, 16);
      r.dq.writeDesc(0, r.img.alloc(8), 8, 0, 0, inner);
      r.dq.writeDesc(0, inner, 16, INDIRECT, 0, outer);
      r.dq.writeDesc(0, outer, 16, INDIRECT, 0);
      r.dq.publish(0);
      expectMalformed(r, /nested indirect/);
    });

    it('indirect table with a bad length or outside memory', () => {
      const r = rig();
      const table = r.img.alloc(64, 16);
      r.dq.writeDesc(0, table, 24, INDIRECT, 0);
      r.dq.publish(0);
      expectMalformed(r, /indirect table length 24/);
      r.dq.writeDesc(1, table, 0, INDIRECT, 0);
      r.dq.publish(1);
      expectMalformed(r, /indirect table length 0/);
      r.dq.writeDesc(2, GPA + MiB - 32, 64, INDIRECT, 0);
      r.dq.publish(2);
      expectMalformed(r, /indirect table .* outside guest memory/);
      r.dq.writeDesc(3, table, 16 * 2048, INDIRECT, 0);
      r.dq.publish(3);
      expectMalformed(r, /2048 entries/);
    });

    it('next index beyond the table', () => {
      const r = rig();
      r.dq.writeDesc(0, r.img.alloc(8), 8, NEXT, 99);
      r.dq.publish(0);
      expectMalformed(r, /next 99 >= table size 16/);
    });

    it('chain longer than the byte cap', () => {
      const r = rig({ maxChainBytes: 1000 });
      const b = r.img.alloc(800);
      r.dq.writeDesc(0, b, 600, NEXT, 1);
      r.dq.writeDesc(1, b, 600, WRITE, 0);
      r.dq.publish(0);
      expectMalformed(r, /longer than 1000 bytes/);
    });

    it('keeps the views validated before the fault', () => {
      const r = rig();
      const b = r.img.alloc(64);
      r.dq.writeDesc(0, b, 16, NEXT, 1);
      r.dq.writeDesc(1, b + 16, 16, WRITE | NEXT, 2);
      r.dq.writeDesc(2, GPA + 2 * MiB, 16, WRITE, 0);
      r.dq.publish(0);
      const c = r.ring.pop()!;
      expect(c.error).toMatch(/outside/);
      expect(c.readable).toHaveLength(1);
      expect(c.writable).toHaveLength(1);
      expect(c.writableBytes).toBe(16);
      r.ring.push(c, 0);
    });
  });

  describe('guest bugs that stop the queue', () => {
    it('avail idx jump larger than the queue size', () => {
      const { dq, ring, broken } = rig();
      dq.setAvailIdx(17);
      expect(ring.pop()).toBeNull();
      expect(broken[0]).toMatch(/avail idx jumped from 0 to 17 \(queue size 16\)/);
      expect(ring.pop()).toBeNull();
      expect(broken).toHaveLength(1);
      // A restart (SET_VRING_BASE + kick) clears it.
      ring.start(17);
      expect(ring.broken).toBeNull();
    });

    it('head index out of range', () => {
      const { dq, ring, broken } = rig();
      dq.publish(16);
      expect(ring.pop()).toBeNull();
      expect(broken[0]).toMatch(/head 16 >= queue size 16/);
    });

    it('head made available twice while in flight', () => {
      const { img, dq, ring, broken } = rig();
      dq.writeDesc(3, img.alloc(8), 8, 0, 0);
      dq.publish(3);
      dq.publish(3);
      const c = ring.pop()!;
      expect(c.head).toBe(3);
      expect(ring.pop()).toBeNull();
      expect(broken[0]).toMatch(/head 3 made available again while still in flight/);
      // The in-flight request still completes.
      ring.push(c, 0);
      ring.notify();
      expect(dq.usedIdx).toBe(1);
    });
  });

  it('refuses ring areas without the alignment the spec requires, naming the area and address', () => {
    const { t, dq, ring } = rig();
    const a = dq.addrs;
    expect(ring.attach(t, { ...a, used: a.used + 2 })).toBe(`used ring at 0x${(a.used + 2).toString(16)} is not 4-byte aligned`);
    expect(ring.attached).toBe(false);
    expect(ring.attach(t, { ...a, avail: a.avail + 1 })).toBe(`avail ring at 0x${(a.avail + 1).toString(16)} is not 2-byte aligned`);
    expect(ring.attach(t, a)).toBeNull();
  });

  it('inactive or detached rings do not pop', () => {
    const { img, dq, ring } = rig();
    dq.add([{ gpa: img.alloc(8), len: 8 }]);
    ring.active = false;
    expect(ring.pop()).toBeNull();
    ring.active = true;
    const c = ring.pop()!;
    ring.detach();
    ring.push(c, 0); // dropped: ring memory is gone
    ring.notify();
    expect(dq.usedIdx).toBe(0);
    expect(ring.inFlight).toBe(0);
  });

  it('rejects device misuse of push', () => {
    const { img, dq, ring } = rig();
    dq.add([{ gpa: img.alloc(8), len: 8, write: true }]);
    const c = ring.pop()!;
    ring.push(c, 1000); // clamped to the writable size
    ring.notify();
    expect(dq.takeUsed()).toEqual([{ id: c.head, len: 8 }]);
    expect(() => ring.push(c, 0)).toThrow(/pushed twice/);
    const other = rig().ring;
    dq.add([{ gpa: img.alloc(8), len: 8 }]);
    const c2 = ring.pop()!;
    expect(() => other.push(c2, 0)).toThrow(/does not belong/);
  });

  it('drops the completion of a chain popped before a restart without breaking the new ring', () => {
    const { img, dq, ring } = rig();
    const b = img.alloc(8);
    dq.add([{ gpa: b, len: 8, write: true }]);
    const stale = ring.pop()!;
    ring.start(1); // restarted although the device never pushed (device bug)
    expect(ring.inFlight).toBe(0);
    dq.writeDesc(stale.head, b, 8, VRING_DESC_F_WRITE, 0);
    dq.publish(stale.head);
    const fresh = ring.pop()!;
    expect(fresh.head).toBe(stale.head);
    expect(fresh).not.toBe(stale);
    ring.push(stale, 8); // dropped, no throw
    expect(() => ring.push(stale, 8)).toThrow(/pushed twice/);
    ring.push(fresh, 8);
    ring.notify();
    expect(dq.usedIdx).toBe(1);
    expect(ring.inFlight).toBe(0);
  });

  it('whenIdle resolves once everything popped is pushed', async () => {
    const { img, dq, ring } = rig();
    dq.add([{ gpa: img.alloc(8), len: 8 }]);
    dq.add([{ gpa: img.alloc(8), len: 8 }]);
    const a = ring.pop()!;
    const b = ring.pop()!;
    let idle = false;
    void ring.whenIdle().then(() => { idle = true; });
    ring.push(a, 0);
    await Promise.resolve();
    expect(idle).toBe(false);
    ring.push(b, 0);
    await Promise.resolve();
    expect(idle).toBe(true);
  });

  describe('buffers spanning regions and windows', () => {
    const two: RegionSpec[] = [
      { guestPhysAddr: GPA, userAddr: UVA, size: 256 * 1024, mmapOffset: PAGE, guardAfter: PAGE },
      { guestPhysAddr: GPA + 256 * 1024, userAddr: UVA + 0x4000_0000, size: 256 * 1024, mmapOffset: 2 * PAGE, guardAfter: PAGE },
    ];

    it('splits a buffer that crosses two regions into two views', () => {
      const { img, dq, ring } = rig({ specs: two });
      const start = GPA + 256 * 1024 - 100;
      const data = new Uint8Array(300).map((_, i) => (i * 13) & 0xff);
      img.write(start, data);
      dq.add([{ gpa: start, len: 300 }]);
      const c = ring.pop()!;
      expect(c.error).toBeNull();
      expect(c.readable.map((v) => v.length)).toEqual([100, 200]);
      expect(joined(c.readable)).toEqual(data);
      ring.push(c, 0);
    });

    it('reads an indirect table that crosses two regions', () => {
      const { img, dq, ring } = rig({ specs: two });
      const table = GPA + 256 * 1024 - 16; // first entry in region 1, second in region 2
      const a = img.alloc(8);
      const w = img.alloc(8);
      const ent = (i: number, addr: number, len: number, flags: number, next: number): void => {
        const d = new Uint8Array(16);
        const dv = new DataView(d.buffer);
        dv.setBigUint64(0, BigInt(addr), true);
        dv.setUint32(8, len, true);
        dv.setUint16(12, flags, true);
        dv.setUint16(14, next, true);
        img.write(table + 16 * i, d);
      };
      ent(0, a, 8, NEXT, 1);
      ent(1, w, 8, WRITE, 0);
      dq.writeDesc(0, table, 32, INDIRECT, 0);
      dq.publish(0);
      const c = ring.pop()!;
      expect(c.error).toBeNull();
      expect(c.readableBytes).toBe(8);
      expect(c.writableBytes).toBe(8);
      ring.push(c, 8);
    });

    it('splits buffers across mapping windows of one region', () => {
      const { img, dq, ring } = rig({ specs: [{ guestPhysAddr: GPA, userAddr: UVA, size: 64 * PAGE }],
        memory: { windowSize: 4 * PAGE, windowOverlap: 8 * 1024 } });
      // 20 bytes straddling the window 0/1 boundary fit in window 0's overlap: one view.
      const start = GPA + 4 * PAGE - 10;
      const data = new Uint8Array(9 * PAGE).map((_, i) => (i * 7) & 0xff);
      img.write(GPA + PAGE, data);
      dq.add([{ gpa: GPA + PAGE, len: 9 * PAGE }, { gpa: start, len: 20, write: true }]);
      const c = ring.pop()!;
      expect(c.error).toBeNull();
      expect(c.readable.length).toBeGreaterThan(1);
      expect(joined(c.readable)).toEqual(data);
      expect(c.writable).toHaveLength(1);
      ring.push(c, 0);
    });
  });

  describe('notification suppression', () => {
    it('vring_need_event matches the spec formula, including wrap-around', () => {
      expect(vringNeedEvent(0, 1, 0)).toBe(true);
      expect(vringNeedEvent(5, 5, 0)).toBe(false); // event 5 not yet passed (new = 5 means entries 0..4)
      expect(vringNeedEvent(4, 5, 0)).toBe(true);
      expect(vringNeedEvent(10, 5, 0)).toBe(false);
      expect(vringNeedEvent(0xffff, 2, 0xfffe)).toBe(true);
      expect(vringNeedEvent(1, 2, 0xfffe)).toBe(true);
      expect(vringNeedEvent(2, 2, 0xfffe)).toBe(false);
    });

    it('EVENT_IDX: signals only when used idx passes used_event, and counts the rest', () => {
      const { img, dq, ring } = rig({ eventIdx: true });
      const b = img.alloc(8);
      const complete = (): void => {
        dq.add([{ gpa: b, len: 8 }]);
        const c = ring.pop()!;
        ring.push(c, 0);
        ring.notify();
        dq.takeUsed();
      };
      dq.setUsedEvent(0);
      complete(); // used idx 1: first notification after start is always sent
      expect(dq.collectCalls()).toBe(1);
      dq.setUsedEvent(4); // "interrupt me when entry 4 is used" → when used idx goes to 5
      complete(); // 2
      complete(); // 3
      complete(); // 4
      expect(dq.collectCalls()).toBe(0);
      complete(); // 5 passes event 4
      expect(dq.collectCalls()).toBe(1);
      complete(); // 6: event 4 already passed
      expect(dq.collectCalls()).toBe(0);
      expect(ring.stats.notified).toBe(2);
      expect(ring.stats.suppressed).toBe(4);
    });

    it('EVENT_IDX: publishes avail_event when the ring runs empty', () => {
      const { img, dq, ring } = rig({ eventIdx: true });
      const b = img.alloc(8);
      dq.add([{ gpa: b, len: 8 }]);
      dq.add([{ gpa: b, len: 8 }]);
      dq.add([{ gpa: b, len: 8 }]);
      const cs = [ring.pop()!, ring.pop()!, ring.pop()!];
      expect(ring.pop()).toBeNull();
      expect(dq.availEvent).toBe(3); // kick me when entry 3 becomes available
      for (const c of cs) ring.push(c, 0);
      ring.notify();
    });

    it('without EVENT_IDX: NO_INTERRUPT suppresses the call', () => {
      const { img, dq, ring } = rig();
      const b = img.alloc(8);
      dq.suppressInterrupts(true);
      dq.add([{ gpa: b, len: 8 }]);
      ring.push(ring.pop()!, 0);
      ring.notify();
      expect(dq.usedIdx).toBe(1); // published even though not signalled
      expect(dq.collectCalls()).toBe(0);
      dq.suppressInterrupts(false);
      dq.add([{ gpa: b, len: 8 }]);
      ring.push(ring.pop()!, 0);
      ring.notify();
      expect(dq.collectCalls()).toBe(1);
      expect(ring.stats).toMatchObject({ notified: 1, suppressed: 1 });
    });

    it('notify without new used entries does nothing', () => {
      const { ring, dq } = rig();
      ring.notify();
      expect(dq.collectCalls()).toBe(0);
      expect(ring.stats.suppressed).toBe(0);
    });
  });
});
