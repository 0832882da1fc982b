// Busy polling end to end: VhostUserServer with the virtio-blk device on a RAM disk, driven
// over a real socket by the test front-end with EVENT_IDX, whose driver kicks only when
// avail_event asks for it (as Linux does). The driver reacts to each completion at once (from
// the device's completion, as a guest on another CPU would): while the back-end polls, it
// leaves avail_event behind and requests are served without kicks; with polling off every
// request needs its kick; after an idle gap longer than the maximum, kicks are needed again.
import { afterEach, describe, expect, it } from 'vitest';
import { BlkDevice } from '../../src/blk/blk-device.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { BlkRequestSlot, REQ, STATUS } from '../../src/testing/blk-request.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { startBlkRig, until } from '../harness/setup.js';

const EVENT_IDX = 1n << 29n;
const ALL = (1n << 64n) - 1n;
const N = 24;

interface Rig { q: DriverQueue; mem: GuestMemoryImage; device: BlkDevice; server: VhostUserServer }

describe('busy polling over a vhost-user socket', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

  async function start(pollMaxUs: number): Promise<Rig> {
    const rig = startBlkRig({ zones: 8, numQueues: 1, pollMaxUs, prefix: 'vu-poll-' });
    cleanups.push(() => rig.cleanup());
    const { fe, mem, device, server } = rig;
    const r = await fe.startDevice(mem, { queues: 1, size: 256, wanted: ALL, protocol: ALL });
    const qs = r.queues;
    rig.queues.push(...qs);
    expect(r.features & EVENT_IDX).toBe(EVENT_IDX);
    expect(qs[0].eventIdx).toBe(true);
    return { q: qs[0], mem, device, server };
  }

  /**
   * A driver of one request at a time: `submit(i)` places request i and kicks if avail_event
   * asks for it. With `chain` on, each completion makes the driver submit the next request at
   * once (a microtask after the device's completion), until `count` were submitted.
   */
  function driver(r: Rig, count: number) {
    const slots = Array.from({ length: count }, () => new BlkRequestSlot(r.mem, 4096));
    let next = 0;
    let chainUntil = 0;
    /** avail_event as the driver saw it when publishing each request. */
    const eventAtPublish: number[] = [];
    const submit = (): void => {
      const i = next++;
      const head = slots[i].submit(r.q, { type: REQ.IN, sector: 8 * i, inLens: [4096] }, { publish: false });
      r.q.place(head);
      r.q.kickIfNeeded();
      eventAtPublish.push(r.q.availEvent);
    };
    r.device.addHooks({ onComplete: () => { if (next < chainUntil) queueMicrotask(submit); } });
    return {
      slots, eventAtPublish,
      get submitted() { return next; },
      submit,
      /** Completions submit the next request until `until` requests were submitted in all. */
      chainTo(until: number) { chainUntil = until; },
    };
  }

  it('serves requests the driver does not kick for while it polls, and needs a kick again after an idle gap', async () => {
    const r = await start(500_000);
    const d = driver(r, N + 1);
    // First request: kicked, served from the wake-up; no window yet (nothing measured).
    d.submit();
    expect(r.q.kicks).toBe(1);
    await r.q.waitUsed(1);
    expect(r.server.poll.stats.windowUs).toBe(0);
    // Second request, well within 500 ms of the poller going to sleep: kicked, the window
    // opens, and from here each completion brings the next request, which nobody kicks for.
    d.chainTo(N);
    d.submit();
    expect(r.q.kicks).toBe(2);
    const used = await r.q.waitUsed(N - 1, 10_000);
    expect(used).toHaveLength(N - 1);
    expect(d.submitted).toBe(N);
    expect(r.q.kicks, 'no kicks after the second request').toBe(2);
    expect(r.server.poll.stats.wakeups).toBe(2);
    expect(r.server.poll.stats.windowUs).toBe(4);
    expect(r.server.poll.stats.hits).toBeGreaterThanOrEqual(N - 2);
    // avail_event stayed where the first request left it while the device polled.
    expect(d.eventAtPublish.slice(2)).toEqual(new Array(N - 2).fill(1));
    for (let i = 0; i < N; i++) expect(d.slots[i].status, `request ${i}`).toBe(STATUS.OK);
    // The window ends empty: kicks are asked for again (avail_event = next entry).
    await until(() => r.q.availEvent === N, 5000, 'avail_event re-armed');
    // Idle for longer than the maximum: the next request is kicked, served, and the window
    // drops to 0.
    await new Promise((res) => setTimeout(res, 650));
    d.submit();
    expect(r.q.kicks).toBe(3);
    await r.q.waitUsed(1);
    expect(d.slots[N].status).toBe(STATUS.OK);
    expect(r.server.poll.stats.wakeups).toBe(3);
    expect(r.server.poll.stats.windowUs).toBe(0);
  });

  it('with pollMaxUs 0 every request is kicked and served', async () => {
    const r = await start(0);
    const d = driver(r, N);
    d.chainTo(N);
    d.submit();
    const used = await r.q.waitUsed(N, 10_000);
    expect(used).toHaveLength(N);
    expect(r.q.kicks).toBe(N);
    for (let i = 0; i < N; i++) expect(d.slots[i].status).toBe(STATUS.OK);
    // The device asked for a kick at each request: avail_event = the entry being added.
    expect(d.eventAtPublish).toEqual(Array.from({ length: N }, (_, i) => i));
    // No window is ever spun; every request came through a kick (an eventfd read may take several).
    expect(r.server.poll.stats).toMatchObject({ turns: 0, hits: 0, windowUs: 0 });
    expect(r.server.poll.stats.wakeups).toBeGreaterThanOrEqual(1);
    expect(r.server.poll.stats.wakeups).toBeLessThanOrEqual(N);
    // A batch of several requests published together needs one kick.
    const slots = Array.from({ length: 4 }, () => new BlkRequestSlot(r.mem, 4096));
    for (const [i, s] of slots.entries()) r.q.place(s.submit(r.q, { type: REQ.IN, sector: 8 * i, inLens: [4096] }, { publish: false }));
    r.q.kickIfNeeded();
    expect(r.q.kicks).toBe(N + 1);
    await r.q.waitUsed(4);
    expect(slots.every((s) => s.status === STATUS.OK)).toBe(true);
  });
});
