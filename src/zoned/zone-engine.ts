// The zone engine: a pure model of a host-managed zoned drive. It decides every request
// (status, target sector, state transitions) with the zone rules on its zone table, and adds
// what only an emulated drive has: open/active resource accounting with implicit closes,
// writes in flight, and the durable state to persist. It never does I/O. Backends perform
// the data transfer it allows and persist what it marks dirty.
import { ZbdError } from '../errors.js';
import type { ZoneGeometry } from './geometry.js';
import { ZoneCond, ZoneOp, ZoneResult, type ZoneSink, type ZoneType } from './types.js';
import {
  checkAppendAt, checkAppendShape, checkMgmtTarget, checkRead, checkWriteAt, checkWriteShape, condAfterWrite,
  mgmtStep, readableSectors, reportedWp, writeOpens, type MgmtStep,
} from './zone-rules.js';
import { ZONE_FLAG_OFFLINE, ZONE_FLAG_READONLY, ZoneTable, type PersistedZoneState } from './zone-table.js';

/** A write that was allowed but whose data transfer has not completed yet. */
interface InflightWrite {
  start: number;
  end: number;
  done: boolean;
  ok: boolean;
  token: unknown;
}

export class ZoneEngine {
  readonly geo: ZoneGeometry;
  readonly table: ZoneTable;

  // The table's columns, held directly for the hot path.
  private readonly cond: Uint8Array;
  private readonly flags: Uint8Array;
  /** Allocated write pointer (sectors from the zone start): where the next write must land. */
  private readonly wpOff: Uint32Array;
  /** End of readable data (sectors from the zone start). */
  private readonly dataOff: Uint32Array;
  /** Durable write pointer: end of the completed, acknowledged prefix (= wpOff when idle). */
  private readonly durOff: Uint32Array;

  private nImpOpen = 0;
  private nExpOpen = 0;
  private nClosed = 0;

  /**
   * Implicitly open zones, least recently written first (a Map keeps insertion order). Only
   * open zones have an entry: per-zone link arrays cost 8 bytes for every zone of the disk.
   */
  private readonly lru = new Map<number, true>();

  /** In-flight writes per sequential zone, in allocation (= sector) order. */
  private readonly inflight = new Map<number, InflightWrite[]>();
  /**
   * Zones where an in-flight write failed, with the lowest failed start sector: writes below
   * it still succeed, writes above it fail, new writes are refused until the zone drains.
   */
  private readonly failedAt = new Map<number, number>();

  private readonly dirtyMark: Uint8Array;
  private dirtyList: number[] = [];

  // Outputs of the last begin*/complete call, kept on the engine to avoid allocation.
  /** Zone of the last allowed write (-1 for conventional zones: nothing to track). */
  opZone = -1;
  /** Target sector of the last allowed write or append. */
  opSector = 0;
  /** Leading sectors of the last allowed read that hold data (the rest read as zeroes). */
  readDataSectors = 0;
  /** Tokens released by the last completeWrite, with their results. */
  readonly releasedTokens: unknown[] = [];
  readonly releasedResults: ZoneResult[] = [];

  constructor(geo: ZoneGeometry, persisted?: (zone: number) => PersistedZoneState) {
    this.geo = geo;
    const t = new ZoneTable(geo);
    this.table = t;
    this.cond = t.cond;
    this.flags = t.flags;
    this.wpOff = t.wpOff;
    this.dataOff = t.dataOff;
    const n = geo.nrZones;
    this.durOff = new Uint32Array(n);
    this.dirtyMark = new Uint8Array(n);
    for (let z = 0; z < n; z++) {
      if (t.isConventional(z)) this.durOff[z] = t.wpOff[z];
      else if (persisted) this.load(z, persisted(z));
    }
  }

  /** Restore one sequential zone; open zones come back CLOSED (or EMPTY), as after power loss. */
  private load(z: number, p: PersistedZoneState): void {
    const problem = this.validatePersisted(z, p);
    if (problem) throw new ZbdError('EIMAGE', `zone ${z}: ${problem}`, { zone: z, ...p });
    const start = this.zoneStart(z);
    this.flags[z] = p.flags;
    this.wpOff[z] = this.durOff[z] = p.wp - start;
    this.dataOff[z] = p.dataEnd - start;
    const c = this.table.restingCond(z);
    this.cond[z] = c;
    if (c === ZoneCond.CLOSED) this.nClosed++;
  }

