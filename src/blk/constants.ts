// virtio-blk numbers (VIRTIO 1.3 §5.2, incl. the zoned extension). Checked against the spec
// digest in shared/spec §1.
export const VIRTIO_ID_BLOCK = 2;

export const BLK_F = {
  SIZE_MAX: 1, SEG_MAX: 2, GEOMETRY: 4, RO: 5, BLK_SIZE: 6, FLUSH: 9, TOPOLOGY: 10, CONFIG_WCE: 11,
  MQ: 12, DISCARD: 13, WRITE_ZEROES: 14, ZONED: 17,
} as const;
export const VIRTIO_F = { INDIRECT_DESC: 28, EVENT_IDX: 29, VERSION_1: 32 } as const;

export const bit = (n: number): bigint => 1n << BigInt(n);

export const REQ = {
  IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, GET_LIFETIME: 10, DISCARD: 11, WRITE_ZEROES: 13, SECURE_ERASE: 14,
  ZONE_APPEND: 15, ZONE_REPORT: 16, ZONE_OPEN: 18, ZONE_CLOSE: 20, ZONE_FINISH: 22, ZONE_RESET: 24, ZONE_RESET_ALL: 26,
} as const;

export const REQ_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(REQ).map(([k, v]) => [v, k]));

export const STATUS = {
  OK: 0, IOERR: 1, UNSUPP: 2, ZONE_INVALID_CMD: 3, ZONE_UNALIGNED_WP: 4, ZONE_OPEN_RESOURCE: 5, ZONE_ACTIVE_RESOURCE: 6,
} as const;

export const ZONED_MODEL = { NONE: 0, HM: 1, HA: 2 } as const;

export const OUT_HDR_SIZE = 16;
export const GET_ID_BYTES = 20;
export const ZONE_REPORT_HDR = 64;
export const ZONE_DESC_SIZE = 64;
export const APPEND_TAIL = 9;
/** Linux's in-header is sizeof(struct { __virtio64 sector; u8 status; }) = 16. */
export const APPEND_TAIL_MAX = 16;
export const CONFIG_SIZE = 96;

/** DISCARD / WRITE_ZEROES segment: le64 sector, le32 num_sectors, le32 flags. */
export const SEGMENT_SIZE = 16;
/** Segment flag bit 0; the other 31 bits are reserved (a device answers UNSUPP when one is set). */
export const SEGMENT_F_UNMAP = 1;
/**
 * Limits offered for DISCARD and WRITE_ZEROES on a regular disk. QEMU's vhost-user-blk export
 * offers 1 segment of 16 MiB; Linux merges adjacent discards into one request with several
 * segments when the device takes them, so fstrim of a large filesystem needs far fewer
 * requests with 32 segments of up to 1 GiB each (fallocate does not care about the size; the
 * zero-writing fallback of WRITE_ZEROES goes 1 MiB at a time).
 */
export const DISCARD_MAX_SECTORS = 1 << 21;
export const DISCARD_MAX_SEGMENTS = 32;
