// Adaptive busy polling of the event sources that announce work through shared memory (a
// virtqueue's avail ring). After a source was served, the JavaScript thread looks at every
// registered source for a short window before going back to sleep in epoll; work found there
// is served without a wake-up: no eventfd written by the guest, no epoll_wait return, no
// counter read, and none of the scheduler latency of waking a sleeping thread (several µs on
// a VM, more than a cached 4K read takes). Sources are told to mute their own wake-ups while
// they are polled (a virtqueue stops asking for kicks) and report, when unmuted, whether
// work slipped in meanwhile.
//
// The window adapts as QEMU's event loop does it (poll-max-ns): it starts at zero, grows
// (4 µs, then doubling up to the maximum) while wake-ups come sooner than the maximum after
// going to sleep, and drops to zero when one comes later, so an idle or slow guest costs
// no spinning. One instance serves the whole thread; the spin is bounded by the window.
import { performance } from 'node:perf_hooks';

export interface PollSource {
  /** Work is waiting (a read of shared memory: called in a tight loop). */
  ready(): boolean;
  /** Serve the waiting work. */
  run(): void;
  /**
   * Work it served is still in flight (I/O on another thread, completions to come through
   * the event loop). Polling then stops: the turn ends so the event loop can deliver them,
   * and no window is spun until they are in, since spinning would take the CPU the kernel or
   * io-wq needs to finish them. While nothing is in flight, polling goes on in the same
   * turn, sparing the guest the event loop's round trip between two requests.
   */
  busy(): boolean;
  /**
   * Mute (true) or unmute (false) this source's own wake-ups while it is polled. Unmuting
   * returns true when work arrived that no wake-up will announce (it is then served).
   */
  mute(on: boolean): boolean;
}

export interface BusyPollStats {
  /** Poll windows run. */
  turns: number;
  /** Windows in which work was found. */
  hits: number;
  /** Wake-ups through the sources' own events (kicks). */
  wakeups: number;
  /** Current window, µs. */
  readonly windowUs: number;
}

/** First window once polling pays (QEMU starts at 4 µs too). */
const INITIAL_WINDOW_MS = 0.004;
/** Longest stretch polled in one event-loop turn: other fds (the vhost-user socket) wait at most this. */
const TURN_BUDGET_MS = 0.5;

export class BusyPoll {
  /** Largest window, ms (0: polling off, every source is served from its wake-up only). */
  readonly maxMs: number;
  private windowMs = 0;
  private readonly sources: PollSource[] = [];
  private muted = false;
  private scheduled = false;
  /** performance.now() when the last window ended empty (-1: not sleeping). */
  private sleptAt = -1;
  private readonly turnFn = (): void => this.turn();
  readonly stats: BusyPollStats;

  constructor(maxUs: number) {
    this.maxMs = Math.max(0, maxUs) / 1000;
    const stats = { turns: 0, hits: 0, wakeups: 0 };
    this.stats = Object.defineProperty(stats, 'windowUs', { get: () => Math.round(this.windowMs * 1000), enumerable: true }) as BusyPollStats;
  }

  add(s: PollSource): void {
    if (this.sources.includes(s)) return;
    this.sources.push(s);
    if (this.muted) s.mute(true);
  }

  /** The source leaves (its queue stops): its wake-ups are its own business again. */
  remove(s: PollSource): void {
    const i = this.sources.indexOf(s);
    if (i < 0) return;
    this.sources.splice(i, 1);
    if (this.muted) s.mute(false);
  }

  /** A source's own wake-up (its eventfd fired): serve it, then poll if that pays. */
  woke(s: PollSource): void {
    this.stats.wakeups++;
    if (this.maxMs === 0) { s.run(); return; }
    if (this.sleptAt >= 0) {
      this.adapt(performance.now() - this.sleptAt);
      this.sleptAt = -1;
    }
    if (this.windowMs > 0 && this.sources.includes(s)) this.setMuted(true);
    s.run();
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the microtasks of this turn (batched submissions, completions, notifications),
    // and after libuv looked at the other fds once: polling never starves the control plane.
    setImmediate(this.turnFn);
  }

  private turn(): void {
    this.scheduled = false;
    const src = this.sources;
    let hit = false;
    if (this.windowMs > 0 && src.length > 0 && !this.anyBusy()) {
      this.setMuted(true);
      this.stats.turns++;
      let now = performance.now();
      const budgetEnd = now + TURN_BUDGET_MS;
      let end = now + this.windowMs;
      for (;;) {
        let ran = false;
        for (let i = 0; i < src.length; i++) {
          if (src[i].ready()) { src[i].run(); ran = true; }
        }
        now = performance.now();
        if (ran) {
          hit = true;
          if (this.anyBusy() || now >= budgetEnd) break;
          // All of it completed inside run(): keep looking, a new full window from here.
          end = now + this.windowMs;
        } else if (now >= end) {
          break;
        }
      }
      if (hit) {
        this.stats.hits++;
        this.schedule();
        return;
      }
    }
    // Nothing came: sleep in epoll again, with wake-ups back on. Work that arrived while they
    // were off announces itself only to this look.
    if (this.muted) {
      this.muted = false;
      for (let i = 0; i < src.length; i++) {
        if (src[i].mute(false)) { src[i].run(); hit = true; }
      }
    }
    if (hit) { this.schedule(); return; }
    this.sleptAt = performance.now();
  }

  private anyBusy(): boolean {
    for (let i = 0; i < this.sources.length; i++) if (this.sources[i].busy()) return true;
    return false;
  }

  /** QEMU's rule: grow while wake-ups come within the maximum, stop polling when one does not. */
  private adapt(sleptMs: number): void {
    if (this.maxMs === 0) return;
    if (sleptMs > this.maxMs) this.windowMs = 0;
    else if (this.windowMs < this.maxMs) this.windowMs = Math.min(this.maxMs, this.windowMs === 0 ? INITIAL_WINDOW_MS : 2 * this.windowMs);
  }

  private setMuted(on: boolean): void {
    if (this.muted === on) return;
    this.muted = on;
    for (let i = 0; i < this.sources.length; i++) this.sources[i].mute(on);
  }
}