  /** Why a persisted entry cannot belong to zone z, or null if it can. */
  validatePersisted(z: number, p: PersistedZoneState): string | null {
    const start = this.zoneStart(z);
    const capEnd = start + this.zoneCap(z);
    const bs = this.geo.blockSectors;
    if (!Number.isSafeInteger(p.wp) || p.wp < start || p.wp > capEnd) {
      return `write pointer ${p.wp} outside the zone [${start}, ${capEnd}]`;
    }
    // A zone is at most 2^31 sectors and a block a power of two: a mask, not a float modulo.
    if (((p.wp - start) & (bs - 1)) !== 0) return `write pointer ${p.wp} not aligned to the ${this.geo.blockSize}-byte block`;
    if (!Number.isSafeInteger(p.dataEnd) || p.dataEnd < start || p.dataEnd > p.wp) {
      return `data end ${p.dataEnd} outside [zone start ${start}, write pointer ${p.wp}]`;
    }
    if (p.wp < capEnd && p.dataEnd !== p.wp) return `data end ${p.dataEnd} differs from write pointer ${p.wp} in a zone that is not full`;
    if ((p.flags & ~(ZONE_FLAG_READONLY | ZONE_FLAG_OFFLINE)) !== 0) return `unknown flags 0x${p.flags.toString(16)}`;
    return null;
  }

  // ---- geometry helpers -------------------------------------------------------------------

  zoneOf(sector: number): number { return this.table.zoneOf(sector); }
  zoneStart(z: number): number { return this.table.zoneStart(z); }
  zoneLen(z: number): number { return this.table.zoneLen(z); }
  zoneCap(z: number): number { return this.table.zoneCap(z); }
  zoneType(z: number): ZoneType { return this.table.type[z] as ZoneType; }
  zoneCond(z: number): ZoneCond { return this.cond[z] as ZoneCond; }
  /** Allocated write pointer (where the next write must go). */
  zoneWp(z: number): number { return this.table.wp(z); }
  zoneFlags(z: number): number { return this.flags[z]; }
  /** What the backend must persist for zone z. */
  persistedState(z: number): PersistedZoneState {
    const start = this.zoneStart(z);
    const dur = this.durOff[z];
    return { wp: start + dur, dataEnd: start + Math.min(this.dataOff[z], dur), flags: this.flags[z] };
  }
  persistedWp(z: number): number { return this.zoneStart(z) + this.durOff[z]; }
  persistedDataEnd(z: number): number { return this.zoneStart(z) + Math.min(this.dataOff[z], this.durOff[z]); }

  get openZones(): number { return this.nImpOpen + this.nExpOpen; }
  get implicitOpenZones(): number { return this.nImpOpen; }
  get explicitOpenZones(): number { return this.nExpOpen; }
  get closedZones(): number { return this.nClosed; }
  get activeZones(): number { return this.nImpOpen + this.nExpOpen + this.nClosed; }

  /** True when no write to zone z is in flight (zone management may proceed). */
  zoneIdle(z: number): boolean { return !this.inflight.has(z); }
  get idle(): boolean { return this.inflight.size === 0; }

  /** Hand every zone whose persistent state changed since the last call to fn, then forget them. */
  drainDirty(fn: (zone: number) => void): void {
    const list = this.dirtyList;
    if (list.length === 0) return;
    this.dirtyList = [];
    for (const z of list) { this.dirtyMark[z] = 0; fn(z); }
  }
  get hasDirty(): boolean { return this.dirtyList.length > 0; }

  private markDirty(z: number): void {
    if (this.dirtyMark[z] === 0) { this.dirtyMark[z] = 1; this.dirtyList.push(z); }
  }

  // ---- condition changes: the only place resource counters and the LRU move -------------

  private setCond(z: number, c: ZoneCond): void {
    const old = this.cond[z];
    if (old === c) return;
    if (old === ZoneCond.IMP_OPEN) { this.nImpOpen--; this.lruRemove(z); }
    else if (old === ZoneCond.EXP_OPEN) this.nExpOpen--;
    else if (old === ZoneCond.CLOSED) this.nClosed--;
    if (c === ZoneCond.IMP_OPEN) { this.nImpOpen++; this.lruAppend(z); }
    else if (c === ZoneCond.EXP_OPEN) this.nExpOpen++;
    else if (c === ZoneCond.CLOSED) this.nClosed++;
    this.cond[z] = c;
  }

