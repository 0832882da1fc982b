// An emulated host-managed disk: the zone engine decides, a Storage moves the bytes.
// Shared by the memory and file backends so both answer identically.
import type { Logger } from 'pino';
import type { AppendCallback, AppendResult, Backend, BackendInfo } from './backend.js';
import { iovBytes, iovFill, iovSlice, type IoVec } from '../iovec.js';
import type { Storage } from './storage.js';
import { ZoneEngine } from '../zoned/zone-engine.js';
import { SECTOR_SHIFT, SECTOR_SIZE, ZoneOp, ZoneResult, type ZoneSink } from '../zoned/types.js';
import { runSoon } from '../run-soon.js';

type Resolver = (r: ZoneResult) => void;

export interface EmulatedBackendOptions {
  readOnly?: boolean;
  serial: string;
  logger?: Logger;
}

export class EmulatedBackend implements Backend {
  readonly info: BackendInfo;
  readonly engine: ZoneEngine;
  private readonly storage: Storage;
  private readonly log?: Logger;
  /** Set when the zone table could not be persisted: nothing more may be acknowledged. */
  private fatal: Error | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  private closed = false;
  /** Writes released by the engine whose zone state is persisted, and they acknowledged, in one go per turn. */
  private ackTokens: unknown[] = [];
  private ackResults: ZoneResult[] = [];
  private ackScheduled = false;
  // endBatch() may have acknowledged the turn's writes already.
  private readonly ackFn = (): void => { if (this.ackScheduled) this.persistAndAcknowledge(); };
  /**
   * Zones whose old data is still being freed after a reset: their data transfers (and
   * reads) wait here, in arrival order, so the freeing cannot punch newly written data.
   */
  private readonly discarding = new Map<number, Array<() => void>>();
  private readonly discardJobs = new Set<Promise<void>>();

