// Zone reports in the exact line format of util-linux `blkzone report`, so a host report can
// be diffed with what a guest prints for the same disk.
import { ZONE_COND_NAMES, ZONE_COND_LONG_NAMES, ZONE_TYPE_NAMES, ZoneCond, ZoneType } from '../zoned/types.js';

const U64_MAX = (1n << 64n) - 1n;

function hex(v: bigint | number, width: number): string {
  return '0x' + v.toString(16).padStart(width, '0');
}

/** One blkzone-style line. `wp` < 0 means "no write pointer" (all ones, as Linux reports). */
export function formatZoneLine(start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): string {
  // blkzone prints wp - start in 64-bit arithmetic, and 0 for conventional zones.
  const rel = type === ZoneType.CONVENTIONAL ? 0n : wp < 0 ? (U64_MAX - BigInt(start)) : BigInt(wp - start);
  const c = ZONE_COND_NAMES[cond] ?? `x${cond.toString(16).toUpperCase()}`;
  return `  start: ${hex(start, 9)}, len ${hex(len, 6)}, cap ${hex(cap, 6)}, wptr ${hex(rel, 6)} reset:0 non-seq:0, zcond:${String(cond).padStart(2)}(${c}) [type: ${type}(${ZONE_TYPE_NAMES[type]})]`;
}

export interface ZoneJson {
  zone: number; start: number; len: number; cap: number; wp: number | null;
  type: number; typeName: string; cond: number; condName: string;
}

export function zoneJson(zone: number, start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): ZoneJson {
  return {
    zone, start, len, cap, wp: wp < 0 || type === ZoneType.CONVENTIONAL ? null : wp,
    type, typeName: ZONE_TYPE_NAMES[type], cond, condName: ZONE_COND_LONG_NAMES[cond] ?? 'unknown',
  };
}
