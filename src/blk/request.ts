// virtio-blk request parsing (VIRTIO 1.3 §5.2.6, spec digest §1.3): a descriptor chain in, a
// typed request out, or a refusal with the reason. Pure: no I/O, no logging, no clock; the
// device runs what comes out. Request objects are reused (one per queue slot) so the hot path
// allocates nothing here.
import { iovRead, iovSliceInto } from '../iovec.js';
import type { DescChain, VirtQueueHandle } from '../virtio/device.js';
import { ZoneOp } from '../zoned/types.js';
import {
  APPEND_TAIL, APPEND_TAIL_MAX, DISCARD_MAX_SEGMENTS, OUT_HDR_SIZE, REQ, SEGMENT_F_UNMAP, SEGMENT_SIZE, ZONE_REPORT_HDR,
} from './constants.js';
import { Refusal } from './status.js';

export const enum RequestKind {
  REFUSED = 0,
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  GET_ID = 4,
  APPEND = 5,
  REPORT = 6,
  MGMT = 7,
  DISCARD = 8,
  WRITE_ZEROES = 9,
}

export const REQUEST_KIND_NAMES: Readonly<Record<number, string>> = {
  0: 'refused', 1: 'read', 2: 'write', 3: 'flush', 4: 'get-id', 5: 'append', 6: 'report', 7: 'mgmt',
  8: 'discard', 9: 'write-zeroes',
};

/** DISCARD / WRITE_ZEROES limits offered in the config space. */
export interface SegmentLimits {
  /** Sectors per segment (max_discard_sectors / max_write_zeroes_sectors). */
  maxSectors: number;
  /** Segments per request (max_discard_seg / max_write_zeroes_seg). */
  maxSegments: number;
}

/** What the parser needs to know about the device and the negotiated features. */
export interface ParseContext {
  capacitySectors: number;
  /** Logical block size in 512-byte sectors: DISCARD/WRITE_ZEROES ranges must be multiples. */
  blockSectors: number;
  readOnly: boolean;
  /** VIRTIO_BLK_F_ZONED negotiated: zone commands are accepted. */
  zoned: boolean;
  /** Non-null when VIRTIO_BLK_F_DISCARD was offered and negotiated. */
  discard: SegmentLimits | null;
  /** Non-null when VIRTIO_BLK_F_WRITE_ZEROES was offered and negotiated. */
  writeZeroes: SegmentLimits | null;
}

const MGMT_OPS: Readonly<Record<number, ZoneOp>> = {
  [REQ.ZONE_OPEN]: ZoneOp.OPEN, [REQ.ZONE_CLOSE]: ZoneOp.CLOSE, [REQ.ZONE_FINISH]: ZoneOp.FINISH,
  [REQ.ZONE_RESET]: ZoneOp.RESET, [REQ.ZONE_RESET_ALL]: ZoneOp.RESET_ALL,
};

/**
 * One request: what the guest asked for, and where it is in flight. Fields other than the
 * kind's own are stale from earlier use; read only those the kind defines.
 */
export class BlkRequest {
  kind: RequestKind = RequestKind.REFUSED;
  /** The header's type field as sent (names unknown types in logs). */
  type = 0;
  /** Header sector: READ/WRITE start, APPEND/MGMT zone, REPORT first zone. */
  sector = 0;
  /**
   * READ/GET_ID/REPORT: the device-writable data before the status byte; WRITE/APPEND: the
   * data after the header. Views into guest memory, reused between requests.
   */
  readonly data: Uint8Array[] = [];
  dataBytes = 0;
  /** MGMT: the operation. */
  zoneOp: ZoneOp = ZoneOp.OPEN;
  /** APPEND: device-writable tail bytes (9 as in the spec, 16 as Linux sends). */
  tailBytes = 0;
  /** DISCARD/WRITE_ZEROES: segments, in order (zero-length ones included). */
  segments = 0;
  readonly segSector: Float64Array = new Float64Array(DISCARD_MAX_SEGMENTS);
  readonly segSectors: Uint32Array = new Uint32Array(DISCARD_MAX_SEGMENTS);
  readonly segUnmap: Uint8Array = new Uint8Array(DISCARD_MAX_SEGMENTS);
  /** REFUSED: why, and a sentence for the log. */
  refusal: Refusal = Refusal.MALFORMED;
  reason = '';
  /** REFUSED for one segment: its index (else -1). */
  badSegment = -1;

