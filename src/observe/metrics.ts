// Prometheus metrics of a served disk (prom-client). The request path only bumps typed arrays
// (request-stats.ts); everything here runs when someone scrapes: counters are folded in from
// those arrays, zone gauges come from a zone report of the backend at that moment.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { Backend } from '../backends/backend.js';
import type { BusyPollStats } from '../busy-poll.js';
import { DURATION_BUCKETS, NSTATUS, OP, OPS, STATUSES, type RequestStats } from './request-stats.js';
import { CONDITIONS, ZoneCensus } from './zone-census.js';

const PREFIX = 'vhost_user_zbd_';

/** What the metrics read, owned by the serve command. */
export interface MetricsSources {
  stats: RequestStats;
  numQueues: number;
  /** Requests popped from queue q and not completed. */
  inflight(q: number): number;
  backend: Backend;
  frontendConnected(): boolean;
  /** The queues' busy polling (serve's VhostUserServer.poll.stats). */
  poll?: BusyPollStats;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly src: MetricsSources;
  /** The zone census of the scrape in progress: one zone report serves all zone gauges. */
  private census: Promise<ZoneCensus> | null = null;

  constructor(src: MetricsSources, o: { processMetrics?: boolean } = {}) {
    this.src = src;
    const r = this.registry;
    const s = src.stats;

    new Counter({
      name: `${PREFIX}requests_total`, help: 'Requests completed, by operation and virtio-blk status.',
      labelNames: ['op', 'status'] as const, registers: [r],
      collect() {
        this.reset();
        for (let op = 0; op < OPS.length; op++) {
          for (let st = 0; st < NSTATUS; st++) {
            const n = s.requests[op * NSTATUS + st];
            // Every op has its ok series from the start (rate() needs a first sample); others once seen.
            if (n > 0 || st === 0) this.inc({ op: OPS[op], status: STATUSES[st] }, n);
          }
        }
      },
    });
    new Counter({
      name: `${PREFIX}bytes_total`, help: 'Payload bytes of successful reads, writes and zone appends.',
      labelNames: ['op'] as const, registers: [r],
      collect() {
        this.reset();
        for (const op of [OP.READ, OP.WRITE, OP.APPEND]) this.inc({ op: OPS[op] }, s.bytes[op]);
      },
    });
    r.registerMetric(requestDurationHistogram(s) as unknown as Metric);
    new Counter({
      name: `${PREFIX}zone_resets_total`, help: 'Successful zone reset commands from the guest (reset-all counts once).',
      registers: [r],
      collect() { this.reset(); this.inc(s.count(OP.RESET) + s.count(OP.RESET_ALL)); },
    });
    new Counter({
      name: `${PREFIX}zone_finishes_total`, help: 'Successful zone finish commands from the guest.',
      registers: [r],
      collect() { this.reset(); this.inc(s.count(OP.FINISH)); },
    });
    new Gauge({
      name: `${PREFIX}inflight_requests`, help: 'Requests taken from a virtqueue and not yet completed.',
      labelNames: ['queue'] as const, registers: [r],
      collect() { for (let q = 0; q < src.numQueues; q++) this.set({ queue: String(q) }, src.inflight(q)); },
    });
    new Gauge({
      name: `${PREFIX}frontend_connected`, help: '1 while a vhost-user front-end (VMM) is connected.',
      registers: [r],
      collect() { this.set(src.frontendConnected() ? 1 : 0); },
    });

    const poll = src.poll;
    if (poll) {
      new Counter({
        name: `${PREFIX}kick_wakeups_total`, help: 'Times a queue was woken by its kick eventfd (requests found by busy polling need none).',
        registers: [r],
        collect() { this.reset(); this.inc(poll.wakeups); },
      });
      new Counter({
        name: `${PREFIX}poll_windows_total`, help: 'Busy-poll windows spun after serving a queue.', registers: [r],
        collect() { this.reset(); this.inc(poll.turns); },
      });
      new Counter({
        name: `${PREFIX}poll_hits_total`, help: 'Busy-poll windows that found requests without a kick.', registers: [r],
        collect() { this.reset(); this.inc(poll.hits); },
      });
      new Gauge({
        name: `${PREFIX}poll_window_seconds`, help: 'Current adaptive busy-poll window (0: the queues are served from kicks only).',
        registers: [r],
        collect() { this.set(poll.windowUs / 1e6); },
      });
    }

    const zoned = src.backend.info.zoned;
    if (zoned) {
      const census = (): Promise<ZoneCensus> => this.zoneCensus();
      new Gauge({
        name: `${PREFIX}zones`, help: 'Zones by condition, from a zone report at scrape time.',
        labelNames: ['condition'] as const, registers: [r],
        async collect() {
          const c = await census();
          CONDITIONS.forEach((cd, i) => this.set({ condition: cd.label }, c.counts[i]));
        },
      });
      new Gauge({
        name: `${PREFIX}open_zones`, help: 'Implicitly and explicitly open zones.', registers: [r],
        async collect() { this.set((await census()).open); },
      });
      new Gauge({
        name: `${PREFIX}active_zones`, help: 'Open and closed zones (they count against max active).', registers: [r],
        async collect() { this.set((await census()).active); },
      });
      new Gauge({
        name: `${PREFIX}max_open_zones`, help: 'Max open zones the disk advertises (0 = unlimited).', registers: [r],
        collect() { this.set(zoned.maxOpenZones); },
      });
      new Gauge({
        name: `${PREFIX}max_active_zones`, help: 'Max active zones the disk advertises (0 = unlimited).', registers: [r],
        collect() { this.set(zoned.maxActiveZones); },
      });
      new Gauge({
        name: `${PREFIX}zone_written_bytes`, help: 'Bytes below the write pointers of sequential zones plus conventional zones.', registers: [r],
        async collect() { this.set((await census()).writtenSectors * 512); },
      });
    }
    if (o.processMetrics !== false) collectDefaultMetrics({ register: r });
  }

