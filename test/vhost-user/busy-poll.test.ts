// BusyPoll with fake poll sources: how the window adapts to the gap between going to sleep and
// the next wake-up, that sources are muted exactly while they are polled, and that work is run
// whichever way it is found (in the window, or by the unmute look). Nothing here asserts on
// elapsed time; real waits only make a gap longer than the maximum (a lower bound).
import { describe, expect, it } from 'vitest';
import { BusyPoll, type PollSource } from '../../src/busy-poll.js';

class FakeSource implements PollSource {
  /** Requests waiting, visible to ready(). */
  work = 0;
  /** Work only the unmute look reports (arrived while the source's wake-ups were off). */
  hidden = 0;
  muted = false;
  readonly muteCalls: boolean[] = [];
  runs = 0;
  /** ready() calls made while this source was not muted (polling must mute first). */
  readyUnmuted = 0;
  /** Whether the source was muted when run() was called, per run. */
  readonly mutedAtRun: boolean[] = [];
  /** What busy() answers: work served is still in flight. */
  inFlight = false;
  /** Makes work appear on the n-th ready() call from now (a guest adding during the window). */
  workOnReadyCall = 0;
  onRun?: () => void;

  ready(): boolean {
    if (!this.muted) this.readyUnmuted++;
    if (this.workOnReadyCall > 0 && --this.workOnReadyCall === 0) this.work++;
    return this.work > 0;
  }

  run(): void {
    this.runs++;
    this.mutedAtRun.push(this.muted);
    this.work = 0;
    this.hidden = 0;
    this.onRun?.();
  }

  busy(): boolean { return this.inFlight; }

  mute(on: boolean): boolean {
    this.muted = on;
    this.muteCalls.push(on);
    return !on && (this.work > 0 || this.hidden > 0);
  }
}

/** Lets `n` event-loop turns pass (each poll turn is a setImmediate). */
async function turns(n = 8): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wake-ups in quick succession until the window is at least `us`; returns the windows seen. */
async function grow(poll: BusyPoll, s: FakeSource, us: number): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < 40 && poll.stats.windowUs < us; i++) {
    s.work = 1;
    poll.woke(s);
    seen.push(poll.stats.windowUs);
    await turns();
  }
  return seen;
}