  private lruAppend(z: number): void { this.lru.set(z, true); }
  private lruRemove(z: number): void { this.lru.delete(z); }
  /** z was written: it becomes the most recently written (re-inserted last). */
  private lruTouch(z: number): void {
    this.lru.delete(z);
    this.lru.set(z, true);
  }
  /** Least recently written implicitly open zone, or -1. */
  private lruHead(): number {
    for (const z of this.lru.keys()) return z;
    return -1;
  }

  private hasActiveRoom(): boolean {
    const m = this.geo.maxActiveZones;
    return m === 0 || this.nImpOpen + this.nExpOpen + this.nClosed < m;
  }

  /**
   * Make room for one more open zone, implicitly closing the least recently written
   * implicitly open zone if the open limit is reached.
   */
  private makeOpenRoom(): ZoneResult {
    const m = this.geo.maxOpenZones;
    if (m === 0 || this.nImpOpen + this.nExpOpen < m) return ZoneResult.OK;
    const victim = this.lruHead();
    if (victim < 0) return ZoneResult.OPEN_RESOURCE;
    this.setCond(victim, this.wpOff[victim] === 0 ? ZoneCond.EMPTY : ZoneCond.CLOSED);
    return ZoneResult.OK;
  }

  /** Resources for zone z to become open (implicitly or explicitly). ACTIVE wins over OPEN. */
  private acquireOpen(z: number): ZoneResult {
    if (this.cond[z] === ZoneCond.EMPTY && !this.hasActiveRoom()) return ZoneResult.ACTIVE_RESOURCE;
    return this.makeOpenRoom();
  }

  // ---- data path --------------------------------------------------------------------------

  /** Decide a read. On OK, readDataSectors tells how much of it is backed by data. */
  checkRead(sector: number, nsectors: number): ZoneResult {
    const r = checkRead(this.table, sector, nsectors);
    if (r === ZoneResult.OK) this.readDataSectors = readableSectors(this.table, sector, nsectors);
    return r;
  }

  /** Decide a regular write (OUT). On OK the write pointer is reserved; see completeWrite. */
  beginWrite(sector: number, nsectors: number, token?: unknown): ZoneResult {
    const t = this.table;
    this.opZone = -1;
    this.opSector = sector;
    const r = checkWriteShape(t, sector, nsectors);
    if (r !== ZoneResult.OK || nsectors === 0) return r;
    const z = t.zoneOf(sector);
    if (t.isConventional(z)) return ZoneResult.OK;
    const r2 = checkWriteAt(t, z, sector, nsectors, this.failedAt.has(z));
    if (r2 !== ZoneResult.OK) return r2;
    return this.allocate(z, nsectors, token);
  }

  /** Decide a zone append at the zone starting at `sector`. On OK, opSector is where it lands. */
  beginAppend(sector: number, nsectors: number, token?: unknown): ZoneResult {
    const t = this.table;
    this.opZone = -1;
    const r = checkAppendShape(t, sector, nsectors);
    if (r !== ZoneResult.OK) return r;
    const z = t.zoneOf(sector);
    this.opSector = t.wp(z);
    const r2 = checkAppendAt(t, z, nsectors, this.failedAt.has(z));
    if (r2 !== ZoneResult.OK || nsectors === 0) return r2;
    return this.allocate(z, nsectors, token);
  }

  /** Reserve the write pointer for an allowed write: the zone opens implicitly (or fills). */
  private allocate(z: number, nsectors: number, token: unknown): ZoneResult {
    const c = this.cond[z];
    if (writeOpens(c)) {
      const r = this.acquireOpen(z);
      if (r !== ZoneResult.OK) return r;
    }
    const startOff = this.wpOff[z];
    const endOff = startOff + nsectors;
    const next = condAfterWrite(this.table, z, endOff);
    if (next !== c) this.setCond(z, next);
    else if (c === ZoneCond.IMP_OPEN) this.lruTouch(z);
    this.wpOff[z] = this.dataOff[z] = endOff;
    const start = this.zoneStart(z) + startOff;
    const end = start + nsectors;
    let q = this.inflight.get(z);
    if (!q) { q = []; this.inflight.set(z, q); }
    q.push({ start, end, done: false, ok: false, token });
    this.opZone = z;
    this.opSector = start;
    return ZoneResult.OK;
  }

