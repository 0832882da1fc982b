// Counting zones by condition from a zone report stream: what the metrics' zone gauges, the
// zone map's legend and the live page's open/active figures are computed from.
import type { Backend, BackendInfo, ZonedInfo } from '../backends/backend.js';
import { ZoneCond, ZoneType } from '../zoned/types.js';

/** Conditions in display order, with their Prometheus label value. */
export const CONDITIONS: ReadonlyArray<{ cond: ZoneCond; label: string; title: string }> = [
  { cond: ZoneCond.NOT_WP, label: 'conventional', title: 'conventional' },
  { cond: ZoneCond.EMPTY, label: 'empty', title: 'empty' },
  { cond: ZoneCond.IMP_OPEN, label: 'implicit_open', title: 'implicitly open' },
  { cond: ZoneCond.EXP_OPEN, label: 'explicit_open', title: 'explicitly open' },
  { cond: ZoneCond.CLOSED, label: 'closed', title: 'closed' },
  { cond: ZoneCond.FULL, label: 'full', title: 'full' },
  { cond: ZoneCond.READONLY, label: 'read_only', title: 'read-only' },
  { cond: ZoneCond.OFFLINE, label: 'offline', title: 'offline' },
];

/** Condition code → slot in CONDITIONS (-1 for codes no drive reports). */
export const COND_SLOT: Int8Array = (() => {
  const t = new Int8Array(16).fill(-1);
  CONDITIONS.forEach((c, i) => { t[c.cond] = i; });
  return t;
})();

/** The zone geometry a picture or a gauge needs: the backend's own description, flattened. */
export type CensusGeometry = Pick<BackendInfo, 'capacitySectors' | 'blockSize'> & Omit<ZonedInfo, 'maxAppendSectors'>;

export function censusGeometry(info: BackendInfo): CensusGeometry | null {
  const z = info.zoned;
  if (!z) return null;
  return {
    capacitySectors: info.capacitySectors, blockSize: info.blockSize, zoneSectors: z.zoneSectors,
    zoneCapacitySectors: z.zoneCapacitySectors, nrZones: z.nrZones, conventionalZones: z.conventionalZones,
    maxOpenZones: z.maxOpenZones, maxActiveZones: z.maxActiveZones,
  };
}

/** Sectors holding data in a zone as reported (conventional zones count as all data). */
export function writtenSectors(start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): number {
  if (type === ZoneType.CONVENTIONAL) return len;
  if (cond === ZoneCond.FULL) return cap;
  if (cond === ZoneCond.OFFLINE || wp < 0) return 0;
  return Math.min(Math.max(wp - start, 0), cap);
}

export class ZoneCensus {
  /** Zones per CONDITIONS slot. */
  readonly counts = new Array<number>(CONDITIONS.length).fill(0);
  zones = 0;
  writtenSectors = 0;
  capacitySectors = 0;

  /** A ZoneSink: feed it a zone report. */
  readonly add = (start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): boolean => {
    const slot = COND_SLOT[cond] ?? -1;
    if (slot >= 0) this.counts[slot]++;
    this.zones++;
    this.writtenSectors += writtenSectors(start, len, cap, wp, type, cond);
    this.capacitySectors += type === ZoneType.CONVENTIONAL ? len : cap;
    return true;
  };

  count(cond: ZoneCond): number { return this.counts[COND_SLOT[cond]] ?? 0; }
  /** Open zones count against max open (implicitly and explicitly open). */
  get open(): number { return this.count(ZoneCond.IMP_OPEN) + this.count(ZoneCond.EXP_OPEN); }
  /** Active zones count against max active (open and closed). */
  get active(): number { return this.open + this.count(ZoneCond.CLOSED); }

  /** Census of every zone of a zoned backend. */
  static async of(backend: Backend): Promise<ZoneCensus> {
    const c = new ZoneCensus();
    const z = backend.info.zoned;
    if (z) await backend.reportZones(0, z.nrZones, c.add);
    return c;
  }
}
