// The one place virtio-blk status bytes are decided: zone-engine/backend results and the
// parser's refusals both become VIRTIO_BLK_S_* here.
import { ZoneResult } from '../zoned/types.js';
import { STATUS } from './constants.js';

const ZONED: Record<ZoneResult, number> = {
  [ZoneResult.OK]: STATUS.OK,
  [ZoneResult.INVALID]: STATUS.ZONE_INVALID_CMD,
  [ZoneResult.UNALIGNED_WP]: STATUS.ZONE_UNALIGNED_WP,
  [ZoneResult.OPEN_RESOURCE]: STATUS.ZONE_OPEN_RESOURCE,
  [ZoneResult.ACTIVE_RESOURCE]: STATUS.ZONE_ACTIVE_RESOURCE,
  [ZoneResult.OUT_OF_RANGE]: STATUS.IOERR,
  [ZoneResult.IO_ERROR]: STATUS.IOERR,
  [ZoneResult.UNSUPPORTED]: STATUS.UNSUPP,
  [ZoneResult.READ_ONLY]: STATUS.IOERR,
};

/**
 * Status for a result. A driver that did not negotiate ZONED knows only OK/IOERR/UNSUPP, so
 * zone-rule rejections become IOERR for it (the write is still refused: nothing is corrupted).
 */
export function blkStatus(r: ZoneResult, zonedNegotiated: boolean): number {
  const s = ZONED[r] ?? STATUS.IOERR;
  return zonedNegotiated || s <= STATUS.UNSUPP ? s : STATUS.IOERR;
}

/** Why the parser refused a request without running it. */
export const enum Refusal {
  /** Framing the spec forbids (no status byte, short header, data of the wrong size...): a guest bug. */
  MALFORMED = 1,
  /** A type or option this device does not do, or the driver did not negotiate (spec: UNSUPP). */
  UNSUPPORTED = 2,
  /** A write-type request to a read-only disk (spec: IOERR, nothing written). */
  READ_ONLY = 3,
  /** A DISCARD/WRITE_ZEROES segment beyond the disk, larger than offered or not block-aligned. */
  BAD_RANGE = 4,
  /** A zone report buffer too small for its 64-byte header (QEMU answers the same). */
  REPORT_TOO_SMALL = 5,
}

const REFUSAL_STATUS: Record<Refusal, number> = {
  [Refusal.MALFORMED]: STATUS.IOERR,
  [Refusal.UNSUPPORTED]: STATUS.UNSUPP,
  [Refusal.READ_ONLY]: STATUS.IOERR,
  [Refusal.BAD_RANGE]: STATUS.IOERR,
  [Refusal.REPORT_TOO_SMALL]: STATUS.ZONE_INVALID_CMD,
};

export function refusalStatus(r: Refusal): number {
  return REFUSAL_STATUS[r];
}