  constructor(engine: ZoneEngine, storage: Storage, opts: EmulatedBackendOptions) {
    const g = engine.geo;
    this.engine = engine;
    this.storage = storage;
    this.log = opts.logger;
    this.info = {
      capacitySectors: g.capacitySectors,
      blockSize: g.blockSize,
      physicalBlockSize: g.blockSize,
      readOnly: opts.readOnly ?? false,
      serial: opts.serial,
      zoned: {
        zoneSectors: g.zoneSectors,
        zoneCapacitySectors: g.zoneCapacitySectors,
        nrZones: g.nrZones,
        conventionalZones: g.conventionalZones,
        maxOpenZones: g.maxOpenZones,
        maxActiveZones: g.maxActiveZones,
        maxAppendSectors: g.maxAppendSectors,
      },
    };
  }

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitRead(sector, iov, resolve));
  }

  submitRead(sector: number, iov: IoVec, done: Resolver): void {
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) { done(ZoneResult.INVALID); return; }
    const r = this.engine.checkRead(sector, bytes >>> SECTOR_SHIFT);
    if (r !== ZoneResult.OK) { done(r); return; }
    const dataBytes = this.engine.readDataSectors * SECTOR_SIZE;
    if (this.discarding.size !== 0 && dataBytes > 0) {
      const zone = this.engine.zoneOf(sector);
      if (this.discarding.has(zone)) {
        this.discarded(zone).then(() => this.readData(sector, iov, bytes, dataBytes, done), () => done(ZoneResult.IO_ERROR));
        return;
      }
    }
    this.readData(sector, iov, bytes, dataBytes, done);
  }

  /** The checked part of a read: written sectors from storage, unwritten ones as zeroes. */
  private readData(sector: number, iov: IoVec, bytes: number, dataBytes: number, done: Resolver): void {
    if (dataBytes !== bytes) {
      // Unwritten sectors of a sequential zone read as zeroes, whatever the file holds.
      iovFill(iovSlice(iov, dataBytes, bytes), 0);
      if (dataBytes === 0) { done(ZoneResult.OK); return; }
      iov = iovSlice(iov, 0, dataBytes);
    } else if (bytes === 0) {
      done(ZoneResult.OK);
      return;
    }
    this.storage.read(sector * SECTOR_SIZE, iov, (err) => {
      if (err) { this.log?.error({ err, sector, bytes }, 'read failed'); done(ZoneResult.IO_ERROR); } else done(ZoneResult.OK);
    });
  }

  write(sector: number, iov: IoVec): Promise<ZoneResult> {
    return new Promise((resolve) => this.submitWrite(sector, iov, resolve));
  }

  submitWrite(sector: number, iov: IoVec, done: Resolver): void {
    if (this.info.readOnly) { done(ZoneResult.READ_ONLY); return; }
    if (this.fatal) { done(ZoneResult.IO_ERROR); return; }
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) { done(ZoneResult.INVALID); return; }
    const r = this.engine.beginWrite(sector, bytes >>> SECTOR_SHIFT, done);
    if (r !== ZoneResult.OK) { done(r); return; }
    this.transfer(this.engine.opZone, sector, iov, bytes, done);
  }

  append(zoneSector: number, iov: IoVec): Promise<AppendResult> {
    return new Promise((resolve) => this.submitAppend(zoneSector, iov, (result, sector) => resolve({ result, sector })));
  }

  submitAppend(zoneSector: number, iov: IoVec, done: AppendCallback): void {
    if (this.info.readOnly) { done(ZoneResult.READ_ONLY, 0); return; }
    if (this.fatal) { done(ZoneResult.IO_ERROR, 0); return; }
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) { done(ZoneResult.INVALID, 0); return; }
    let target = 0;
    const resolve: Resolver = (result) => done(result, target);
    const r = this.engine.beginAppend(zoneSector, bytes >>> SECTOR_SHIFT, resolve);
    target = this.engine.opSector;
    if (r !== ZoneResult.OK) { resolve(r); return; }
    this.transfer(this.engine.opZone, target, iov, bytes, resolve);
  }

  /**
   * The device popped a batch: start its transfers, and acknowledge what completed in one
   * zone-table write per zone now rather than in a microtask, so the batch's completions go
   * back to the guest together.
   */
  endBatch(): void {
    this.storage.flush();
    if (this.ackScheduled) this.persistAndAcknowledge();
  }

  /** Move the data of an allowed write; zone -1 = untracked (conventional or empty write). */
  private transfer(zone: number, sector: number, iov: IoVec, bytes: number, resolve: Resolver): void {
    if (zone >= 0 && this.discarding.size !== 0) {
      const waiting = this.discarding.get(zone);
      if (waiting !== undefined) { waiting.push(() => this.transfer(zone, sector, iov, bytes, resolve)); return; }
    }
    if (bytes === 0) {
      if (zone >= 0) this.complete(zone, sector, true); else resolve(ZoneResult.OK);
      return;
    }
    this.storage.write(sector * SECTOR_SIZE, iov, (err) => {
      if (err) this.log?.error({ err, sector, zone }, 'write failed');
      if (zone >= 0) this.complete(zone, sector, err === null); else resolve(err === null ? ZoneResult.OK : ZoneResult.IO_ERROR);
    });
  }

  private complete(zone: number, sector: number, ok: boolean): void {
    const e = this.engine;
    e.completeWrite(zone, sector, ok);
    const tokens = e.releasedTokens, results = e.releasedResults;
    for (let i = 0; i < tokens.length; i++) {
      this.ackTokens.push(tokens[i]);
      this.ackResults.push(results[i]);
    }
    // Persist before acknowledging: an acknowledged write is always below the stored wp.
    // Writes that complete in the same turn (a kick's worth) share one zone table write per
    // zone instead of one each. Queued before any waiter woken below can run.
    if (!this.ackScheduled && this.ackTokens.length > 0) {
      this.ackScheduled = true;
      runSoon(this.ackFn);
    }
    if (e.zoneIdle(zone)) this.wakeIdle();
  }

  private persistAndAcknowledge(): void {
    this.ackScheduled = false;
    const persisted = this.persistDirty();
    const tokens = this.ackTokens, results = this.ackResults;
    this.ackTokens = [];
    this.ackResults = [];
    for (let i = 0; i < tokens.length; i++) {
      (tokens[i] as Resolver)(persisted ? results[i] : ZoneResult.IO_ERROR);
    }
  }

  private persistDirty(): boolean {
    if (this.fatal) { this.engine.drainDirty(() => undefined); return false; }
    try {
      this.engine.drainDirty((z) => this.storage.persistZone(z, this.engine.persistedState(z)));
      return true;
    } catch (err) {
      this.fatal = err as Error;
      this.log?.fatal({ err }, 'zone table write failed: refusing further writes so no unpersisted write is acknowledged');
      return false;
    }
  }

  private wakeIdle(): void {
    const w = this.idleWaiters.splice(0);
    for (const f of w) f();
  }

  private async waitIdle(zone: number): Promise<void> {
    while (zone < 0 ? !this.engine.idle : !this.engine.zoneIdle(zone)) {
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
  }

  async flush(): Promise<ZoneResult> {
    if (this.fatal) return ZoneResult.IO_ERROR;
    try {
      await this.storage.sync();
      return ZoneResult.OK;
    } catch (err) {
      this.log?.error({ err }, 'flush failed');
      return ZoneResult.IO_ERROR;
    }
  }

  reportZones(sector: number, maxZones: number, sink: ZoneSink): Promise<number> {
    return Promise.resolve(this.engine.report(sector, maxZones, sink));
  }

  async zoneMgmt(op: ZoneOp, sector: number): Promise<ZoneResult> {
    const fault = op === ZoneOp.SET_READONLY || op === ZoneOp.SET_OFFLINE;
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    if (this.fatal) return ZoneResult.IO_ERROR;
    const e = this.engine;
    const g = e.geo;
    let zone = -1;
    if (op !== ZoneOp.RESET_ALL) {
      if (!(sector >= 0 && sector < g.capacitySectors)) return ZoneResult.INVALID;
      zone = e.zoneOf(sector);
    }
    // Writes in flight to the zone finish first, in order, as on a drive's command queue.
    await this.waitIdle(zone);
    const r = e.zoneMgmt(op, sector);
    if (r !== ZoneResult.OK) return r;
    const reset: number[] = [];
    try {
      e.drainDirty((z) => {
        this.storage.persistZone(z, e.persistedState(z));
        if (!fault && e.persistedWp(z) === e.zoneStart(z)) reset.push(z);
      });
    } catch (err) {
      this.fatal = err as Error;
      this.log?.fatal({ err, op, sector }, 'zone table write failed');
      return ZoneResult.IO_ERROR;
    }
    // Only after the reset is persisted may the old data go (a crash in between keeps it, unreachable).
    if (reset.length > 0) await this.discardZones(reset);
    return ZoneResult.OK;
  }

  async powerLoss(wpAfter: ReadonlyMap<number, number>): Promise<void> {
    const e = this.engine;
    await this.waitIdle(-1);
    const before = new Map<number, number>();
    for (const z of wpAfter.keys()) before.set(z, e.persistedWp(z));
    e.powerLoss(wpAfter);
    if (!this.persistDirty()) throw this.fatal as Error;
    // The lost tails hold no data any more: free them (reads above the wp are zeroes anyway).
    const jobs: Promise<void>[] = [];
    for (const [z, wp] of wpAfter) {
      const old = before.get(z) as number;
      if (old > wp) {
        jobs.push(this.storage.discard(wp * SECTOR_SIZE, (old - wp) * SECTOR_SIZE).catch((err: unknown) => {
          this.log?.warn({ err, zone: z }, 'could not free the space of data lost by the power cut');
        }));
      }
    }
    await Promise.all(jobs);
    await this.storage.sync();
  }

  /** Until zone z's old data is freed (at once if it is not being freed). */
  private discarded(z: number): Promise<void> {
    const waiting = this.discarding.get(z);
    return waiting === undefined ? Promise.resolve() : new Promise<void>((r) => waiting.push(r));
  }

  /**
   * Free the space of reset zones, neighbours as one range. The loop keeps serving other
   * zones meanwhile; writes to these zones wait for it (see transfer).
   */
  private async discardZones(zones: readonly number[]): Promise<void> {
    const e = this.engine;
    // A zone still being freed from an earlier reset got no data since (its writes wait).
    const mine = zones.filter((z) => !this.discarding.has(z)).sort((a, b) => a - b);
    for (const z of mine) this.discarding.set(z, []);
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < mine.length;) {
      let j = i + 1;
      while (j < mine.length && mine[j] === mine[j - 1] + 1) j++;
      const first = mine[i], last = mine[j - 1];
      const offset = e.zoneStart(first) * SECTOR_SIZE;
      const length = (e.zoneStart(last) + e.zoneLen(last)) * SECTOR_SIZE - offset;
      const job = this.storage.discard(offset, length).catch((err: unknown) => {
        this.log?.warn({ err, zones: `${first}..${last}` }, 'could not free the space of reset zones');
      });
      this.discardJobs.add(job);
      void job.then(() => this.discardJobs.delete(job));
      jobs.push(job);
      i = j;
    }
    await Promise.all(jobs);
    for (const z of mine) {
      const waiting = this.discarding.get(z) as Array<() => void>;
      this.discarding.delete(z);
      for (const go of waiting) go();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.waitIdle(-1);
    await Promise.all([...this.discardJobs]);
    try { await this.storage.sync(); } catch (err) { this.log?.error({ err }, 'final flush failed'); }
    await this.storage.close();
  }
}
