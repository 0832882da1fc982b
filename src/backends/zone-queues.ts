// Per-zone FIFO execution for a backend whose device decides on its own (a host zoned drive).
//
// Writes, appends and zone management of one zone run strictly one after another, in the
// order they arrived: the write pointer each of them checks against is the one the previous
// one left, concurrent appends get distinct contiguous sectors, and writes to one zone are
// acknowledged in order. Different zones run in parallel. An exclusive operation (reset of
// all zones, close) waits for every zone to drain and holds new work back until it is done.
//
// The kernel's thread pool may reorder two writes issued together, so "issued in order" is
// not enough on a zoned device: the next write of a zone is only issued once the previous
// one has completed.

const settled = (p: Promise<unknown>): Promise<void> => p.then(() => undefined, () => undefined);

export class ZoneQueues {
  /** Last operation queued per zone (settles when the zone becomes idle). */
  private readonly tails = new Map<number, Promise<void>>();
  /** The exclusive operation everything queued after it must wait for. */
  private barrier: Promise<void> | null = null;

  /** Run fn once every earlier operation on `zone` (and any earlier exclusive one) is done. */
  run<T>(zone: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(zone) ?? this.barrier;
    const result = prev ? prev.then(fn) : fn();
    const tail = settled(result);
    this.tails.set(zone, tail);
    void tail.then(() => { if (this.tails.get(zone) === tail) this.tails.delete(zone); });
    return result;
  }

  /** Run fn alone: after everything queued so far, before anything queued later. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = [...this.tails.values()];
    if (this.barrier) before.push(this.barrier);
    // Work queued from now on chains after the barrier, not after the old tails.
    this.tails.clear();
    const result = Promise.all(before).then(fn);
    const barrier = settled(result);
    this.barrier = barrier;
    void barrier.then(() => { if (this.barrier === barrier) this.barrier = null; });
    return result;
  }

  /** True when nothing is queued or running on `zone`. */
  zoneIdle(zone: number): boolean { return !this.tails.has(zone) && this.barrier === null; }

  /** True when nothing is queued or running at all. */
  get idle(): boolean { return this.tails.size === 0 && this.barrier === null; }
}
