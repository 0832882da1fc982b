// The rules of a host-managed zoned drive as pure functions of a zone table: whether a read,
// a write, an append or a zone operation is allowed, and which state an allowed one leads
// to. They change nothing. The zone engine applies them to the emulated drive (adding the
// open/active resource accounting and in-flight writes); the host-device backend applies
// them to its mirror of a real drive before the drive sees the request, so the guest gets
// the same answer from both.
import { ZoneCond, ZoneOp, ZoneResult } from './types.js';
import { ZONE_FLAG_OFFLINE, ZONE_FLAG_READONLY, restingCond, type ZoneTable } from './zone-table.js';

export const isOpenCond = (c: number): boolean => c === ZoneCond.IMP_OPEN || c === ZoneCond.EXP_OPEN;

/** [sector, sector + n) lies on the device. */
export function inRange(t: ZoneTable, sector: number, n: number): boolean {
  return sector >= 0 && n >= 0 && sector + n <= t.layout.capacitySectors;
}

/** A zero-length request changes nothing but still obeys the zone's condition. */
function checkEmpty(t: ZoneTable, sector: number, write: boolean): ZoneResult {
  if (sector >= t.layout.capacitySectors) return ZoneResult.OK;
  const c = t.cond[t.zoneOf(sector)];
  if (c === ZoneCond.OFFLINE || (write && c === ZoneCond.READONLY)) return ZoneResult.INVALID;
  return ZoneResult.OK;
}

// ---- reads ------------------------------------------------------------------------------

/** Decide a read of n sectors: within the device, within one zone unless all conventional, not offline. */
export function checkRead(t: ZoneTable, sector: number, n: number): ZoneResult {
  if (!inRange(t, sector, n)) return ZoneResult.OUT_OF_RANGE;
  if (n === 0) return checkEmpty(t, sector, false);
  const z = t.zoneOf(sector);
  const last = t.zoneOf(sector + n - 1);
  if (z !== last) return t.allConventional(z, last) ? ZoneResult.OK : ZoneResult.INVALID;
  if (!t.isConventional(z) && t.cond[z] === ZoneCond.OFFLINE) return ZoneResult.INVALID;
  return ZoneResult.OK;
}

/** Leading sectors of an allowed read that hold data; the rest reads as zeroes. */
export function readableSectors(t: ZoneTable, sector: number, n: number): number {
  if (n === 0) return 0;
  const z = t.zoneOf(sector);
  if (t.isConventional(z)) return n;
  const d = t.dataEnd(z) - sector;
  return d <= 0 ? 0 : d >= n ? n : d;
}

// ---- writes and appends -----------------------------------------------------------------

/**
 * What can be decided about a regular write before looking at its zone's write pointer:
 * within the device, within one sequential zone (or conventional zones only), whole blocks.
 * On OK with n > 0 and a sequential zone, checkWriteAt decides the rest.
 */
export function checkWriteShape(t: ZoneTable, sector: number, n: number): ZoneResult {
  if (!inRange(t, sector, n)) return ZoneResult.OUT_OF_RANGE;
  if (n === 0) return checkEmpty(t, sector, true);
  const z = t.zoneOf(sector);
  const last = t.zoneOf(sector + n - 1);
  if (t.isConventional(z)) return t.allConventional(z, last) ? ZoneResult.OK : ZoneResult.INVALID;
  if (z !== last) return ZoneResult.INVALID;
  const bs = t.layout.blockSectors;
  if (sector % bs !== 0 || n % bs !== 0) return ZoneResult.UNALIGNED_WP;
  return ZoneResult.OK;
}

/**
 * The same for a zone append at `sector`: appends supported, at the start of a sequential
 * zone, at most the append limit, whole blocks. On OK, checkAppendAt decides the rest.
 */