describe('BusyPoll', () => {
  it('with maxUs 0 never polls or mutes: every wake-up just runs its source', async () => {
    const poll = new BusyPoll(0);
    const s = new FakeSource();
    poll.add(s);
    for (let i = 0; i < 5; i++) {
      s.work = 1;
      poll.woke(s);
      await turns();
    }
    expect(poll.maxMs).toBe(0);
    expect(s.runs).toBe(5);
    expect(poll.stats).toEqual({ turns: 0, hits: 0, wakeups: 5, windowUs: 0 });
    expect(s.muteCalls).toEqual([]);
    expect(s.mutedAtRun.every((m) => !m)).toBe(true);
  });

  it('grows the window 4, 8, 16 ... µs on quick wake-ups, capped at the maximum', async () => {
    const poll = new BusyPoll(100_000);
    const s = new FakeSource();
    poll.add(s);
    const seen = await grow(poll, s, 100_000);
    // The first wake-up has no sleep before it to measure: the window stays 0.
    expect(seen).toEqual([0, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 100000]);
    s.work = 1;
    poll.woke(s);
    expect(poll.stats.windowUs, 'stays at the maximum').toBe(100_000);
    await turns();
    expect(s.runs).toBe(seen.length + 1);
    expect(poll.stats.wakeups).toBe(seen.length + 1);
  });

  it('drops the window to 0 after a wake-up later than the maximum, and grows it again', async () => {
    const poll = new BusyPoll(100_000);
    const s = new FakeSource();
    poll.add(s);
    await grow(poll, s, 16);
    expect(poll.stats.windowUs).toBe(16);
    await sleep(250); // idle longer than 100 ms
    s.work = 1;
    poll.woke(s);
    expect(poll.stats.windowUs).toBe(0);
    expect(s.mutedAtRun.at(-1), 'no window: served unmuted').toBe(false);
    await turns();
    const turnsBefore = poll.stats.turns;
    s.work = 1;
    poll.woke(s);
    expect(poll.stats.windowUs).toBe(4);
    await turns();
    expect(poll.stats.turns).toBe(turnsBefore + 1);
  });

  it('mutes every source while polling and unmutes them all when a window ends empty', async () => {
    const poll = new BusyPoll(100_000);
    const a = new FakeSource();
    const b = new FakeSource();
    poll.add(a);
    poll.add(b);
    await grow(poll, a, 4);
    const turnsBefore = poll.stats.turns;
    const bMutedAtARun: boolean[] = [];
    a.onRun = () => bMutedAtARun.push(b.muted);
    a.work = 1;
    poll.woke(a);
    expect(a.mutedAtRun.at(-1)).toBe(true);
    expect(bMutedAtARun).toEqual([true]);
    await turns();
    expect(poll.stats.turns).toBe(turnsBefore + 1);
    expect([a.muted, b.muted]).toEqual([false, false]);
    expect(a.muteCalls.at(-1)).toBe(false);
    expect(b.muteCalls.at(-1)).toBe(false);
    // Muted and unmuted in pairs, never polled with wake-ups on.
    expect(a.muteCalls.filter((m) => m).length).toBe(a.muteCalls.filter((m) => !m).length);
    expect(a.readyUnmuted + b.readyUnmuted).toBe(0);
    expect(poll.stats.hits).toBe(0);
  });

  it('runs work that only the unmute look reports, and keeps polling after it', async () => {
    const poll = new BusyPoll(100_000);
    const s = new FakeSource();
    poll.add(s);
    await grow(poll, s, 4);
    const { turns: t0, wakeups: w0 } = poll.stats;
    const runs0 = s.runs;
    let calls = s.muteCalls.length;
    // Served from the wake-up; in the run, work arrives that ready() cannot see but the unmute
    // look does (the guest added a chain after the last look and did not kick).
    s.onRun = () => { s.onRun = () => { s.hidden = 0; }; s.hidden = 1; };
    s.work = 1;
    poll.woke(s);
    await turns();
    expect(s.runs, 'the wake-up, then the unmute look').toBe(runs0 + 2);
    expect(poll.stats.wakeups).toBe(w0 + 1);
    // First window empty -> unmute finds the work -> run -> another window -> empty -> unmute.
    expect(poll.stats.turns).toBe(t0 + 2);
    expect(s.muteCalls.slice(calls)).toEqual([true, false, true, false]);
    calls = s.muteCalls.length;
    expect(s.muted).toBe(false);
    await turns();
    expect(s.muteCalls.length, 'asleep: nothing more').toBe(calls);
  });

  it('runs work made ready during a window without a wake-up', async () => {
    const poll = new BusyPoll(100_000);
    const a = new FakeSource();
    const b = new FakeSource();
    poll.add(a);
    poll.add(b);
    // A window long enough for a second look at b (the first finds nothing).
    await grow(poll, a, 30_000);
    const { wakeups: w0, hits: h0 } = poll.stats;
    const bRuns = b.runs;
    b.workOnReadyCall = 2;
    a.work = 1;
    poll.woke(a);
    await turns();
    expect(b.runs).toBe(bRuns + 1);
    expect(b.mutedAtRun.at(-1)).toBe(true);
    expect(poll.stats.wakeups).toBe(w0 + 1);
    expect(poll.stats.hits).toBe(h0 + 1);
    // Work a source's run makes ready on another source is found by the next turn too.
    const aRuns = a.runs;
    a.onRun = () => { b.work = 1; };
    a.work = 1;
    poll.woke(a);
    await turns();
    expect(a.runs).toBe(aRuns + 1);
    expect(b.runs).toBe(bRuns + 2);
    expect(poll.stats.wakeups).toBe(w0 + 2);
    expect(poll.stats.hits).toBe(h0 + 2);
    expect([a.muted, b.muted]).toEqual([false, false]);
    expect(a.readyUnmuted + b.readyUnmuted).toBe(0);
  });

  it('keeps looking in the same turn while what it ran completed inside, and does not poll while work is in flight', async () => {
    const poll = new BusyPoll(100_000);
    const s = new FakeSource();
    poll.add(s);
    await grow(poll, s, 4);
    // Each run makes the next request visible at once (a guest resubmitting on another CPU).
    const serve = async (inFlight: boolean, n: number): Promise<{ turns: number; runs: number }> => {
      const { turns: t0 } = poll.stats;
      const r0 = s.runs;
      let left = n;
      s.inFlight = inFlight;
      s.onRun = () => { if (--left > 0) s.work = 1; };
      s.work = 1;
      poll.woke(s);
      for (let i = 0; i < 100 && left > 0; i++) await turns(1);
      await turns();
      s.onRun = undefined;
      return { turns: poll.stats.turns - t0, runs: s.runs - r0 };
    };
    // In flight: no window is spun (the CPU is the I/O's) and the wake-ups are back on, so
    // work is served from wake-ups only.
    s.inFlight = true;
    const t0 = poll.stats.turns, r0 = s.runs;
    s.work = 1;
    poll.woke(s);
    await turns();
    s.work = 1; // ready, but nobody polls while the first is in flight
    await turns();
    expect(s.runs - r0).toBe(1);
    expect(poll.stats.turns - t0).toBe(0);
    expect(s.muted).toBe(false);
    poll.woke(s);
    await turns();
    expect(s.runs - r0).toBe(2);
    s.inFlight = false;
    // Completed inside run(): the turn goes on looking (bounded by its budget), so far fewer
    // turns than runs.
    const inline = await serve(false, 20);
    expect(inline.runs).toBe(20);
    expect(inline.turns).toBeLessThanOrEqual(10);
    expect(s.muted).toBe(false);
    expect(s.readyUnmuted).toBe(0);
  });

  it('unmutes a source removed while muted, mutes one added while muted, and ignores duplicates', async () => {
    const poll = new BusyPoll(100_000);
    const a = new FakeSource();
    const b = new FakeSource();
    const c = new FakeSource();
    poll.add(a);
    poll.add(b);
    poll.add(b);
    await grow(poll, a, 4);
    a.onRun = () => {
      expect(b.muted).toBe(true);
      poll.remove(b);
      poll.add(c);
    };
    const bCalls = b.muteCalls.length;
    a.work = 1;
    poll.woke(a);
    expect(b.muted).toBe(false);
    expect(b.muteCalls.slice(bCalls)).toEqual([true, false]);
    expect(c.muted).toBe(true);
    await turns();
    // b is no longer polled or told anything; c took part and was unmuted with a.
    expect(b.muteCalls.length).toBe(bCalls + 2);
    expect(b.readyUnmuted).toBe(0);
    expect(c.muteCalls).toEqual([true, false]);
    expect(a.muted).toBe(false);
    poll.remove(b); // not there: no effect
    expect(b.muteCalls.length).toBe(bCalls + 2);
  });
});
