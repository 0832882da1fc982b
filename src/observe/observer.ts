// Everything a served disk exposes for watching it, built once by `serve`: the metrics
// registry and the read-only route table that the --http listener and the control socket mount.
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import type { BlkDevice } from '../blk/blk-device.js';
import type { VhostUserServer } from '../vhost-user/server.js';
import { DaemonMetrics, type MetricsSources } from './metrics.js';
import { RequestStats } from './request-stats.js';
import { observeRoutes, registerObserveApiRoutes, type RouteRegistrar, type RouteTable } from './observe-routes.js';

export interface Observer {
  readonly metrics: DaemonMetrics;
  /** Read-only routes: GET / (live page), /live.css, /live.js, /metrics, /zones, /zones.svg, /live.json, /events. */
  readonly routes: RouteTable;
  /**
   * Adds GET /metrics, /zones.svg and /live.json (read-only) to a request/reply API router:
   * the control socket's ApiRouter.
   */
  registerApiRoutes(router: RouteRegistrar): void;
  /** Ends event streams and the sampling timer. */
  close(): void;
}

export function createObserver(o: { device: BlkDevice; backend: Backend; server: VhostUserServer; subject: string; logger: Logger }): Observer {
  // Installed before any fault-injection hook, so injected delays and errors are counted too.
  const stats = new RequestStats();
  const removeHooks = o.device.addHooks(stats);
  const sources: MetricsSources = {
    stats,
    numQueues: o.device.numQueues,
    inflight: (q) => o.device.inflightRequests(q),
    backend: o.backend,
    frontendConnected: () => o.server.connection !== null,
    poll: o.server.poll.stats,
  };
  const metrics = new DaemonMetrics(sources);
  const ctx = { sources, metrics, subject: o.subject, logger: o.logger };
  const r = observeRoutes(ctx);
  return {
    metrics, routes: r.routes,
    close() { r.close(); removeHooks(); },
    registerApiRoutes: (router) => registerObserveApiRoutes(router, ctx, r.sampler),
  };
}
