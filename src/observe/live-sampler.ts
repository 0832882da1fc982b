// Once a second while somebody watches: a snapshot of the disk for the live page (counters,
// rates since the last snapshot, open/active against limits, recent errors, the zone map).
// One sampler serves every viewer, so ten open pages cost one zone report per second.
import { OP, OPS, type RecentError } from './request-stats.js';
import type { MetricsSources } from './metrics.js';
import { CONDITIONS } from './zone-census.js';
import { renderZoneMap } from './zone-map-file.js';

export interface LiveSample {
  /** Wall-clock milliseconds. */
  time: number;
  seq: number;
  frontendConnected: boolean;
  /** Since the previous sample. */
  rates: { iops: number; readMBps: number; writeMBps: number; resetsPerS: number; errorsPerS: number };
  totals: { requests: Record<string, number>; readBytes: number; writeBytes: number; appendBytes: number;
    resets: number; finishes: number; errors: number };
  inflight: number[];
  zones: { total: number; byCondition: Record<string, number>; open: number; active: number;
    maxOpen: number; maxActive: number; writtenBytes: number; capacityBytes: number } | null;
  errors: RecentError[];
  /** Increments whenever the picture changes. */
  mapVersion: number;
}

export const SAMPLE_INTERVAL_MS = 1000;

interface Totals { reqs: number; bytes: number; rd: number; wr: number; resets: number; errors: number; at: number }

export class LiveSampler {
  private readonly src: MetricsSources;
  private readonly subject: string;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(s: LiveSample) => void>();
  private prev: Totals | null = null;
  private seq = 0;
  private sampling = false;
  latest: LiveSample | null = null;
  map = '';
  mapVersion = 0;

  constructor(src: MetricsSources, subject: string) {
    this.src = src;
    this.subject = subject;
  }

  /** Receive a sample every second until the returned function is called. */
  subscribe(fn: (s: LiveSample) => void): () => void {
    this.listeners.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => { void this.tick(); }, SAMPLE_INTERVAL_MS);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0 && this.timer) { clearInterval(this.timer); this.timer = null; }
    };
  }

  close(): void {
    this.listeners.clear();
    if (this.timer) { clearInterval(this.timer); this.timer = null; }
  }

  private async tick(): Promise<void> {
    if (this.sampling) return; // a slow zone report (a large host device): skip, do not pile up
    this.sampling = true;
    try {
      const s = await this.sample();
      for (const fn of this.listeners) fn(s);
    } finally {
      this.sampling = false;
    }
  }

  /** Takes a sample now (also what GET /live.json answers). */
  async sample(): Promise<LiveSample> {
    const st = this.src.stats;
    const now = performance.now();
    const requests: Record<string, number> = {};
    let reqs = 0, errors = 0;
    for (let op = 0; op < OPS.length; op++) {
      const n = st.total(op);
      requests[OPS[op]] = n;
      reqs += n;
      errors += n - st.count(op);
    }
    const t: Totals = {
      reqs, errors, at: now, rd: st.bytes[OP.READ], wr: st.bytes[OP.WRITE] + st.bytes[OP.APPEND],
      bytes: 0, resets: st.count(OP.RESET) + st.count(OP.RESET_ALL),
    };
    const p = this.prev;
    const dt = p ? (now - p.at) / 1000 : 0;
    const rate = (a: number, b: number): number => (dt > 0 ? (a - b) / dt : 0);
    this.prev = t;

    let zones: LiveSample['zones'] = null;
    const zi = this.src.backend.info.zoned;
    if (zi) {
      const m = await renderZoneMap(this.src.backend, { subject: this.subject });
      const svg = m.render();
      if (svg !== this.map) { this.map = svg; this.mapVersion++; }
      const c = m.census;
      const byCondition: Record<string, number> = {};
      CONDITIONS.forEach((cd, i) => { byCondition[cd.label] = c.counts[i]; });
      zones = {
        total: c.zones, byCondition, open: c.open, active: c.active, maxOpen: zi.maxOpenZones, maxActive: zi.maxActiveZones,
        writtenBytes: c.writtenSectors * 512, capacityBytes: c.capacitySectors * 512,
      };
    }
    const inflight: number[] = [];
    for (let q = 0; q < this.src.numQueues; q++) inflight.push(this.src.inflight(q));
    const sample: LiveSample = {
      time: Date.now(), seq: ++this.seq, frontendConnected: this.src.frontendConnected(),
      rates: {
        iops: rate(t.reqs, p?.reqs ?? 0), readMBps: rate(t.rd, p?.rd ?? 0) / 1e6, writeMBps: rate(t.wr, p?.wr ?? 0) / 1e6,
        resetsPerS: rate(t.resets, p?.resets ?? 0), errorsPerS: rate(t.errors, p?.errors ?? 0),
      },
      totals: {
        requests, readBytes: st.bytes[OP.READ], writeBytes: st.bytes[OP.WRITE], appendBytes: st.bytes[OP.APPEND],
        resets: t.resets, finishes: st.count(OP.FINISH), errors,
      },
      inflight, zones, errors: st.recentErrors(), mapVersion: this.mapVersion,
    };
    this.latest = sample;
    return sample;
  }
}