  /**
   * The data transfer of an allowed write finished. Writes to one zone are acknowledged in
   * sector order, so the persisted write pointer never passes data that is not on disk and
   * no acknowledged write lies above it. Fills releasedTokens/releasedResults with the writes
   * that may now be completed to the guest (possibly none, possibly several).
   */
  completeWrite(z: number, start: number, ok: boolean): void {
    this.releasedTokens.length = 0;
    this.releasedResults.length = 0;
    const q = this.inflight.get(z);
    const entry = q?.find((w) => w.start === start && !w.done);
    if (!q || !entry) throw new ZbdError('EARG', `no write in flight at sector ${start} of zone ${z}`, { zone: z, start });
    entry.done = true;
    entry.ok = ok;
    if (!ok) this.failedAt.set(z, Math.min(start, this.failedAt.get(z) ?? Infinity));
    const failAt = this.failedAt.get(z) ?? Infinity;
    while (q.length > 0 && q[0].done) {
      const w = q.shift() as InflightWrite;
      const good = w.ok && w.start < failAt;
      if (good) {
        this.durOff[z] = w.end - this.zoneStart(z);
        this.markDirty(z);
      }
      this.releasedTokens.push(w.token);
      this.releasedResults.push(good ? ZoneResult.OK : ZoneResult.IO_ERROR);
    }
    if (q.length === 0) {
      this.inflight.delete(z);
      if (this.failedAt.delete(z)) this.rollback(z);
    }
  }

  /** After a failed write: the zone's write pointer returns to the end of durable data. */
  private rollback(z: number): void {
    const dur = this.durOff[z];
    this.wpOff[z] = dur;
    this.dataOff[z] = dur;
    const c = this.cond[z];
    if (c === ZoneCond.FULL || c === ZoneCond.IMP_OPEN || c === ZoneCond.CLOSED) {
      // A zone filled by the failed write is not full any more. It may push the active count
      // over the limit for a moment; later opens then fail until zones are finished or reset.
      this.setCond(z, dur === 0 ? ZoneCond.EMPTY : c === ZoneCond.FULL ? ZoneCond.CLOSED : c);
    }
  }

  // ---- zone management --------------------------------------------------------------------

  /**
   * Zone management (the rules' mgmtStep, plus resources), also the fault operations
   * SET_READONLY, SET_OFFLINE and CLEAR_FAULT. The caller must let in-flight writes of the
   * zone (all zones for RESET_ALL) complete first: zoneIdle()/idle.
   */
  zoneMgmt(op: ZoneOp, sector: number): ZoneResult {
    const t = this.table;
    if (op === ZoneOp.RESET_ALL) {
      for (let z = 0; z < t.nrZones; z++) {
        if (t.isConventional(z)) continue;
        const s = mgmtStep(op, t, z);
        if (s.changed) this.apply(z, op, s);
      }
      return ZoneResult.OK;
    }
    const r = checkMgmtTarget(t, sector);
    if (r !== ZoneResult.OK) return r;
    const z = t.zoneOf(sector);
    if (!this.zoneIdle(z)) throw new ZbdError('EARG', `zone ${z} management while writes are in flight`, { zone: z, op });
    const s = mgmtStep(op, t, z);
    if (s.result !== ZoneResult.OK || !s.changed) return s.result;
    if (s.opens) {
      const r2 = this.acquireOpen(z);
      if (r2 !== ZoneResult.OK) return r2;
    }
    if (s.activates && !this.hasActiveRoom()) return ZoneResult.ACTIVE_RESOURCE;
    this.apply(z, op, s);
    return ZoneResult.OK;
  }

  /** Take zone z (idle: nothing in flight above its durable write pointer) to the step's state. */
  private apply(z: number, op: ZoneOp, s: MgmtStep): void {
    this.wpOff[z] = this.durOff[z] = s.wpOff;
    this.dataOff[z] = s.dataOff;
    this.flags[z] = s.flags;
    this.setCond(z, s.cond);
    // Open and close change only conditions, which are not persistent.
    if (op !== ZoneOp.OPEN && op !== ZoneOp.CLOSE) this.markDirty(z);
  }