  /** Set by the device while the request is in flight. */
  queue: VirtQueueHandle | null = null;
  chain: DescChain | null = null;
  /**
   * Set by the device (performance.now() ms): when the request was taken off the ring, and
   * when its status was written. The clock is read once per batch of requests popped or
   * completed together (up to 8), not per request: the requests of a batch share a stamp.
   */
  startedAt = 0;
  completedAt = 0;
}

const hdr = new Uint8Array(OUT_HDR_SIZE);
const EMPTY = new Uint8Array(0);

function leU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** Little-endian u64 at off as a number; beyond 2^53 → MAX_SAFE_INTEGER (on no disk). */
function leU64(b: Uint8Array, off: number): number {
  const hi = leU32(b, off + 4);
  return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + leU32(b, off);
}

function refuse(req: BlkRequest, why: Refusal, reason: string): BlkRequest {
  req.kind = RequestKind.REFUSED;
  req.refusal = why;
  req.reason = reason;
  return req;
}

/** True for the zone command types, which need ZONED negotiated. */
function isZoneType(t: number): boolean {
  return t === REQ.ZONE_APPEND || t === REQ.ZONE_REPORT || MGMT_OPS[t] !== undefined;
}

/** Parses chain into req (a fresh one when omitted) and returns it. */
export function parseRequest(chain: DescChain, ctx: ParseContext, req: BlkRequest = new BlkRequest()): BlkRequest {
  req.badSegment = -1;
  req.type = -1;
  req.sector = 0;
  if (chain.error !== null) return refuse(req, Refusal.MALFORMED, chain.error);
  const writable = chain.writableBytes;
  // Nowhere to put a status: the chain still goes back so the guest is not left waiting.
  if (writable < 1) return refuse(req, Refusal.MALFORMED, 'no device-writable status byte');
  // The header is read in place when one descriptor holds it (the usual case), else gathered.
  const first = chain.readable.length > 0 ? chain.readable[0] : EMPTY;
  let h = first;
  if (first.byteLength < OUT_HDR_SIZE) {
    if (iovRead(chain.readable, 0, hdr) < OUT_HDR_SIZE) return refuse(req, Refusal.MALFORMED, 'request header shorter than 16 bytes');
    h = hdr;
  }
  const type = leU32(h, 0);
  req.type = type;
  // Bytes 4..7 are reserved (formerly ioprio): ignored, as every device does.
  req.sector = leU64(h, 8);
  if (isZoneType(type) && !ctx.zoned) return refuse(req, Refusal.UNSUPPORTED, 'zone command without negotiated ZONED');
  const readable = chain.readableBytes;
  switch (type) {
    case REQ.IN: {
      const len = writable - 1;
      if (readable !== OUT_HDR_SIZE || len % 512 !== 0) return refuse(req, Refusal.MALFORMED, 'malformed read');
      iovSliceInto(req.data, chain.writable, 0, len);
      req.dataBytes = len;
      req.kind = RequestKind.READ;
      return req;
    }
    case REQ.OUT: {
      const len = readable - OUT_HDR_SIZE;
      if (len % 512 !== 0 || writable !== 1) return refuse(req, Refusal.MALFORMED, 'malformed write');
      if (ctx.readOnly) return refuse(req, Refusal.READ_ONLY, 'write to a read-only disk');
      iovSliceInto(req.data, chain.readable, OUT_HDR_SIZE, readable);
      req.dataBytes = len;
      req.kind = RequestKind.WRITE;
      return req;
    }
    case REQ.FLUSH:
      req.kind = RequestKind.FLUSH;
      return req;
    case REQ.GET_ID:
      iovSliceInto(req.data, chain.writable, 0, writable - 1);
      req.dataBytes = writable - 1;
      req.kind = RequestKind.GET_ID;
      return req;
    case REQ.ZONE_APPEND: {
      const len = readable - OUT_HDR_SIZE;
      // The spec's tail is 9 bytes (le64 sector, status). Linux 6.3+ sends its unpacked
      // struct: 16 bytes with the status in the last one. Sector first, status last, either way.
      if (len % 512 !== 0 || writable < APPEND_TAIL || writable > APPEND_TAIL_MAX) return refuse(req, Refusal.MALFORMED, 'malformed zone append');
      iovSliceInto(req.data, chain.readable, OUT_HDR_SIZE, readable);
      req.dataBytes = len;
      req.tailBytes = writable;
      req.kind = RequestKind.APPEND;
      return req;
    }
    case REQ.ZONE_REPORT: {
      const len = writable - 1;
      if (readable !== OUT_HDR_SIZE || len < ZONE_REPORT_HDR) return refuse(req, Refusal.REPORT_TOO_SMALL, 'zone report buffer smaller than its 64-byte header');
      iovSliceInto(req.data, chain.writable, 0, len);
      req.dataBytes = len;
      req.kind = RequestKind.REPORT;
      return req;
    }
    case REQ.DISCARD:
      return parseSegments(chain, ctx, req, RequestKind.DISCARD, ctx.discard);
    case REQ.WRITE_ZEROES:
      return parseSegments(chain, ctx, req, RequestKind.WRITE_ZEROES, ctx.writeZeroes);
    default: {
      const op = MGMT_OPS[type];
      if (op === undefined) return refuse(req, Refusal.UNSUPPORTED, 'unsupported request type');
      if (readable !== OUT_HDR_SIZE) return refuse(req, Refusal.MALFORMED, 'zone management request carries data');
      req.zoneOp = op;
      req.kind = RequestKind.MGMT;
      return req;
    }
  }
}

