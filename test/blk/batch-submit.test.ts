// BlkDevice with a backend that has the callback forms (submitRead/submitWrite/endBatch): a
// kick's requests are submitted in batches of at most 8, what completes inside endBatch is
// published after each batch in the same pass (no microtask notification on top), and a
// completion that throws does not stop the backend's completion loop.
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend, ResultCallback } from '../../src/backends/backend.js';
import { MemoryDiskBackend } from '../../src/backends/memory-disk-backend.js';
import { BlkDevice } from '../../src/blk/blk-device.js';
import type { IoVec } from '../../src/iovec.js';
import { captureLogger } from '../harness/log-capture.js';
import { S, T, TestQueue, chain, type TestChain } from './chains.js';

const MiB = 1 << 20;
const OK = 0; // ZoneResult.OK

/** What a sector's bytes read as: its number in the first byte, then a fixed pattern. */
function fillFor(sector: number, iov: IoVec): void {
  for (const v of iov) { v.fill(0x5a); if (v.length > 0) v[0] = sector & 0xff; }
}

interface Submitted { kind: 'read' | 'write'; sector: number; iov: IoVec; done: ResultCallback }

/**
 * Holds submissions until endBatch() and completes them there, synchronously, in order (a
 * backend whose cached reads complete in the submitting system call). Records each batch.
 */
class BatchingBackend implements Backend {
  readonly inner = new MemoryDiskBackend(64 * MiB, { blockSize: 4096 });
  readonly info = this.inner.info;
  queued: Submitted[] = [];
  /** Requests submitted in each endBatch() call. */
  readonly batches: number[] = [];
  /** Hook run at the start of each endBatch() (what the guest could see by then). */
  onEndBatch?: () => void;
  promiseCalls = 0;
  written: number[] = [];

  submitRead(sector: number, iov: IoVec, done: ResultCallback): void { this.queued.push({ kind: 'read', sector, iov, done }); }
  submitWrite(sector: number, iov: IoVec, done: ResultCallback): void { this.queued.push({ kind: 'write', sector, iov, done }); }

  endBatch(): void {
    this.onEndBatch?.();
    const q = this.queued;
    this.queued = [];
    this.batches.push(q.length);
    for (const s of q) {
      if (s.kind === 'read') fillFor(s.sector, s.iov); else this.written.push(s.sector);
      s.done(OK);
    }
  }

  read(sector: number, iov: IoVec) { this.promiseCalls++; return this.inner.read(sector, iov); }
  write(sector: number, iov: IoVec) { this.promiseCalls++; return this.inner.write(sector, iov); }
  // A regular disk: no zone commands (the inner backend refuses them itself).
  append() { return this.inner.append(); }
  flush() { return this.inner.flush(); }
  reportZones() { return this.inner.reportZones(); }
  zoneMgmt() { return this.inner.zoneMgmt(); }
  close() { return this.inner.close(); }
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of closers.splice(0)) await c(); });