  /**
   * Power loss of a drive with a volatile write cache (control API): each zone in `wpAfter`
   * keeps only its data below the given sector, and every open zone closes as after a restart.
   * The caller lets in-flight writes finish first (idle).
   */
  powerLoss(wpAfter: ReadonlyMap<number, number>): void {
    if (!this.idle) throw new ZbdError('EARG', 'power loss while writes are in flight', this.inflight.size);
    for (const [z, wp] of wpAfter) {
      const off = wp - this.zoneStart(z);
      if (!(z >= this.geo.conventionalZones && z < this.geo.nrZones) || !(off >= 0 && off <= this.wpOff[z]) || off % this.geo.blockSectors !== 0) {
        throw new ZbdError('EARG', `zone ${z}: power-loss write pointer ${wp} outside its written range`, { zone: z, wp });
      }
      const c = this.cond[z];
      if (c === ZoneCond.OFFLINE || c === ZoneCond.READONLY || off === this.wpOff[z]) continue;
      this.wpOff[z] = this.durOff[z] = this.dataOff[z] = off;
      this.markDirty(z);
    }
    for (let z = this.geo.conventionalZones; z < this.geo.nrZones; z++) {
      const c = this.cond[z];
      if (c === ZoneCond.IMP_OPEN || c === ZoneCond.EXP_OPEN || c === ZoneCond.CLOSED || c === ZoneCond.FULL) this.setCond(z, this.table.restingCond(z));
    }
  }

  // ---- reports ----------------------------------------------------------------------------

  /** Report up to maxZones zones from the one containing `sector`. Returns how many were sunk. */
  report(sector: number, maxZones: number, sink: ZoneSink): number {
    const g = this.geo;
    if (!(sector >= 0 && sector < g.capacitySectors)) return 0;
    let n = 0;
    for (let z = this.zoneOf(sector); z < g.nrZones && n < maxZones; z++) {
      const start = this.zoneStart(z);
      const len = this.zoneLen(z);
      const c = this.cond[z] as ZoneCond;
      const type = this.zoneType(z);
      if (!sink(start, len, this.zoneCap(z), reportedWp(c, start, len, start + this.wpOff[z]), type, c)) break;
      n++;
    }
    return n;
  }

  /** Internal consistency: counters match conditions, write pointers inside zones. For tests and `check`. */
  checkInvariants(): string[] {
    const g = this.geo;
    const problems: string[] = [];
    let imp = 0, exp = 0, closed = 0;
    for (let z = 0; z < g.nrZones; z++) {
      const c = this.cond[z];
      const start = this.zoneStart(z);
      if (z < g.conventionalZones) {
        if (c !== ZoneCond.NOT_WP) problems.push(`zone ${z}: conventional zone in condition ${c}`);
        continue;
      }
      if (c === ZoneCond.IMP_OPEN) imp++; else if (c === ZoneCond.EXP_OPEN) exp++; else if (c === ZoneCond.CLOSED) closed++;
      const capEnd = start + this.zoneCap(z);
      const wp = start + this.wpOff[z], durWp = start + this.durOff[z], dataEnd = start + this.dataOff[z];
      if (wp > capEnd) problems.push(`zone ${z}: wp ${wp} outside [${start}, ${capEnd}]`);
      if (durWp > wp) problems.push(`zone ${z}: durable wp ${durWp} above wp ${wp}`);
      if (dataEnd > wp) problems.push(`zone ${z}: data end above wp`);
      if (c === ZoneCond.EMPTY && wp !== start) problems.push(`zone ${z}: EMPTY with wp ${wp}`);
      if (c === ZoneCond.FULL && wp !== capEnd) problems.push(`zone ${z}: FULL with wp ${wp}`);
      if ((c === ZoneCond.CLOSED || c === ZoneCond.IMP_OPEN) && (wp === start || wp === capEnd)) {
        problems.push(`zone ${z}: condition ${c} with wp ${wp}`);
      }
    }
    if (imp !== this.nImpOpen || exp !== this.nExpOpen || closed !== this.nClosed) {
      problems.push(`counters imp ${this.nImpOpen}/${imp} exp ${this.nExpOpen}/${exp} closed ${this.nClosed}/${closed}`);
    }
    let lruCount = 0;
    for (const z of this.lru.keys()) {
      if (this.cond[z] !== ZoneCond.IMP_OPEN) problems.push(`zone ${z} in the implicit-open list in condition ${this.cond[z]}`);
      lruCount++;
    }
    if (lruCount !== this.nImpOpen) problems.push(`implicit-open list has ${lruCount} zones, counter ${this.nImpOpen}`);
    if (g.maxOpenZones && this.nImpOpen + this.nExpOpen > g.maxOpenZones) problems.push(`open zones ${this.nImpOpen + this.nExpOpen} > max ${g.maxOpenZones}`);
    return problems;
  }
}
