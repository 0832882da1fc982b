// Shared helpers for the zone-engine conformance tests (not a test file itself).
import { afterEach, expect } from 'vitest';
import { makeGeometry, type GeometryInput } from '../../src/zoned/geometry.js';
import { ZoneEngine } from '../../src/zoned/zone-engine.js';
import { ZoneCond, ZoneOp, ZoneResult } from '../../src/zoned/types.js';

// Our own name tables (the enums are const enums; no reverse mapping in the types).
export const RESULT_NAMES: Record<number, string> = {
  0: 'OK', 1: 'INVALID', 2: 'UNALIGNED_WP', 3: 'OPEN_RESOURCE', 4: 'ACTIVE_RESOURCE',
  5: 'OUT_OF_RANGE', 6: 'IO_ERROR', 7: 'UNSUPPORTED', 8: 'READ_ONLY',
};
export const COND_NAMES: Record<number, string> = {
  0: 'NOT_WP', 1: 'EMPTY', 2: 'IMP_OPEN', 3: 'EXP_OPEN', 4: 'CLOSED', 13: 'READONLY', 14: 'FULL', 15: 'OFFLINE',
};
export const OP_NAMES: Record<number, string> = {
  0: 'OPEN', 1: 'CLOSE', 2: 'FINISH', 3: 'RESET', 4: 'RESET_ALL', 5: 'SET_READONLY', 6: 'SET_OFFLINE', 7: 'CLEAR_FAULT',
};
export const rn = (r: number): string => RESULT_NAMES[r] ?? `result(${r})`;
export const cn = (c: number): string => COND_NAMES[c] ?? `cond(${c})`;

export interface Mk {
  nr?: number;
  conv?: number;
  zs?: number;
  cap?: number;
  open?: number;
  active?: number;
  bs?: number;
  append?: number;
  capacity?: number;
}

/** Build an engine: `nr` zones of `zs` sectors (default 8 zones of 64 sectors, no limits). */
export function mk(o: Mk = {}): ZoneEngine {
  const zs = o.zs ?? 64;
  const input: GeometryInput = {
    capacitySectors: o.capacity ?? (o.nr ?? 8) * zs,
    zoneSectors: zs,
    zoneCapacitySectors: o.cap,
    conventionalZones: o.conv ?? 0,
    blockSize: o.bs ?? 512,
    maxOpenZones: o.open ?? 0,
    maxActiveZones: o.active ?? 0,
    maxAppendSectors: o.append,
  };
  return new ZoneEngine(makeGeometry(input));
}

/**
 * mk() for a test file whose every engine is checked for internal consistency after each
 * test: call once at the top of the file.
 */
export function checkedEngines(): (o?: Mk) => ZoneEngine {
  const engines: ZoneEngine[] = [];
  afterEach(() => {
    for (const e of engines.splice(0)) expect(e.checkInvariants()).toEqual([]);
  });
  return (o: Mk = {}) => {
    const e = mk(o);
    engines.push(e);
    return e;
  };
}

/** A write that completes successfully at once (when allowed). */
export function w(e: ZoneEngine, sector: number, n: number): ZoneResult {
  const r = e.beginWrite(sector, n, { sector, n });
  if (r === ZoneResult.OK && e.opZone >= 0) e.completeWrite(e.opZone, e.opSector, true);
  return r;
}

/** An append that completes successfully at once; returns the result and where it landed. */
export function ap(e: ZoneEngine, zoneStart: number, n: number): { r: ZoneResult; sector: number } {
  const r = e.beginAppend(zoneStart, n, { zoneStart, n });
  const sector = e.opSector;
  if (r === ZoneResult.OK && e.opZone >= 0) e.completeWrite(e.opZone, sector, true);
  return { r, sector };
}

export const mgmt = (e: ZoneEngine, op: ZoneOp, z: number): ZoneResult => e.zoneMgmt(op, e.zoneStart(z));

/** Condition and write pointer of zone z. */
export const st = (e: ZoneEngine, z: number): { cond: string; wp: number } => ({ cond: cn(e.zoneCond(z)), wp: e.zoneWp(z) });

/** Resource counters. */
export const res = (e: ZoneEngine): { open: number; active: number; closed: number } => ({
  open: e.openZones, active: e.activeZones, closed: e.closedZones,
});

export interface ReportRow { start: number; len: number; cap: number; wp: number; type: number; cond: string }
export function report(e: ZoneEngine, sector = 0, max = Number.MAX_SAFE_INTEGER): ReportRow[] {
  const rows: ReportRow[] = [];
  const n = e.report(sector, max, (start, len, cap, wp, type, cond) => {
    rows.push({ start, len, cap, wp, type, cond: cn(cond) });
    return true;
  });
  if (n !== rows.length) throw new Error(`report returned ${n} but sank ${rows.length}`);
  return rows;
}

export { ZoneCond, ZoneOp, ZoneResult };
