// Rate limiting of repeated events by key, with a summary of what was held back: the first
// `burst` events of a key in a window pass; the rest are counted, and when the window ends
// one summary reports how many there were. While they keep coming, each further window
// gives only its summary; a window without one ends the episode, and the next event passes
// again. Pure apart from the timer that closes windows nobody else closes.

export interface RateSummary<C> {
  key: string;
  /** Events of the key in the window, passed ones included. */
  count: number;
  /** Events held back. */
  suppressed: number;
  windowMs: number;
  /** How long the window ran: windowMs, or less when flush() ended it early. */
  elapsedMs: number;
  /** The context given with the first event of the episode. */
  context: C;
}

export interface RateLimiterOptions<C> {
  windowMs?: number;
  burst?: number;
  onSummary: (s: RateSummary<C>) => void;
  /** Milliseconds clock (tests pass their own). */
  now?: () => number;
  /** false: no timer, windows close only on later events or flush() (tests). */
  timer?: boolean;
}

interface Episode<C> {
  key: string;
  windowStart: number;
  count: number;
  suppressed: number;
  /** Events passed in this window (only the first window of an episode passes any). */
  passed: number;
  first: boolean;
  context: C;
}

export class RateLimiter<C> {
  readonly windowMs: number;
  readonly burst: number;
  private readonly onSummary: (s: RateSummary<C>) => void;
  private readonly now: () => number;
  private readonly useTimer: boolean;
  private readonly episodes = new Map<string, Episode<C>>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(o: RateLimiterOptions<C>) {
    this.windowMs = o.windowMs ?? 5000;
    this.burst = o.burst ?? 3;
    this.onSummary = o.onSummary;
    this.now = o.now ?? Date.now;
    this.useTimer = o.timer ?? true;
  }

  /** True when the event should be logged; false when it was counted for the summary. */
  admit(key: string, context: C): boolean {
    const now = this.now();
    let e = this.episodes.get(key);
    if (e !== undefined) this.roll(key, e, now);
    e = this.episodes.get(key);
    if (e === undefined) {
      this.episodes.set(key, { key, windowStart: now, count: 1, suppressed: 0, passed: 1, first: true, context });
      this.arm();
      return true;
    }
    e.count++;
    if (e.first && e.passed < this.burst) { e.passed++; return true; }
    e.suppressed++;
    return false;
  }

  /** Ends every window now, summarising what was held back (at exit, so no count is lost). */
  flush(): void {
    for (const [key, e] of [...this.episodes]) {
      this.close(e, Math.min(this.windowMs, this.now() - e.windowStart));
      this.episodes.delete(key);
    }
    this.disarm();
  }

  /** Closes the windows of key that ended before now. */
  private roll(key: string, e: Episode<C>, now: number): void {
    while (now - e.windowStart >= this.windowMs) {
      const active = e.count > 0;
      this.close(e, this.windowMs);
      if (!active) { this.episodes.delete(key); return; }
      e.windowStart += this.windowMs;
      e.count = 0;
      e.suppressed = 0;
      e.passed = 0;
      e.first = false;
    }
  }

  private close(e: Episode<C>, elapsedMs: number): void {
    if (e.suppressed > 0) this.onSummary({ key: e.key, count: e.count, suppressed: e.suppressed, windowMs: this.windowMs, elapsedMs, context: e.context });
  }

  private tick(): void {
    const now = this.now();
    for (const [key, e] of [...this.episodes]) this.roll(key, e, now);
    if (this.episodes.size === 0) this.disarm();
  }

  private arm(): void {
    if (!this.useTimer || this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), Math.min(1000, this.windowMs));
    // Never keeps the process alive: flush() at exit reports what is left.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== null) { clearInterval(this.timer); this.timer = null; }
  }
}
