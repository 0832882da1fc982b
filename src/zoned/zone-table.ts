// The zone table: each zone's type, condition, fault flags, write pointer and data end, in
// typed arrays, with the geometry helpers that map sectors to zones. The zone engine keeps
// the emulated drive in one; the host-device backend keeps its mirror of a real drive in
// another, so the zone rules (zone-rules.ts) read one representation for both.
import type { ZoneGeometry } from './geometry.js';
import { ZoneCond, ZoneType } from './types.js';

/** Persistent per-zone fault flags (set by fault injection; they survive restarts). */
export const ZONE_FLAG_READONLY = 1;
export const ZONE_FLAG_OFFLINE = 2;

/**
 * One zone as it is persisted (an entry of an image's zone table); open conditions are
 * deliberately not persistent. Absolute sectors.
 */
export interface PersistedZoneState {
  /** Write pointer, absolute sector (only data below it was acknowledged). */
  wp: number;
  /** End of real data, absolute sector (< wp only for a zone finished early). */
  dataEnd: number;
  flags: number;
}

/** The condition fault flags impose (offline wins over read-only); 0 for none. */
export function faultCond(flags: number): ZoneCond.OFFLINE | ZoneCond.READONLY | 0 {
  if (flags & ZONE_FLAG_OFFLINE) return ZoneCond.OFFLINE;
  if (flags & ZONE_FLAG_READONLY) return ZoneCond.READONLY;
  return 0;
}

/**
 * The condition of a sequential zone that is not open, from its fault flags and write
 * pointer (sectors from the zone start): how a zone comes back after a restart or power
 * loss (open zones come back CLOSED, or EMPTY) and after its read-only fault is cleared.
 */
export function restingCond(flags: number, wpOff: number, cap: number): ZoneCond {
  const f = faultCond(flags);
  if (f !== 0) return f;
  return wpOff === 0 ? ZoneCond.EMPTY : wpOff === cap ? ZoneCond.FULL : ZoneCond.CLOSED;
}

/** The condition a sequential zone comes back in from its persisted state (see restingCond). */
export function persistedCond(p: PersistedZoneState, start: number, capEnd: number): ZoneCond {
  return restingCond(p.flags, p.wp - start, capEnd - start);
}

/** What the table needs of a geometry (ZoneGeometry has it all). */
export type ZoneLayout = Pick<ZoneGeometry, 'capacitySectors' | 'zoneSectors' | 'zoneCapacitySectors' | 'nrZones'
  | 'conventionalZones' | 'blockSectors' | 'maxAppendSectors'>;

export class ZoneTable {
  readonly layout: ZoneLayout;
  readonly nrZones: number;
  // Per zone. Write pointer and data end are kept as sectors from the zone start: a zone is
  // at most 2^31 sectors, so 4 bytes per value instead of 8 for an absolute sector.
  readonly type: Uint8Array;
  readonly cond: Uint8Array;
  readonly flags: Uint8Array;
  /** Where the next write must land (the capacity when FULL). */
  readonly wpOff: Uint32Array;
  /** End of readable data; reads between it and the zone end return zeroes. */
  readonly dataOff: Uint32Array;
  private readonly lastCap: number;

  /**
   * All sequential zones EMPTY, the first `conventionalZones` conventional. Every sequential
   * zone has the layout's capacity but the last, whose capacity may be given (a host device
   * reports its own) and is otherwise what fits into its length.
   */
  constructor(layout: ZoneLayout, lastZoneCapacitySectors?: number) {
    this.layout = layout;
    const n = layout.nrZones;
    this.nrZones = n;
    this.type = new Uint8Array(n);
    this.cond = new Uint8Array(n);
    this.flags = new Uint8Array(n);
    this.wpOff = new Uint32Array(n);
    this.dataOff = new Uint32Array(n);
    this.lastCap = lastZoneCapacitySectors ?? Math.min(layout.zoneCapacitySectors, this.zoneLen(n - 1));
    for (let z = 0; z < n; z++) {
      if (z < layout.conventionalZones) this.setConventional(z);
      else { this.type[z] = ZoneType.SEQ_WRITE_REQUIRED; this.cond[z] = ZoneCond.EMPTY; }
    }
  }

  zoneOf(sector: number): number { return Math.floor(sector / this.layout.zoneSectors); }
  zoneStart(z: number): number { return z * this.layout.zoneSectors; }
  zoneLen(z: number): number {
    return z === this.nrZones - 1 ? this.layout.capacitySectors - this.zoneStart(z) : this.layout.zoneSectors;
  }
  /** Writable sectors of zone z (its length for a conventional zone). */
  zoneCap(z: number): number {
    if (this.type[z] === ZoneType.CONVENTIONAL) return this.zoneLen(z);
    return z === this.nrZones - 1 ? this.lastCap : this.layout.zoneCapacitySectors;
  }
  isConventional(z: number): boolean { return this.type[z] === ZoneType.CONVENTIONAL; }
  /** Every zone in [first, last] is conventional. */
  allConventional(first: number, last: number): boolean {
    for (let z = first; z <= last; z++) if (this.type[z] !== ZoneType.CONVENTIONAL) return false;
    return true;
  }
  /** Write pointer of zone z, absolute sector. */
  wp(z: number): number { return this.zoneStart(z) + this.wpOff[z]; }
  /** End of zone z's data, absolute sector. */
  dataEnd(z: number): number { return this.zoneStart(z) + this.dataOff[z]; }

  /** Zone z takes writes anywhere and holds data throughout. */
  setConventional(z: number): void {
    this.type[z] = ZoneType.CONVENTIONAL;
    this.cond[z] = ZoneCond.NOT_WP;
    this.flags[z] = 0;
    this.wpOff[z] = this.dataOff[z] = this.zoneLen(z);
  }

  /** restingCond of sequential zone z as the table has it. */
  restingCond(z: number): ZoneCond { return restingCond(this.flags[z], this.wpOff[z], this.zoneCap(z)); }
}
