// The power cut (POST /power-cut, or the front-end leaving with --power-cut-on-disconnect):
// the front-end is dropped as if the plug were pulled, then unflushed data is discarded by
// policy (volatile-cache.ts) and open zones close, as after a drive restart. The daemon then
// serves the next boot.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import type { VhostUserServer } from '../vhost-user/server.js';
import { Rng } from './rng.js';
import type { PowerCutPolicy, VolatileCacheBackend, ZoneLoss } from './volatile-cache.js';
import { ApiError } from './api-server.js';

export interface PowerCutSummary {
  policy: PowerCutPolicy;
  seed: number;
  /** Why: "api" or "front-end disconnected". */
  trigger: string;
  /** A front-end was connected and was dropped. */
  frontendDropped: boolean;
  /** False without --volatile-cache: every acknowledged write was already durable. */
  volatileCache: boolean;
  lostWrites: number;
  lostBytes: number;
  zones: ZoneLoss[];
}

export interface PowerControlOptions {
  server: VhostUserServer;
  /** The backend the device uses (the volatile-cache wrapper when there is one). */
  backend: Backend;
  cache: VolatileCacheBackend | null;
  logger: Logger;
  /** Cut power when the front-end disconnects by itself (not on a cut we caused, nor at daemon shutdown). */
  onDisconnect?: { policy: PowerCutPolicy; seed?: number } | null;
}

export class PowerControl {
  private readonly o: PowerControlOptions;
  private readonly log: Logger;
  private running: Promise<PowerCutSummary> | null = null;
  /** Set while we drop the front-end ourselves, so its disconnect is not a second cut. */
  private dropping = false;
  private stopped = false;
  last: PowerCutSummary | null = null;

  constructor(o: PowerControlOptions) {
    this.o = o;
    this.log = o.logger;
    o.server.on('disconnect', (_conn: unknown, reason: unknown) => {
      const p = this.o.onDisconnect;
      if (!p || this.dropping || this.stopped || this.running) return;
      // Requests of the next front-end wait (volatile-cache gate) until the cut is done.
      this.log.warn({ reason, policy: p.policy }, 'front-end disconnected with --power-cut-on-disconnect: cutting power');
      this.start(p.policy, p.seed, 'front-end disconnected').catch((err: unknown) => this.log.error({ err }, 'power cut on disconnect failed'));
    });
  }

  /** The daemon is shutting down: its own disconnect is not a power cut. */
  stop(): void { this.stopped = true; }

  get inProgress(): boolean { return this.running !== null; }

  /** Cut power now (API). Refused while another cut runs. */
  cut(policy: PowerCutPolicy, seed?: number): Promise<PowerCutSummary> {
    if (this.running) throw new ApiError('busy', 'a power cut is already in progress', null);
    return this.start(policy, seed, 'api');
  }

  private start(policy: PowerCutPolicy, seed: number | undefined, trigger: string): Promise<PowerCutSummary> {
    const p = this.run(policy, seed ?? randomInt(0, 2 ** 31), trigger);
    this.running = p;
    const clear = (): void => { this.running = null; };
    p.then(clear, clear);
    return p;
  }

  private async run(policy: PowerCutPolicy, seed: number, trigger: string): Promise<PowerCutSummary> {
    const { server, cache, backend } = this.o;
    const conn = server.connection;
    let frontendDropped = false;
    if (conn && trigger === 'api') {
      this.dropping = true;
      try {
        // Requests already running finish (nobody sees their completion); delayed ones are
        // released by the ring drain.
        await conn.close('power cut');
        frontendDropped = true;
      } finally {
        this.dropping = false;
      }
    }
    let zones: ZoneLoss[] = [];
    if (cache) zones = await cache.cut(policy, new Rng(seed));
    else if (backend.powerLoss) await backend.powerLoss(new Map());
    const s: PowerCutSummary = {
      policy, seed, trigger, frontendDropped: frontendDropped || trigger !== 'api', volatileCache: cache !== null,
      lostWrites: zones.reduce((n, z) => n + z.lostWrites, 0), lostBytes: zones.reduce((n, z) => n + z.lostBytes, 0), zones,
    };
    this.last = s;
    this.log.warn({
      policy, seed, trigger, lostWrites: s.lostWrites, lostBytes: s.lostBytes,
      zones: zones.filter((z) => z.lostBytes > 0).map((z) => `${z.zone}:${z.lostBytes}${z.wpAfter !== undefined ? `@wp${z.wpAfter}` : ''}`).join(' '),
    }, 'power cut done');
    return s;
  }
}
