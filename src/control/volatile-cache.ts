// Power-loss emulation (serve --volatile-cache): a Backend wrapper that remembers which
// acknowledged writes no completed flush covers yet, as a drive with a volatile write cache
// would lose them, and can roll them back on a power cut. The data itself always goes to the
// backend at once; what this keeps is how to undo it:
// - sequential zones: the unflushed extents in write order (acknowledged in sector order, so
//   they form a suffix of the zone's data: rolling back = moving the write pointer down to a
//   write boundary);
// - conventional zones (and regular disks): an undo log of the blocks each write overwrote,
//   read before the write.
// Zone management (reset, finish, offline...) makes the zone's state durable, as on drives
// where it is a non-cached command. Only wrapped in when --volatile-cache is given: without
// it the request path does not pass here at all.
import type { Logger } from 'pino';
import type { AppendResult, Backend, BackendInfo, IoVec, ZoneSink } from '../backends/backend.js';
import { iovBytes } from '../backends/iovec.js';
import { SECTOR_SHIFT, SECTOR_SIZE, ZoneOp, ZoneResult } from '../zoned/types.js';
import type { Rng } from './rng.js';

export type PowerCutPolicy = 'all' | 'none' | 'random';
export const POWER_CUT_POLICIES: readonly PowerCutPolicy[] = ['all', 'none', 'random'];

interface Extent { start: number; end: number; seq: number }
interface UndoEntry { sector: number; old: Uint8Array; seq: number }

/** What a power cut did to one zone (or, for a regular disk, zone -1). */
export interface ZoneLoss {
  zone: number;
  type: 'sequential' | 'conventional';
  /** Acknowledged writes not covered by a flush. */
  unflushedWrites: number;
  lostWrites: number;
  lostBytes: number;
  /** Sequential zones: write pointer before and after (sectors). */
  wpBefore?: number;
  wpAfter?: number;
}

export interface VolatileCacheOptions {
  /** The guest's write-cache setting, read per write (write-through: nothing to remember). */
  writeback: () => boolean;
  logger: Logger;
  /** Undo data kept for conventional zones before the oldest becomes durable (bytes). */
  maxUndoBytes?: number;
}

export const DEFAULT_MAX_UNDO_BYTES = 256 << 20;

export class VolatileCacheBackend implements Backend {
  readonly info: BackendInfo;
  private readonly inner: Backend;
  private readonly writeback: () => boolean;
  private readonly log: Logger;
  private readonly maxUndoBytes: number;
  private readonly zoneSectors: number;
  private readonly convEnd: number;
  private seq = 0;
  private readonly seqZones = new Map<number, Extent[]>();
  private undo: UndoEntry[] = [];
  /** Entries of `undo` before this index are gone (destaged). */
  private undoHead = 0;
  private undoBytes = 0;
  private warnedDestage = false;
  /** Operations inside this wrapper (a cut waits for them). */
  private busy = 0;
  private idleWaiters: (() => void)[] = [];
  /** Set during a power cut: new requests wait for it to finish. */
  private gate: Promise<void> | null = null;

  constructor(inner: Backend, o: VolatileCacheOptions) {
    this.inner = inner;
    this.info = inner.info;
    this.writeback = o.writeback;
    this.log = o.logger;
    this.maxUndoBytes = o.maxUndoBytes ?? DEFAULT_MAX_UNDO_BYTES;
    const z = inner.info.zoned;
    this.zoneSectors = z ? z.zoneSectors : 0;
    // A regular disk is all "conventional": every write may overwrite.
    this.convEnd = z ? z.conventionalZones * z.zoneSectors : inner.info.capacitySectors;
  }

  /** Bytes acknowledged but not yet covered by a flush. */
  get unflushedBytes(): number {
    let n = 0;
    for (const l of this.seqZones.values()) for (const e of l) n += (e.end - e.start) * SECTOR_SIZE;
    return n + this.undoBytes;
  }
  get unflushedWrites(): number {
    let n = this.undo.length - this.undoHead;
    for (const l of this.seqZones.values()) n += l.length;
    return n;
  }