/**
 * DISCARD / WRITE_ZEROES: every segment is checked before any runs, so a bad one changes
 * nothing. The spec's UNSUPP cases (a reserved flag bit, unmap on a discard) and QEMU's
 * (more segments than offered) come before the range checks, which are IOERR.
 */
function parseSegments(chain: DescChain, ctx: ParseContext, req: BlkRequest, kind: RequestKind, limits: SegmentLimits | null): BlkRequest {
  const name = kind === RequestKind.DISCARD ? 'discard' : 'write zeroes';
  if (limits === null) return refuse(req, Refusal.UNSUPPORTED, `${name} not negotiated`);
  if (chain.writableBytes !== 1) return refuse(req, Refusal.MALFORMED, `malformed ${name}: device-writable part is not just the status byte`);
  const payload = chain.readableBytes - OUT_HDR_SIZE;
  if (payload === 0 || payload % SEGMENT_SIZE !== 0) return refuse(req, Refusal.MALFORMED, `malformed ${name}: segment list of ${payload} bytes is not a positive multiple of 16`);
  const n = payload / SEGMENT_SIZE;
  if (n > limits.maxSegments) return refuse(req, Refusal.UNSUPPORTED, `${name} with ${n} segments, more than the ${limits.maxSegments} offered`);
  if (ctx.readOnly) return refuse(req, Refusal.READ_ONLY, `${name} on a read-only disk`);
  for (let i = 0; i < n; i++) {
    iovRead(chain.readable, OUT_HDR_SIZE + i * SEGMENT_SIZE, hdr);
    const sector = leU64(hdr, 0);
    const sectors = leU32(hdr, 8);
    const flags = leU32(hdr, 12);
    req.badSegment = i;
    if ((flags & ~SEGMENT_F_UNMAP) !== 0) return refuse(req, Refusal.UNSUPPORTED, `${name} segment with reserved flag bits 0x${(flags >>> 0).toString(16)}`);
    if (kind === RequestKind.DISCARD && (flags & SEGMENT_F_UNMAP) !== 0) return refuse(req, Refusal.UNSUPPORTED, 'discard segment with the unmap flag');
    if (sectors > limits.maxSectors) return refuse(req, Refusal.BAD_RANGE, `${name} segment of ${sectors} sectors, more than the ${limits.maxSectors} offered`);
    if (sector % ctx.blockSectors !== 0 || sectors % ctx.blockSectors !== 0) return refuse(req, Refusal.BAD_RANGE, `${name} segment ${sector}+${sectors} not aligned to the ${ctx.blockSectors * 512}-byte block`);
    if (sector > ctx.capacitySectors || sectors > ctx.capacitySectors - sector) return refuse(req, Refusal.BAD_RANGE, `${name} segment ${sector}+${sectors} beyond the end (${ctx.capacitySectors} sectors)`);
    req.segSector[i] = sector;
    req.segSectors[i] = sectors;
    req.segUnmap[i] = flags & SEGMENT_F_UNMAP;
  }
  req.badSegment = -1;
  req.segments = n;
  req.kind = kind;
  return req;
}