export function checkAppendShape(t: ZoneTable, sector: number, n: number): ZoneResult {
  const l = t.layout;
  if (l.maxAppendSectors === 0) return ZoneResult.UNSUPPORTED;
  if (!inRange(t, sector, n)) return ZoneResult.OUT_OF_RANGE;
  const z = t.zoneOf(sector);
  if (t.isConventional(z) || sector !== t.zoneStart(z)) return ZoneResult.INVALID;
  if (n > l.maxAppendSectors) return ZoneResult.INVALID;
  if (n % l.blockSectors !== 0) return ZoneResult.UNALIGNED_WP;
  return ZoneResult.OK;
}

/**
 * Can n more sectors go into sequential zone z at its write pointer? `draining`: a write to
 * the zone failed and later ones are still in flight (IO_ERROR until they are done).
 */
export function checkWritable(t: ZoneTable, z: number, n: number, draining: boolean): ZoneResult {
  const c = t.cond[z];
  if (c === ZoneCond.FULL || c === ZoneCond.READONLY || c === ZoneCond.OFFLINE) return ZoneResult.INVALID;
  if (draining) return ZoneResult.IO_ERROR;
  if (t.wpOff[z] + n > t.zoneCap(z)) return ZoneResult.INVALID;
  return ZoneResult.OK;
}

/** The zone state part of a regular write of n > 0 sectors at `sector` in sequential zone z. */
export function checkWriteAt(t: ZoneTable, z: number, sector: number, n: number, draining: boolean): ZoneResult {
  const r = checkWritable(t, z, n, draining);
  if (r !== ZoneResult.OK) return r;
  if (sector + n > t.zoneStart(z) + t.zoneCap(z)) return ZoneResult.INVALID;
  if (sector !== t.wp(z)) return ZoneResult.UNALIGNED_WP;
  return ZoneResult.OK;
}

/** The zone state part of an append of n sectors to sequential zone z (it lands at the write pointer). */
export function checkAppendAt(t: ZoneTable, z: number, n: number, draining: boolean): ZoneResult {
  if (n === 0) return checkEmpty(t, t.zoneStart(z), true);
  return checkWritable(t, z, n, draining);
}

/** A write to a zone in condition c opens it (and needs an open resource): EMPTY and CLOSED zones. */
export const writeOpens = (c: number): boolean => c === ZoneCond.EMPTY || c === ZoneCond.CLOSED;

/** Condition of sequential zone z once an allowed write has moved its write pointer to endOff. */
export function condAfterWrite(t: ZoneTable, z: number, endOff: number): ZoneCond {
  const c = t.cond[z] as ZoneCond;
  if (endOff === t.zoneCap(z)) return ZoneCond.FULL;
  return writeOpens(c) ? ZoneCond.IMP_OPEN : c;
}

// ---- zone management --------------------------------------------------------------------

/** A single-zone operation must name the start of a sequential zone on the device. */
export function checkMgmtTarget(t: ZoneTable, sector: number): ZoneResult {
  if (!(sector >= 0 && sector < t.layout.capacitySectors)) return ZoneResult.INVALID;
  const z = t.zoneOf(sector);
  if (sector !== t.zoneStart(z) || t.isConventional(z)) return ZoneResult.INVALID;
  return ZoneResult.OK;
}

/** An allowed zone operation's outcome for one zone: its next state, and the resources it takes. */
export interface MgmtStep {
  result: ZoneResult;
  /** false: the zone is already where the operation leads (result OK, nothing to do). */
  changed: boolean;
  cond: ZoneCond;
  wpOff: number;
  dataOff: number;
  flags: number;
  /** The zone passes through an open state from a state that is not open: it needs an open resource. */
  opens: boolean;
  /** The zone becomes active (CLOSED) from a state that is not: it needs an active resource. */
  activates: boolean;
}

/**
 * Operation `op` on sequential zone z, decided on the table without changing it. Guest
 * operations follow the ZBC/ZNS state machine; the fault operations are the emulation's:
 * SET_READONLY (not from OFFLINE) and SET_OFFLINE keep the write pointer, so CLEAR_FAULT can
 * return a read-only zone to the state its write pointer says (EMPTY, CLOSED or FULL: open
 * states are not kept, as after power loss) and an offline one to EMPTY, its data gone.
 * RESET_ALL is RESET of each zone it applies to (not read-only or offline ones).
 */
