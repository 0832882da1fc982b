// SplitRing.muteKicks and hasAvail over fake guest memory, read back the way the guest sees
// them: avail_event (EVENT_IDX) and used.flags NO_NOTIFY, and whether a driver that honours
// them would kick.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { pageSize } from '../../src/native/index.js';
import { MemoryTable } from '../../src/vhost-user/memory-table.js';
import { SplitRing } from '../../src/virtio/split-ring.js';
import { DriverQueue } from '../../src/testing/driver-queue.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

const PAGE = pageSize();
const GPA = 0x1_0000_0000;
const UVA = 0x7f55_0000_0000;
const SIZE = 16;
const NO_NOTIFY = 1; // VRING_USED_F_NO_NOTIFY, spelled out (VIRTIO 1.3 §2.7.10)

describe('split ring kick muting', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => { for (const c of cleanups.splice(0).reverse()) c(); });

  function rig(eventIdx: boolean): { img: GuestMemoryImage; dq: DriverQueue; ring: SplitRing; buf: number; usedFlags: () => number } {
    const img = new GuestMemoryImage([{ guestPhysAddr: GPA, userAddr: UVA, size: 1 << 20, mmapOffset: PAGE }]);
    const t = new MemoryTable();
    t.replaceAll(img.regions.map((r) => t.mapRegion(r, r.fd)));
    const dq = new DriverQueue(img, 0, SIZE);
    dq.reset(0);
    dq.eventIdx = eventIdx;
    const ring = new SplitRing({ index: 0, size: SIZE, log: pino({ level: 'silent' }) });
    expect(ring.attach(t, dq.addrs)).toBeNull();
    ring.eventIdx = eventIdx;
    ring.start(0);
    ring.active = true;
    cleanups.push(() => {
      for (const r of t.clear()) r.unmap();
      img.close();
    });
    const { dv, off } = img.at(dq.usedGpa);
    return { img, dq, ring, buf: img.alloc(64), usedFlags: () => dv.getUint16(off, true) };
  }

  /** Adds a one-descriptor chain the way Linux does it: publish, kick if the device asks. */
  function add(dq: DriverQueue, buf: number): void {
    dq.place(dq.add([{ gpa: buf, len: 64 }], { publish: false }));
    if (dq.publishPlaced()) dq.kicks++;
  }

  it('hasAvail sees published chains and only while the ring is active', () => {
    const { dq, ring, buf } = rig(true);
    expect(ring.hasAvail()).toBe(false);
    add(dq, buf);
    expect(ring.hasAvail()).toBe(true);
    ring.active = false;
    expect(ring.hasAvail()).toBe(false);
    ring.active = true;
    ring.push(ring.pop()!, 0);
    expect(ring.hasAvail()).toBe(false);
  });

  it('EVENT_IDX: muted, pop leaves avail_event behind; unmuting re-arms it and reports chains added meanwhile', () => {
    const { dq, ring, buf, usedFlags } = rig(true);
    add(dq, buf);
    expect(dq.kicks).toBe(1);
    ring.push(ring.pop()!, 0);
    expect(ring.pop()).toBeNull();
    expect(dq.availEvent, 'unmuted: emptying the ring asks for the next kick').toBe(1);

    expect(ring.muteKicks(true)).toBe(false);
    expect(ring.muteKicks(true), 'already muted').toBe(false);
    add(dq, buf);
    expect(dq.kicks, 'avail_event 1 = the entry just added: kick').toBe(2);
    ring.push(ring.pop()!, 0);
    expect(ring.pop()).toBeNull();
    expect(dq.availEvent, 'muted: avail_event not moved').toBe(1);
    // The guest adds two more chains, one at a time: no kick for either.
    add(dq, buf);
    add(dq, buf);
    expect(dq.kicks).toBe(2);
    expect(ring.hasAvail()).toBe(true);
    ring.push(ring.pop()!, 0);
    expect(ring.pop()).not.toBeNull(); // in flight, not pushed
    expect(ring.pop()).toBeNull();
    expect(dq.availEvent).toBe(1);
    add(dq, buf);
    expect(dq.kicks).toBe(2);
    expect(usedFlags(), 'EVENT_IDX never uses used.flags').toBe(0);

    expect(ring.muteKicks(false), 'a chain was added while muted').toBe(true);
    expect(dq.availEvent, 'avail_event = lastAvailIdx').toBe(4);
    expect(ring.muteKicks(false), 'already unmuted').toBe(false);
    expect(ring.pop()).not.toBeNull();
    expect(ring.pop()).toBeNull();
    expect(dq.availEvent, 'unmuted: pop re-arms again').toBe(5);
    add(dq, buf);
    expect(dq.kicks).toBe(3);

    // Nothing added while muted: unmute reports nothing and asks for the next entry.
    ring.pop();
    ring.muteKicks(true);
    expect(ring.pop()).toBeNull();
    expect(ring.muteKicks(false)).toBe(false);
    expect(dq.availEvent).toBe(6);
    expect(usedFlags()).toBe(0);
  });

  it('without EVENT_IDX: muted sets used.flags NO_NOTIFY, unmuting clears it and reports chains added meanwhile', () => {
    const { dq, ring, buf, usedFlags } = rig(false);
    expect(usedFlags()).toBe(0);
    add(dq, buf);
    expect(dq.kicks).toBe(1);
    ring.pop();
    expect(ring.muteKicks(true)).toBe(false);
    expect(usedFlags()).toBe(NO_NOTIFY);
    add(dq, buf);
    add(dq, buf);
    expect(dq.kicks, 'NO_NOTIFY: the driver does not kick').toBe(1);
    expect(ring.pop()).not.toBeNull();
    expect(usedFlags(), 'pop keeps the flag while muted').toBe(NO_NOTIFY);
    expect(dq.availEvent, 'avail_event is not used').toBe(0);
    expect(ring.muteKicks(false), 'one chain still waits').toBe(true);
    expect(usedFlags()).toBe(0);
    expect(dq.availEvent).toBe(0);
    ring.pop();
    expect(ring.muteKicks(true)).toBe(false);
    expect(ring.muteKicks(false), 'nothing added').toBe(false);
    expect(usedFlags()).toBe(0);
    add(dq, buf);
    expect(dq.kicks).toBe(2);
  });

  it('start() unmutes a muted ring', () => {
    for (const eventIdx of [false, true]) {
      const { dq, ring, buf, usedFlags } = rig(eventIdx);
      ring.muteKicks(true);
      expect(usedFlags()).toBe(eventIdx ? 0 : NO_NOTIFY);
      ring.start(0);
      expect(usedFlags(), `eventIdx ${eventIdx}`).toBe(0);
      add(dq, buf);
      expect(dq.kicks).toBe(1);
      expect(ring.pop()).not.toBeNull();
      expect(ring.pop()).toBeNull();
      if (eventIdx) expect(dq.availEvent, 'pop re-arms: kicks are on').toBe(1);
      add(dq, buf);
      expect(dq.kicks).toBe(2);
      // Muting again takes effect (the ring did not still count itself muted).
      ring.pop();
      ring.muteKicks(true);
      expect(usedFlags()).toBe(eventIdx ? 0 : NO_NOTIFY);
      expect(ring.pop()).toBeNull();
      add(dq, buf);
      expect(dq.kicks, 'muted: no kick').toBe(2);
    }
  });
});
