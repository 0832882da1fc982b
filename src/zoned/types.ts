// Zone model vocabulary. Numeric values equal the virtio-blk zoned spec, Linux
// BLK_ZONE_TYPE_* / BLK_ZONE_COND_* and the blkzone(8) codes, so no layer translates them.

export const enum ZoneType {
  CONVENTIONAL = 1,
  SEQ_WRITE_REQUIRED = 2,
}

export const enum ZoneCond {
  NOT_WP = 0,
  EMPTY = 1,
  IMP_OPEN = 2,
  EXP_OPEN = 3,
  CLOSED = 4,
  READONLY = 13,
  FULL = 14,
  OFFLINE = 15,
}

/**
 * Outcome of a zone-engine decision. Deliberately not the virtio status byte: blk/ maps
 * these to VIRTIO_BLK_S_* (and the host-device backend maps errno to them).
 */
export const enum ZoneResult {
  OK = 0,
  /** Transition or request not allowed by the zone model (virtio ZONE_INVALID_CMD). */
  INVALID = 1,
  /** Write not at the write pointer or not aligned to the write granularity. */
  UNALIGNED_WP = 2,
  OPEN_RESOURCE = 3,
  ACTIVE_RESOURCE = 4,
  /** The request is beyond the device (virtio IOERR). */
  OUT_OF_RANGE = 5,
  /** Media or backend failure (virtio IOERR). */
  IO_ERROR = 6,
  /** Not supported by this device configuration (virtio UNSUPP). */
  UNSUPPORTED = 7,
  /** The disk is read-only (virtio IOERR). */
  READ_ONLY = 8,
}

export const enum ZoneOp {
  OPEN = 0,
  CLOSE = 1,
  FINISH = 2,
  RESET = 3,
  RESET_ALL = 4,
  /** Fault injection (not a guest command): make the zone read-only. */
  SET_READONLY = 5,
  /** Fault injection (not a guest command): take the zone offline. */
  SET_OFFLINE = 6,
  /**
   * Fault injection (not a guest command, and nothing a drive can do): return a read-only
   * zone to the condition its write pointer says, an offline one to EMPTY without its data.
   */
  CLEAR_FAULT = 7,
}

/**
 * Receives the zones of a report one by one, without an object per zone; `wp` is -1 where
 * the zone has no write pointer (all ones on the wire). Returns false to stop early (output
 * buffer full).
 */
export type ZoneSink = (start: number, len: number, cap: number, wp: number,
  type: ZoneType, cond: ZoneCond) => boolean;

export const SECTOR_SHIFT = 9;
export const SECTOR_SIZE = 512;

export const ZONE_COND_NAMES: Readonly<Record<number, string>> = {
  0: 'nw', 1: 'em', 2: 'oi', 3: 'oe', 4: 'cl', 13: 'ro', 14: 'fu', 15: 'of',
};
/** Long names as util-linux blkzone prints them. */
export const ZONE_COND_LONG_NAMES: Readonly<Record<number, string>> = {
  0: 'not-write-pointer', 1: 'empty', 2: 'implicitly-opened', 3: 'explicitly-opened',
  4: 'closed', 13: 'read-only', 14: 'full', 15: 'offline',
};
export const ZONE_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'CONVENTIONAL', 2: 'SEQ_WRITE_REQUIRED', 3: 'SEQ_WRITE_PREFERRED',
};

export const ZONE_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'OK', 1: 'INVALID', 2: 'UNALIGNED_WP', 3: 'OPEN_RESOURCE', 4: 'ACTIVE_RESOURCE', 5: 'OUT_OF_RANGE',
  6: 'IO_ERROR', 7: 'UNSUPPORTED', 8: 'READ_ONLY',
};
