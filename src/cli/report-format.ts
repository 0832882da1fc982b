// Zone reports in the exact line format of util-linux `blkzone report`, so a host report can
// be diffed with what a guest prints for the same disk; and the JSON form, written as a
// stream (a head, one zone per line, a tail) so a million zones never sit in memory at once.
import { ZONE_COND_NAMES, ZONE_COND_LONG_NAMES, ZONE_TYPE_NAMES, ZoneCond, ZoneType } from '../zoned/types.js';

const U64_MAX = (1n << 64n) - 1n;

const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/** Write "0x" and v (a safe integer ≥ 0) in hex, zero-padded to `width` digits; returns the new position. */
function putHex(buf: Uint8Array, pos: number, v: number, width: number): number {
  buf[pos++] = 0x30; // 0
  buf[pos++] = 0x78; // x
  // Integer arithmetic on 32-bit halves: a million lines, four numbers each.
  const hi = Math.floor(v / 0x100000000), lo = v >>> 0;
  let digits = 1;
  if (hi > 0) for (let x = hi; x >= 16; x >>>= 4) digits++;
  else for (let x = lo; x >= 16; x >>>= 4) digits++;
  if (hi > 0) digits += 8;
  const w = digits > width ? digits : width;
  let i = pos + w - 1;
  for (let k = 0, x = lo; k < 8 && i >= pos; k++, x >>>= 4) buf[i--] = HEX_DIGITS[x & 15];
  for (let x = hi; i >= pos; x >>>= 4) buf[i--] = HEX_DIGITS[x & 15];
  return pos + w;
}

function putAscii(buf: Uint8Array, pos: number, s: string | Uint8Array): number {
  if (typeof s !== 'string') { buf.set(s, pos); return pos + s.byteLength; }
  for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
  return pos;
}

const START = Buffer.from('  start: '), LEN = Buffer.from(', len '), CAP = Buffer.from(', cap '), WPTR = Buffer.from(', wptr ');

/** The constant tail of a line for each (type, condition), built once: a report prints a million lines. */
const tails = new Map<number, Uint8Array>();
function lineTail(type: ZoneType, cond: ZoneCond): Uint8Array {
  const key = type * 256 + cond;
  let t = tails.get(key);
  if (t === undefined) {
    const c = ZONE_COND_NAMES[cond] ?? `x${cond.toString(16).toUpperCase()}`;
    t = Buffer.from(` reset:0 non-seq:0, zcond:${String(cond).padStart(2)}(${c}) [type: ${type}(${ZONE_TYPE_NAMES[type]})]`);
    tails.set(key, t);
  }
  return t;
}

/** Bytes a line can take (with 16-digit numbers): what a writer must have room for. */
export const ZONE_LINE_MAX = 256;

/**
 * One blkzone-style line and its newline, as ASCII into buf at pos (the report path writes
 * bytes straight into its output chunk: no string per line); returns the new position.
 * `wp` < 0 means "no write pointer" (all ones, as Linux reports).
 */
export function writeZoneLine(buf: Uint8Array, pos: number, start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): number {
  pos = putHex(buf, putAscii(buf, pos, START), start, 9);
  pos = putHex(buf, putAscii(buf, pos, LEN), len, 6);
  pos = putHex(buf, putAscii(buf, pos, CAP), cap, 6);
  pos = putAscii(buf, pos, WPTR);
  // blkzone prints wp - start in 64-bit arithmetic (so "no write pointer" wraps), and 0 for
  // conventional zones.
  if (type === ZoneType.CONVENTIONAL) pos = putHex(buf, pos, 0, 6);
  else if (wp < 0) pos = putAscii(buf, pos, '0x' + (U64_MAX - BigInt(start)).toString(16));
  else pos = putHex(buf, pos, wp - start, 6);
  pos = putAscii(buf, pos, lineTail(type, cond));
  buf[pos++] = 0x0a;
  return pos;
}

const lineBuf = new Uint8Array(ZONE_LINE_MAX);