  /** The census of the current scrape, or a fresh one when the registry is read directly. */
  zoneCensus(): Promise<ZoneCensus> {
    return this.census ?? ZoneCensus.of(this.src.backend);
  }

  /** The text exposition format (one zone report per call). */
  async text(): Promise<string> {
    this.census = ZoneCensus.of(this.src.backend);
    try {
      return await this.registry.metrics();
    } finally {
      this.census = null;
    }
  }

  get contentType(): string { return this.registry.contentType; }
}

/**
 * vhost_user_zbd_request_duration_seconds{op}: a histogram whose buckets already live in
 * RequestStats, exposed through prom-client's metric interface (its Histogram class can only
 * be fed one observation at a time, which would put a label lookup on every request).
 */
function requestDurationHistogram(s: RequestStats) {
  const name = `${PREFIX}request_duration_seconds`;
  const les = [...DURATION_BUCKETS.map(String), '+Inf'];
  return {
    name,
    help: 'Time from taking a request off the virtqueue to writing its status, by operation.',
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    reset(): void { /* the counts are the device's; nothing to forget */ },
    get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (let op = 0; op < OPS.length; op++) {
        const count = s.total(op);
        // Reads, writes and appends always; the rest once they happened.
        if (count === 0 && op !== OP.READ && op !== OP.WRITE && op !== OP.APPEND) continue;
        const cum = s.cumulativeBuckets(op);
        for (let b = 0; b < les.length; b++) values.push({ labels: { le: les[b], op: OPS[op] }, value: cum[b], metricName: `${name}_bucket` });
        values.push({ labels: { op: OPS[op] }, value: s.durationSum[op], metricName: `${name}_sum` });
        values.push({ labels: { op: OPS[op] }, value: count, metricName: `${name}_count` });
      }
      return Promise.resolve({ name, help: this.help, type: this.type, aggregator: this.aggregator, values });
    },
  };
}
