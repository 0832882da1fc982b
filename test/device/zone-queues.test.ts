// Per-zone FIFO execution of the host device backend (runs anywhere: no device needed).
import { describe, expect, it } from 'vitest';
import { ZoneQueues } from '../../src/backends/zone-queues.js';

const tick = (ms = 1): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('ZoneQueues', () => {
  it('runs the operations of one zone one at a time, in arrival order, even when later ones are faster', async () => {
    const q = new ZoneQueues();
    const log: string[] = [];
    let running = 0, maxRunning = 0;
    const op = (name: string, ms: number) => q.run(7, async () => {
      running++; maxRunning = Math.max(maxRunning, running);
      log.push(`start ${name}`);
      await tick(ms);
      log.push(`end ${name}`);
      running--;
      return name;
    });
    const results = await Promise.all([op('a', 15), op('b', 1), op('c', 5)]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(maxRunning).toBe(1);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(q.idle).toBe(true);
  });

  it('runs different zones in parallel', async () => {
    const q = new ZoneQueues();
    let running = 0, maxRunning = 0;
    const op = (zone: number) => q.run(zone, async () => { running++; maxRunning = Math.max(maxRunning, running); await tick(5); running--; });
    await Promise.all([op(1), op(2), op(3)]);
    expect(maxRunning).toBe(3);
  });

  it('a failing operation does not stop the ones queued after it', async () => {
    const q = new ZoneQueues();
    const first = q.run(1, async () => { await tick(2); throw new Error('boom'); });
    const second = q.run(1, async () => 'ran');
    await expect(first).rejects.toThrow('boom');
    await expect(second).resolves.toBe('ran');
  });

  it('an exclusive operation waits for every zone and holds back what comes after it', async () => {
    const q = new ZoneQueues();
    const log: string[] = [];
    const a = q.run(1, async () => { await tick(10); log.push('zone 1 before'); });
    const b = q.run(2, async () => { await tick(5); log.push('zone 2 before'); });
    const x = q.runExclusive(async () => { log.push('exclusive start'); await tick(5); log.push('exclusive end'); });
    expect(q.zoneIdle(3)).toBe(false); // even an untouched zone waits for the barrier
    const c = q.run(1, async () => { log.push('zone 1 after'); });
    const d = q.run(3, async () => { log.push('zone 3 after'); });
    await Promise.all([a, b, x, c, d]);
    expect(log.slice(0, 2).sort()).toEqual(['zone 1 before', 'zone 2 before']);
    expect(log.slice(2, 4)).toEqual(['exclusive start', 'exclusive end']);
    expect(log.slice(4).sort()).toEqual(['zone 1 after', 'zone 3 after']);
    expect(q.idle).toBe(true);
  });

  it('forgets idle zones', async () => {
    const q = new ZoneQueues();
    await q.run(5, async () => undefined);
    await tick();
    expect(q.zoneIdle(5)).toBe(true);
    expect(q.idle).toBe(true);
  });
});
