// The one place zone-engine results become virtio-blk status bytes.
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