/** One blkzone-style line as a string (no newline). */
export function formatZoneLine(start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): string {
  const end = writeZoneLine(lineBuf, 0, start, len, cap, wp, type, cond);
  return Buffer.from(lineBuf.buffer, 0, end - 1).toString('latin1');
}

/** Write x (0 ≤ x < 2^31) in decimal, at least `min` digits; returns the new position. */
function putSmallDec(buf: Uint8Array, pos: number, x: number, min: number): number {
  let digits = x < 1e5 ? (x < 100 ? (x < 10 ? 1 : 2) : x < 1e3 ? 3 : x < 1e4 ? 4 : 5)
    : x < 1e7 ? (x < 1e6 ? 6 : 7) : x < 1e8 ? 8 : x < 1e9 ? 9 : 10;
  if (digits < min) digits = min;
  for (let i = pos + digits - 1; i >= pos; i--) {
    const q = (x / 10) | 0;
    buf[i] = 0x30 + x - q * 10;
    x = q;
  }
  return pos + digits;
}

/** Write v (a safe integer ≥ 0) in decimal; returns the new position. */
function putDec(buf: Uint8Array, pos: number, v: number): number {
  if (v < 1e9) return putSmallDec(buf, pos, v, 1);
  const hi = Math.floor(v / 1e9);
  return putSmallDec(buf, putDec(buf, pos, hi), v - hi * 1e9, 9);
}

const J_ZONE = Buffer.from('{"zone":'), J_START = Buffer.from(',"start":'), J_LEN = Buffer.from(',"len":'), J_CAP = Buffer.from(',"cap":'),
  J_WP = Buffer.from(',"wp":'), J_NULL = Buffer.from('null');
/** `,"type":2,"typeName":"...","cond":1,"condName":"..."}` for each (type, condition). */
const jsonTails = new Map<number, Uint8Array>();
function jsonTail(type: ZoneType, cond: ZoneCond): Uint8Array {
  const key = type * 256 + cond;
  let t = jsonTails.get(key);
  if (t === undefined) {
    t = Buffer.from(`,"type":${type},"typeName":${JSON.stringify(ZONE_TYPE_NAMES[type])},"cond":${cond},"condName":${JSON.stringify(ZONE_COND_LONG_NAMES[cond] ?? 'unknown')}}`);
    jsonTails.set(key, t);
  }
  return t;
}

/** One zone of the JSON report as an object (the control API's /zones); writeZoneJson writes the same fields as bytes. */
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

/**
 * One zone of the JSON report as a one-line object, into buf at pos: zone, start, len, cap
 * (sectors), wp (null for conventional zones and zones without a write pointer), type,
 * typeName, cond, condName. Returns the new position (at most ZONE_LINE_MAX bytes on).
 */
export function writeZoneJson(
  buf: Uint8Array, pos: number, zone: number, start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond,
): number {
  pos = putDec(buf, putAscii(buf, pos, J_ZONE), zone);
  pos = putDec(buf, putAscii(buf, pos, J_START), start);
  pos = putDec(buf, putAscii(buf, pos, J_LEN), len);
  pos = putDec(buf, putAscii(buf, pos, J_CAP), cap);
  pos = putAscii(buf, pos, J_WP);
  pos = wp < 0 || type === ZoneType.CONVENTIONAL ? putAscii(buf, pos, J_NULL) : putDec(buf, pos, wp);
  return putAscii(buf, pos, jsonTail(type, cond));
}

/**
 * The JSON report up to its zones: the disk's fields, then `"zones": [`. Zones follow one
 * object per line, separated by ",\n", then jsonReportTail(): the whole is one JSON document.
 */
export function jsonReportHead(fields: Record<string, unknown>): string {
  const head = JSON.stringify(fields, null, 2); // "{\n  ...\n}"
  return `${head.slice(0, -2)},\n  "zones": [\n`;
}

export function jsonReportTail(): string {
  return '\n  ]\n}\n';
}