  private enter(): void { this.busy++; }
  private leave(): void {
    if (--this.busy === 0 && this.idleWaiters.length) for (const f of this.idleWaiters.splice(0)) f();
  }

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    if (this.gate) return this.gate.then(() => this.read(sector, iov));
    return this.inner.read(sector, iov);
  }

  async write(sector: number, iov: IoVec): Promise<ZoneResult> {
    if (this.gate) await this.gate;
    if (!this.writeback()) return this.inner.write(sector, iov);
    this.enter();
    try {
      const bytes = iovBytes(iov);
      if (sector < this.convEnd) {
        // Read what the write will overwrite (only the part in conventional space; a write
        // crossing into a sequential zone is refused by the zone rules anyway).
        const n = Math.min(bytes, (this.convEnd - sector) * SECTOR_SIZE);
        const old = new Uint8Array(n);
        if (n > 0) {
          const r = await this.inner.read(sector, [old]);
          if (r !== ZoneResult.OK) return this.inner.write(sector, iov);
        }
        const w = await this.inner.write(sector, iov);
        if (w === ZoneResult.OK && n > 0) this.remember(sector, old);
        return w;
      }
      const w = await this.inner.write(sector, iov);
      if (w === ZoneResult.OK && bytes > 0) this.extent(sector, sector + (bytes >>> SECTOR_SHIFT));
      return w;
    } finally {
      this.leave();
    }
  }

  async append(zoneSector: number, iov: IoVec): Promise<AppendResult> {
    if (this.gate) await this.gate;
    if (!this.writeback()) return this.inner.append(zoneSector, iov);
    this.enter();
    try {
      const a = await this.inner.append(zoneSector, iov);
      const bytes = iovBytes(iov);
      if (a.result === ZoneResult.OK && bytes > 0) this.extent(a.sector, a.sector + (bytes >>> SECTOR_SHIFT));
      return a;
    } finally {
      this.leave();
    }
  }

  async flush(): Promise<ZoneResult> {
    if (this.gate) await this.gate;
    // A flush covers the writes completed before it was issued.
    const upTo = this.seq;
    const r = await this.inner.flush();
    if (r === ZoneResult.OK) this.commit(upTo);
    return r;
  }

  async reportZones(sector: number, maxZones: number, sink: ZoneSink): Promise<number> {
    if (this.gate) await this.gate;
    return this.inner.reportZones(sector, maxZones, sink);
  }

  async zoneMgmt(op: ZoneOp, sector: number): Promise<ZoneResult> {
    if (this.gate) await this.gate;
    const r = await this.inner.zoneMgmt(op, sector);
    if (r === ZoneResult.OK && op !== ZoneOp.OPEN && op !== ZoneOp.CLOSE) {
      if (op === ZoneOp.RESET_ALL) this.seqZones.clear();
      else if (this.zoneSectors > 0) this.seqZones.delete(Math.floor(sector / this.zoneSectors));
    }
    return r;
  }

  powerLoss(wpAfter: ReadonlyMap<number, number>): Promise<void> {
    return this.inner.powerLoss ? this.inner.powerLoss(wpAfter) : Promise.resolve();
  }

  close(): Promise<void> { return this.inner.close(); }

  private extent(start: number, end: number): void {
    const z = Math.floor(start / this.zoneSectors);
    let l = this.seqZones.get(z);
    if (!l) { l = []; this.seqZones.set(z, l); }
    l.push({ start, end, seq: ++this.seq });
  }

  private remember(sector: number, old: Uint8Array): void {
    this.undo.push({ sector, old, seq: ++this.seq });
    this.undoBytes += old.byteLength;
    if (this.undoBytes > this.maxUndoBytes) {
      // The emulated cache is full: its oldest overwrites reach the medium, as a drive destages.
      // Dropped from the front by an index; the array is compacted once half of it is dead.
      while (this.undoBytes > this.maxUndoBytes && this.undoHead < this.undo.length) this.undoBytes -= this.undo[this.undoHead++].old.byteLength;
      if (this.undoHead > this.undo.length >>> 1) { this.undo = this.undo.slice(this.undoHead); this.undoHead = 0; }
      if (!this.warnedDestage) {
        this.warnedDestage = true;
        this.log.warn({ maxUndoBytes: this.maxUndoBytes }, 'volatile cache: more unflushed overwrites than the undo limit; the oldest count as written to the medium (said once)');
      }
    }
  }

  private commit(upTo: number): void {
    for (const [z, l] of this.seqZones) {
      let i = 0;
      while (i < l.length && l[i].seq <= upTo) i++;
      if (i === l.length) this.seqZones.delete(z); else if (i > 0) l.splice(0, i);
    }
    if (this.undo.length) {
      // Entries are in seq order: the flushed ones are a prefix.
      let i = this.undoHead;
      while (i < this.undo.length && this.undo[i].seq <= upTo) this.undoBytes -= this.undo[i++].old.byteLength;
      if (i === this.undo.length) { this.undo = []; this.undoHead = 0; this.undoBytes = 0; } else this.undoHead = i;
    }
  }

  /**
   * The power cut: requests wait until it is over; once the writes inside finish, unflushed
   * data is discarded by policy and the result made durable. The front-end must be gone
   * (nobody to acknowledge to). Returns what was lost, per zone with unflushed data.
   */
  async cut(policy: PowerCutPolicy, rng: Rng): Promise<ZoneLoss[]> {
    let open!: () => void;
    this.gate = new Promise<void>((r) => { open = r; });
    try {
      while (this.busy > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
      const losses: ZoneLoss[] = [];
      await this.cutConventional(policy, rng, losses);
      const wpAfter = new Map<number, number>();
      for (const [z, l] of [...this.seqZones].sort((a, b) => a[0] - b[0])) {
        const from = l[0].start, to = l[l.length - 1].end;
        let wp = to;
        if (policy === 'all') wp = from;
        else if (policy === 'random') {
          // Whole writes survive or go, never a torn one: btrfs, for one, places its next tree
          // block at the write pointer and needs it node-aligned after recovery.
          const kept = rng.upTo(l.length);
          wp = kept === 0 ? from : l[kept - 1].end;
        }
        const lostWrites = l.filter((e) => e.end > wp).length;
        losses.push({ zone: z, type: 'sequential', unflushedWrites: l.length, lostWrites, lostBytes: (to - wp) * SECTOR_SIZE, wpBefore: to, wpAfter: wp });
        if (wp < to) wpAfter.set(z, wp);
      }
      this.seqZones.clear();
      // Open zones close and lost tails go even when nothing was lost (a restart of the drive).
      await this.powerLoss(wpAfter);
      const f = await this.inner.flush();
      if (f !== ZoneResult.OK) this.log.error({ result: f }, 'power cut: flushing the rolled-back state failed');
      losses.sort((a, b) => a.zone - b.zone);
      return losses;
    } finally {
      this.gate = null;
      open();
    }
  }

  /** Conventional space: undo lost writes newest first, except blocks a kept later write covers. */
  private async cutConventional(policy: PowerCutPolicy, rng: Rng, losses: ZoneLoss[]): Promise<void> {
    const entries = this.undo.slice(this.undoHead);
    this.undo = [];
    this.undoHead = 0;
    this.undoBytes = 0;
    if (entries.length === 0) return;
    const lost = entries.map(() => (policy === 'all' ? true : policy === 'none' ? false : rng.next() < 0.5));
    const zoneOf = (s: number): number => (this.zoneSectors > 0 ? Math.floor(s / this.zoneSectors) : -1);
    const byZone = new Map<number, ZoneLoss>();
    for (let i = entries.length - 1; i >= 0; i--) {
      const u = entries[i];
      const z = zoneOf(u.sector);
      let zl = byZone.get(z);
      if (!zl) { zl = { zone: z, type: 'conventional', unflushedWrites: 0, lostWrites: 0, lostBytes: 0 }; byZone.set(z, zl); }
      zl.unflushedWrites++;
      if (!lost[i]) continue;
      zl.lostWrites++;
      const n = u.old.byteLength >>> SECTOR_SHIFT;
      let pieces: [number, number][] = [[u.sector, u.sector + n]];
      for (let j = i + 1; j < entries.length && pieces.length; j++) {
        if (lost[j]) continue;
        const k = entries[j], ks = k.sector, ke = k.sector + (k.old.byteLength >>> SECTOR_SHIFT);
        pieces = pieces.flatMap(([s, e]): [number, number][] => {
          if (ke <= s || ks >= e) return [[s, e]];
          const out: [number, number][] = [];
          if (s < ks) out.push([s, ks]);
          if (ke < e) out.push([ke, e]);
          return out;
        });
      }
      for (const [s, e] of pieces) {
        const at = (s - u.sector) * SECTOR_SIZE;
        const r = await this.inner.write(s, [u.old.subarray(at, at + (e - s) * SECTOR_SIZE)]);
        if (r !== ZoneResult.OK) this.log.error({ sector: s, sectors: e - s, result: r }, 'power cut: restoring overwritten blocks failed');
        zl.lostBytes += (e - s) * SECTOR_SIZE;
      }
    }
    for (const zl of byZone.values()) losses.push(zl);
  }
}