function setup(): { dev: BlkDevice; q: TestQueue; backend: BatchingBackend; lines: ReturnType<typeof captureLogger>['lines'] } {
  const backend = new BatchingBackend();
  closers.push(() => backend.close());
  const { log, lines } = captureLogger('info');
  const dev = new BlkDevice({ backend, numQueues: 1, logger: log, model: 'none' });
  dev.setDriverFeatures(dev.deviceFeatures);
  return { dev, q: new TestQueue(), backend, lines };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('batched submission through the backend callback forms', () => {
  it('submits a kick of 20 reads in batches of at most 8 and publishes each batch in the same pass', async () => {
    const { dev, q, backend } = setup();
    const chains: TestChain[] = [];
    for (let i = 0; i < 20; i++) chains.push(chain({ type: T.IN, sector: i * 8, inLens: [4096] }));
    q.pending.push(...chains);
    // What is in the used ring, and how often it was published, when each batch starts.
    const seen: Array<[number, number]> = [];
    backend.onEndBatch = () => seen.push([q.used.length, q.notifies]);
    dev.queueKicked(q);
    // Everything completed inside the pass: no await needed.
    expect(backend.batches).toEqual([8, 8, 4]);
    expect(seen).toEqual([[0, 0], [8, 1], [16, 2]]);
    expect(q.used).toHaveLength(20);
    expect(q.notifies).toBe(3);
    expect(backend.promiseCalls, 'no Promise per request').toBe(0);
    for (const [i, c] of chains.entries()) {
      expect(c.status, `request ${i}`).toBe(S.OK);
      expect(c.writable[0][0]).toBe((i * 8) & 0xff);
      expect(c.writable[0][1]).toBe(0x5a);
    }
    expect(q.used.map((u) => u.written)).toEqual(new Array(20).fill(4097));
    expect(q.used.map((u) => u.chain)).toEqual(chains);
    // Completions inside the pass did not also schedule a notification for later.
    await tick();
    expect(q.notifies).toBe(3);
  });

  it('sends writes through submitWrite in the same batches', async () => {
    const { dev, q, backend } = setup();
    const chains = Array.from({ length: 10 }, (_, i) => chain({ type: T.OUT, sector: i * 8, out: [new Uint8Array(4096)] }));
    q.pending.push(...chains);
    dev.queueKicked(q);
    expect(backend.batches).toEqual([8, 2]);
    expect(backend.written).toEqual(chains.map((_, i) => i * 8));
    expect(chains.every((c) => c.status === S.OK)).toBe(true);
    expect(q.used).toHaveLength(10);
    expect(q.notifies).toBe(2);
    await tick();
    expect(q.notifies).toBe(2);
    expect(backend.promiseCalls).toBe(0);
  });

  it('a completion hook that throws for one request is logged; that request and the rest of the batch still complete', async () => {
    const { dev, q, backend, lines } = setup();
    const bad = 5 * 8;
    dev.addHooks({ onComplete: (req) => { if (req.sector === bad) throw new Error('hook bug'); } });
    const chains: TestChain[] = [];
    for (let i = 0; i < 20; i++) chains.push(chain({ type: T.IN, sector: i * 8, inLens: [4096] }));
    q.pending.push(...chains);
    dev.queueKicked(q);
    expect(backend.batches).toEqual([8, 8, 4]);
    expect(q.used.map((u) => u.chain)).toEqual(chains);
    expect(chains.every((c) => c.status === S.OK)).toBe(true);
    const failed = lines.filter((l) => l.msg === 'request completion failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 50, queue: 0, head: chains[5].head, type: 'read', sector: bad });
    expect(String((failed[0].err as { message?: string }).message)).toContain('hook bug');
    // Nothing is left in flight: a stopping ring's drain finishes.
    let drained = false;
    void dev.drainQueue(0).then(() => { drained = true; });
    await tick();
    expect(drained).toBe(true);
    // The queue keeps serving.
    const after = chain({ type: T.IN, sector: 4096, inLens: [4096] });
    q.pending.push(after);
    dev.queueKicked(q);
    expect(after.status).toBe(S.OK);
    expect(q.used).toHaveLength(21);
  });
  it('a completion that throws past the hooks (the queue refuses the push) does not cut the backend\'s completion loop short', () => {
    const { dev, backend, lines } = setup();
    const chains: TestChain[] = [];
    for (let i = 0; i < 20; i++) chains.push(chain({ type: T.IN, sector: i * 8, inLens: [4096] }));
    const badHead = chains[3].head;
    class RefusingQueue extends TestQueue {
      override push(c: TestChain, written: number): void {
        if (c.head === badHead) throw new Error('push refused');
        super.push(c, written);
      }
    }
    const q = new RefusingQueue();
    q.pending.push(...chains);
    dev.queueKicked(q);
    expect(backend.batches).toEqual([8, 8, 4]);
    // Completed inside the same endBatch() as the refused one, and after it: all pushed.
    expect(q.used.map((u) => u.chain)).toEqual(chains.filter((c) => c.head !== badHead));
    const failed = lines.filter((l) => l.msg === 'request completion failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 50, type: 'read', sector: 3 * 8 });
    expect(String((failed[0].err as { message?: string }).message)).toContain('push refused');
  });
});
