// What a failed system call on a host zoned device means for the guest.
//
// The block layer turns a device's zone status into an errno (block/blk-core.c blk_errors):
// BLK_STS_ZONE_OPEN_RESOURCE → ETOOMANYREFS, BLK_STS_ZONE_ACTIVE_RESOURCE → EOVERFLOW,
// BLK_STS_TARGET (SCSI ILLEGAL REQUEST / invalid field) → EREMOTEIO, BLK_STS_NOTSUPP →
// EOPNOTSUPP, and almost everything else (a write off the write pointer rejected by zone
// write plugging, null_blk's zone checks, media errors) → EIO. EIO alone cannot tell a zone
// rule from a dead disk, so the backend checks every request against its own copy of the
// zone state first (the guest then gets exactly the file emulation's answer) and, when the
// device still fails, re-reads the zone and decides with classifyAfterResync.
import { ZoneCond, ZoneResult } from '../zoned/types.js';

/** Linux errno numbers (x86-64 and arm64 share them). */
export const ERRNO = Object.freeze({
  EPERM: 1,
  EIO: 5,
  ENXIO: 6,
  EAGAIN: 11,
  EBADF: 9,
  ENOMEM: 12,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  EOPNOTSUPP: 95,
  EOVERFLOW: 75,
  ETOOMANYREFS: 109,
  EREMOTEIO: 121,
});

/** Positive errno of a failure from Node fs (err.errno is negative) or the addon (NativeError.errno is positive). */
export function errnoOf(err: unknown): number {
  const e = err as { errno?: unknown } | null;
  const n = e && typeof e.errno === 'number' ? Math.abs(e.errno) : 0;
  return n;
}

export type HostOp = 'read' | 'write' | 'append' | 'mgmt' | 'flush' | 'report';

/**
 * The result an errno maps to before looking at the zone again. null means "it depends on
 * the zone": re-read it and call classifyAfterResync.
 */
export function mapErrno(errno: number, op: HostOp): ZoneResult | null {
  switch (errno) {
    case ERRNO.ETOOMANYREFS:
      return op === 'read' || op === 'flush' ? ZoneResult.IO_ERROR : ZoneResult.OPEN_RESOURCE;
    case ERRNO.EOVERFLOW:
      return op === 'read' || op === 'flush' ? ZoneResult.IO_ERROR : ZoneResult.ACTIVE_RESOURCE;
    case ERRNO.EOPNOTSUPP:
      return ZoneResult.UNSUPPORTED;
    case ERRNO.EROFS:
    case ERRNO.EPERM: // blkdev_zone_mgmt on a read-only device
      return ZoneResult.READ_ONLY;
    case ERRNO.EIO:
    case ERRNO.EREMOTEIO:
    case ERRNO.EINVAL:
      // A zone rule the pre-check could not see (state changed behind our back, a zone gone
      // read-only or offline) or a real failure: the zone decides.
      return op === 'write' || op === 'append' || op === 'mgmt' ? null : ZoneResult.IO_ERROR;
    default:
      return ZoneResult.IO_ERROR;
  }
}

/**
 * A write, append or zone operation failed with an errno mapErrno could not decide, and the
 * zone was re-read from the device. What the guest is told:
 * - the zone is now read-only or offline, or full for a write/append: the request is
 *   invalid for it (INVALID_CMD, as the emulation answers a write to such a zone);
 * - a write whose target is not where the zone's write pointer now stands, and that did not
 *   land partly either: our copy of the write pointer was stale, UNALIGNED_WP;
 * - EREMOTEIO/EINVAL (the device called the command itself invalid): INVALID_CMD;
 * - otherwise the device failed (including a write that landed only partly): IOERR.
 */
export function classifyAfterResync(errno: number, op: HostOp, cond: ZoneCond, wpNow: number,
  requestSector: number, requestEnd: number): ZoneResult {
  if (cond === ZoneCond.READONLY || cond === ZoneCond.OFFLINE) return ZoneResult.INVALID;
  if (op === 'write' || op === 'append') {
    // Part of the data is on the medium although the call failed: a device failure.
    if (wpNow > requestSector && wpNow <= requestEnd) return ZoneResult.IO_ERROR;
    if (cond === ZoneCond.FULL) return ZoneResult.INVALID;
    if (op === 'write' && wpNow !== requestSector) return ZoneResult.UNALIGNED_WP;
  }
  if (errno === ERRNO.EREMOTEIO || errno === ERRNO.EINVAL) return ZoneResult.INVALID;
  return ZoneResult.IO_ERROR;
}
