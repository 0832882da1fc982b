// Zone reports of a host zoned block device: BLKREPORTZONE buffers (struct blk_zone_report
// + struct blk_zone[], include/uapi/linux/blkzoned.h) decoded into plain numbers.
import { ZbdError } from '../errors.js';
import { BLK_ZONE_REPORT_HEADER_SIZE, BLK_ZONE_SIZE, blkReportZones, blkReportZonesAsync } from '../native/index.js';

/** blk_zone_report.flags: the capacity field of each zone is valid (Linux ≥ 5.9). */
export const BLK_ZONE_REP_CAPACITY = 1;

/** Linux BLK_ZONE_TYPE_* (same numbers as virtio and ZoneType). */
export const BLK_ZONE_TYPE_CONVENTIONAL = 1;
export const BLK_ZONE_TYPE_SEQWRITE_REQ = 2;
export const BLK_ZONE_TYPE_SEQWRITE_PREF = 3;

/** One struct blk_zone, all values in 512-byte sectors, exactly as the kernel reported it. */
export interface HostZone {
  start: number;
  len: number;
  /** Writable capacity (= len when the kernel did not report capacities). */
  cap: number;
  /** Raw write pointer (meaningless for conventional, read-only and offline zones). */
  wp: number;
  type: number;
  cond: number;
}

/** Receives one raw zone; returns false to stop the report. */
export type HostZoneSink = (zone: HostZone) => boolean | void;

/** Sector values above 2^53 cannot come from a real device; refuse rather than round them. */
function u64(dv: DataView, off: number, field: string, zoneIndex: number): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ZbdError('EDEVICE', `zone report entry ${zoneIndex}: ${field} ${v} is beyond 2^53 sectors`, { field, value: v.toString() });
  }
  return Number(v);
}

/**
 * Decode the zones of a filled report buffer into sink. `count` is what the ioctl returned.
 * Returns how many zones were passed to the sink.
 */
export function decodeReport(buf: Uint8Array, count: number, sink: HostZoneSink): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const flags = dv.getUint32(12, true);
  const max = Math.floor((buf.byteLength - BLK_ZONE_REPORT_HEADER_SIZE) / BLK_ZONE_SIZE);
  if (count > max) {
    throw new ZbdError('EDEVICE', `zone report claims ${count} zones in a buffer for ${max}`, count);
  }
  let n = 0;
  for (let i = 0; i < count; i++) {
    const off = BLK_ZONE_REPORT_HEADER_SIZE + i * BLK_ZONE_SIZE;
    const len = u64(dv, off + 8, 'len', i);
    const zone: HostZone = {
      start: u64(dv, off, 'start', i),
      len,
      cap: (flags & BLK_ZONE_REP_CAPACITY) !== 0 ? u64(dv, off + 32, 'capacity', i) : len,
      // All ones (no write pointer) is legal here: keep it representable as -1.
      wp: dv.getBigUint64(off + 16, true) > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(dv.getBigUint64(off + 16, true)),
      type: dv.getUint8(off + 24),
      cond: dv.getUint8(off + 25),
    };
    n++;
    if (sink(zone) === false) break;
  }
  return n;
}

/** Zones asked for per ioctl: 64 KiB buffers, few enough ioctls for a 50 000-zone disk. */
export const REPORT_CHUNK_ZONES = 1023;

/**
 * Report zones of fd from the zone containing `sector`, at most maxZones, looping over
 * BLKREPORTZONE calls (each returns at most a buffer's worth, possibly fewer). Runs on the
 * thread pool. Resolves how many zones were passed to the sink.
 */
export async function reportHostZones(fd: number, sector: number, maxZones: number, sink: HostZoneSink,
  buf: Uint8Array = newReportBuffer(Math.min(maxZones, REPORT_CHUNK_ZONES))): Promise<number> {
  return reportLoop(sector, maxZones, sink, buf, (s, b) => blkReportZonesAsync(fd, s, b));
}

/** The same, synchronously (startup and the report command, where nothing else runs). */
export function reportHostZonesSync(fd: number, sector: number, maxZones: number, sink: HostZoneSink): number {
  const buf = newReportBuffer(Math.min(maxZones, REPORT_CHUNK_ZONES));
  let total = 0;
  let next = sector;
  let stop = false;
  while (total < maxZones && !stop) {
    const got = blkReportZones(fd, next, buf);
    if (got === 0) break;
    const r = step(buf, got, maxZones - total, sink);
    total += r.passed;
    stop = r.stopped;
    if (r.nextSector <= next) throw loopError(next, r.nextSector);
    next = r.nextSector;
  }
  return total;
}

export function newReportBuffer(zones: number): Uint8Array {
  return new Uint8Array(BLK_ZONE_REPORT_HEADER_SIZE + Math.max(1, zones) * BLK_ZONE_SIZE);
}

async function reportLoop(sector: number, maxZones: number, sink: HostZoneSink, buf: Uint8Array,
  ioctl: (sector: number, buf: Uint8Array) => Promise<number>): Promise<number> {
  let total = 0;
  let next = sector;
  while (total < maxZones) {
    const got = await ioctl(next, buf);
    if (got === 0) break;
    const r = step(buf, got, maxZones - total, sink);
    total += r.passed;
    if (r.stopped) break;
    if (r.nextSector <= next) throw loopError(next, r.nextSector);
    next = r.nextSector;
  }
  return total;
}

function step(buf: Uint8Array, got: number, room: number, sink: HostZoneSink): { passed: number; stopped: boolean; nextSector: number } {
  let passed = 0;
  let stopped = false;
  let nextSector = 0;
  decodeReport(buf, got, (z) => {
    if (passed >= room) { stopped = true; return false; }
    passed++;
    nextSector = z.start + z.len;
    if (sink(z) === false) { stopped = true; return false; }
    return true;
  });
  return { passed, stopped, nextSector };
}

function loopError(sector: number, next: number): ZbdError {
  // A report that does not advance would loop forever (a zone of length 0).
  return new ZbdError('EDEVICE', `zone report from sector ${sector} did not advance (next zone at ${next})`, { sector, next });
}