export function mgmtStep(op: ZoneOp, t: ZoneTable, z: number): MgmtStep {
  const c = t.cond[z] as ZoneCond;
  const s: MgmtStep = {
    result: ZoneResult.OK, changed: true, cond: c, wpOff: t.wpOff[z], dataOff: t.dataOff[z], flags: t.flags[z],
    opens: false, activates: false,
  };
  const refuse = (result: ZoneResult): MgmtStep => { s.result = result; s.changed = false; return s; };
  const stay = (): MgmtStep => { s.changed = false; return s; };
  const open = isOpenCond(c);
  switch (op) {
    case ZoneOp.OPEN:
      if (c === ZoneCond.EXP_OPEN) return stay();
      if (!open && c !== ZoneCond.EMPTY && c !== ZoneCond.CLOSED) return refuse(ZoneResult.INVALID);
      s.opens = !open;
      s.cond = ZoneCond.EXP_OPEN;
      return s;
    case ZoneOp.CLOSE:
      if (c === ZoneCond.CLOSED) return stay();
      if (!open) return refuse(ZoneResult.INVALID);
      s.cond = s.wpOff === 0 ? ZoneCond.EMPTY : ZoneCond.CLOSED;
      return s;
    case ZoneOp.FINISH:
      if (c === ZoneCond.FULL) return stay();
      // Finishing an empty zone passes through an open state on real drives.
      if (c === ZoneCond.EMPTY) s.opens = true;
      else if (!open && c !== ZoneCond.CLOSED) return refuse(ZoneResult.INVALID);
      s.dataOff = s.wpOff;
      s.wpOff = t.zoneCap(z);
      s.cond = ZoneCond.FULL;
      return s;
    case ZoneOp.RESET:
    case ZoneOp.RESET_ALL:
      if (c === ZoneCond.EMPTY) return stay();
      if (!open && c !== ZoneCond.CLOSED && c !== ZoneCond.FULL) return refuse(ZoneResult.INVALID);
      s.wpOff = s.dataOff = 0;
      s.cond = ZoneCond.EMPTY;
      return s;
    case ZoneOp.SET_READONLY:
      if (c === ZoneCond.OFFLINE) return refuse(ZoneResult.INVALID);
      if (c === ZoneCond.READONLY) return stay();
      s.flags |= ZONE_FLAG_READONLY;
      s.cond = ZoneCond.READONLY;
      return s;
    case ZoneOp.SET_OFFLINE:
      if (c === ZoneCond.OFFLINE) return stay();
      s.flags |= ZONE_FLAG_OFFLINE;
      s.cond = ZoneCond.OFFLINE;
      return s;
    case ZoneOp.CLEAR_FAULT:
      if (s.flags === 0) return stay();
      if (s.flags & ZONE_FLAG_OFFLINE) {
        s.wpOff = s.dataOff = 0;
        s.cond = ZoneCond.EMPTY;
      } else {
        s.cond = restingCond(0, s.wpOff, t.zoneCap(z));
        s.activates = s.cond === ZoneCond.CLOSED;
      }
      s.flags = 0;
      return s;
    default:
      return refuse(ZoneResult.UNSUPPORTED);
  }
}

// ---- reports ----------------------------------------------------------------------------

/**
 * The write pointer a zone report shows, -1 for none (all ones on the wire). As Linux reports
 * them: conventional (NOT_WP) and full zones at the zone end, read-only and offline zones
 * without one, so host and guest views agree.
 */
export function reportedWp(cond: number, start: number, len: number, wp: number): number {
  if (cond === ZoneCond.NOT_WP || cond === ZoneCond.FULL) return start + len;
  if (cond === ZoneCond.READONLY || cond === ZoneCond.OFFLINE) return -1;
  return wp;
}
