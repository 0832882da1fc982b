// vhost-user wire format: request numbers, header flags, payload layouts (spec §5.1, §5.2).
// Everything here is pure byte handling so both the back-end and the test front-end use it.
// All multi-byte fields are host order, which we require to be little-endian.
import { ZbdError } from '../errors.js';

export const HEADER_SIZE = 12;
/** Largest payload we accept; the biggest real one is a config (12 + 256) or an 8-region table. */
export const MAX_PAYLOAD = 4096;
/** Most fds one message may carry (SET_MEM_TABLE with 8 regions). */
export const MAX_FDS = 8;
export const MAX_MEM_TABLE_REGIONS = 8;
export const MAX_CONFIG_SIZE = 256;

export const VERSION_MASK = 0x3;
export const VERSION = 0x1;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;
/** QEMU checks reply flags for equality with this value, so never echo NEED_REPLY. */
export const REPLY_FLAGS = VERSION | FLAG_REPLY;

/** Front-end → back-end requests. */
export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
} as const;
export type ReqName = keyof typeof Req;

/**
 * Requests whose reply is their own payload, always sent (REPLY_ACK never applies to them).
 * Both sides of the wire read this one list: the daemon to answer, front-ends to wait.
 */
export const OWN_REPLY: ReadonlySet<number> = new Set<number>([
  Req.GET_FEATURES, Req.GET_PROTOCOL_FEATURES, Req.GET_VRING_BASE, Req.GET_CONFIG, Req.GET_QUEUE_NUM,
  Req.GET_MAX_MEM_SLOTS, Req.GET_INFLIGHT_FD, Req.GET_STATUS, Req.IOTLB_MSG, Req.CHECK_DEVICE_STATE,
  Req.SET_DEVICE_STATE_FD, Req.GET_SHARED_OBJECT, Req.POSTCOPY_ADVISE,
]);

const REQ_NAMES: string[] = [];
for (const [name, num] of Object.entries(Req)) REQ_NAMES[num] = name;

/** Name of a request number for logs; unknown numbers print as UNKNOWN(n). */
export function requestName(request: number): string {
  return REQ_NAMES[request] ?? `UNKNOWN(${request})`;
}

/** Back-end → front-end requests on the SET_BACKEND_REQ_FD channel. */
export const BackendReq = {
  IOTLB_MSG: 1,
  CONFIG_CHANGE_MSG: 2,
  VRING_HOST_NOTIFIER_MSG: 3,
  VRING_CALL: 4,
  VRING_ERR: 5,
} as const;

/** Protocol feature bit numbers (VHOST_USER_PROTOCOL_F_*). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
  GET_VRING_BASE_INFLIGHT: 20,
} as const;

/** Virtio feature bit 30, reused by vhost-user to announce GET/SET_PROTOCOL_FEATURES. */
export const F_PROTOCOL_FEATURES = 1n << 30n;

/** Kick/call/err u64: bits 0-7 queue index, bit 8 "no fd attached". */
export const VRING_IDX_MASK = 0xff;
export const VRING_NOFD = 0x100;

/** Largest split-ring size (VIRTIO 1.x). */
export const MAX_SPLIT_QUEUE_SIZE = 32768;

/** SET_VRING_ADDR flags bit 0: the front-end wants used-ring dirty logging. */
export const VRING_ADDR_F_LOG = 0x1;

export interface VhostUserMessage {
  request: number;
  flags: number;
  /** Exactly `size` bytes from the header. */
  payload: Uint8Array;
  /**
   * File descriptors received with the message. A handler keeps one only through
   * handOverFd(); whatever is left is closed after handling, so rejected messages never leak fds.
   */
  fds: number[];
}

export function hasOwnReply(request: number): boolean { return OWN_REPLY.has(request); }

/**
 * Gives fd `i` of `msg` to `adopt`. Once adopt returns the fd is the callee's; if adopt throws
 * it stays with the message and is closed with the rest after handling, so a rejected request
 * never leaks it and never leaves it half-owned.
 */
export function handOverFd<T>(msg: VhostUserMessage, i: number, adopt: (fd: number) => T): T {
  const fd = msg.fds[i];
  if (fd === undefined || fd < 0) throw proto(msg, `has no fd #${i} to take`, i);
  const r = adopt(fd);
  msg.fds[i] = -1;
  return r;
}

export interface VringState { index: number; num: number }

/** SET_VRING_KICK/CALL/ERR: the queue and whether an fd comes with it (NOFD clear). */
export interface VringFdMsg { index: number; hasFd: boolean }

/** Inflight region description (GET_INFLIGHT_FD reply, SET_INFLIGHT_FD request). */
export interface InflightDesc {
  mmapSize: number;
  mmapOffset: number;
  numQueues: number;
  queueSize: number;
}

export interface VringAddr {
  index: number;
  flags: number;
  desc: number;
  used: number;
  avail: number;
  /** Not used (no dirty logging); UML sends all-ones, so it stays a bigint. */
  log: bigint;
}

export interface MemRegionDesc {
  guestPhysAddr: number;
  size: number;
  userAddr: number;
  mmapOffset: number;
}

export interface ConfigMsg {
  offset: number;
  size: number;
  flags: number;
  data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function proto(msg: VhostUserMessage, what: string, value: unknown): ZbdError {
  return new ZbdError('EPROTO', `${requestName(msg.request)}: ${what}`, value);
}

function view(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

export function expectSize(msg: VhostUserMessage, size: number): void {
  if (msg.payload.length !== size) {
    throw proto(msg, `payload size ${msg.payload.length}, expected ${size}`, msg.payload.length);
  }
}

export function expectNoFds(msg: VhostUserMessage): void {
  if (msg.fds.length !== 0) throw proto(msg, `carries ${msg.fds.length} unexpected fd(s)`, msg.fds.length);
}

/** Reads an le64 that must fit a JS number exactly (addresses, sizes). */
export function readSafeU64(dv: DataView, off: number, msg: VhostUserMessage, field: string): number {
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  // 2^53 = hi 2^21: anything at or above cannot be represented and is no real address.
  if (hi >= 0x200000) {
    throw proto(msg, `${field} 0x${dv.getBigUint64(off, true).toString(16)} exceeds 2^53`, dv.getBigUint64(off, true));
  }
  return hi * 0x1_0000_0000 + lo;
}

export function decodeU64(msg: VhostUserMessage): bigint {
  expectSize(msg, 8);
  return view(msg.payload).getBigUint64(0, true);
}

export function decodeVringState(msg: VhostUserMessage): VringState {
  expectSize(msg, 8);
  const dv = view(msg.payload);
  return { index: dv.getUint32(0, true), num: dv.getUint32(4, true) };
}

/** SET_VRING_NUM: a split-ring size, a power of two in 1..32768. */
export function decodeVringNum(msg: VhostUserMessage): VringState {
  const s = decodeVringState(msg);
  if (s.num < 1 || s.num > MAX_SPLIT_QUEUE_SIZE || (s.num & (s.num - 1)) !== 0) {
    throw proto(msg, `queue ${s.index} size ${s.num} is not a power of two in 1..${MAX_SPLIT_QUEUE_SIZE}`, s.num);
  }
  return s;
}

/** SET_VRING_BASE: the next avail index, a u16 for a split ring. */
export function decodeVringBase(msg: VhostUserMessage): VringState {
  const s = decodeVringState(msg);
  if (s.num > 0xffff) throw proto(msg, `queue ${s.index} base ${s.num} > 0xffff (split ring)`, s.num);
  return s;
}

/** SET_VRING_ENABLE: 0 or 1. */
export function decodeVringEnable(msg: VhostUserMessage): { index: number; enable: boolean } {
  const s = decodeVringState(msg);
  if (s.num > 1) throw proto(msg, `queue ${s.index} enable value ${s.num} is not 0 or 1`, s.num);
  return { index: s.index, enable: s.num === 1 };
}

/** SET_VRING_KICK/CALL/ERR: u64 with the queue index and NOFD; exactly one fd unless NOFD. */
export function decodeVringFdMsg(msg: VhostUserMessage): VringFdMsg {
  const u = decodeU64(msg);
  if (u > BigInt(VRING_IDX_MASK | VRING_NOFD)) throw proto(msg, `reserved bits set in 0x${u.toString(16)}`, u);
  const n = Number(u);
  const hasFd = (n & VRING_NOFD) === 0;
  if (!hasFd && msg.fds.length !== 0) throw proto(msg, `NOFD set but ${msg.fds.length} fd(s) attached`, msg.fds.length);
  if (hasFd && msg.fds.length !== 1) throw proto(msg, `expected 1 fd, got ${msg.fds.length}`, msg.fds.length);
  return { index: n & VRING_IDX_MASK, hasFd };
}

export function decodeVringAddr(msg: VhostUserMessage): VringAddr {
  expectSize(msg, 40);
  const dv = view(msg.payload);
  return {
    index: dv.getUint32(0, true),
    flags: dv.getUint32(4, true),
    // Order on the wire is desc, used, avail, log (struct vhost_vring_addr).
    desc: readSafeU64(dv, 8, msg, 'desc_user_addr'),
    used: readSafeU64(dv, 16, msg, 'used_user_addr'),
    avail: readSafeU64(dv, 24, msg, 'avail_user_addr'),
    log: dv.getBigUint64(32, true),
  };
}

function decodeRegion(dv: DataView, off: number, msg: VhostUserMessage, n: number): MemRegionDesc {
  const r: MemRegionDesc = {
    guestPhysAddr: readSafeU64(dv, off, msg, `region ${n} guest_phys_addr`),
    size: readSafeU64(dv, off + 8, msg, `region ${n} memory_size`),
    userAddr: readSafeU64(dv, off + 16, msg, `region ${n} userspace_addr`),
    mmapOffset: readSafeU64(dv, off + 24, msg, `region ${n} mmap_offset`),
  };
  if (r.size === 0) throw proto(msg, `region ${n} has size 0`, 0);
  // Each range must stay below 2^53 so end arithmetic is exact.
  for (const [field, base] of [['guest_phys_addr', r.guestPhysAddr], ['userspace_addr', r.userAddr],
    ['mmap_offset', r.mmapOffset]] as const) {
    if (base > Number.MAX_SAFE_INTEGER - r.size) {
      throw proto(msg, `region ${n} ${field} 0x${base.toString(16)} + size 0x${r.size.toString(16)} overflows`, base);
    }
  }
  return r;
}

/** SET_MEM_TABLE: u32 nregions, u32 padding, 32-byte regions. One fd per region. */
export function decodeMemTable(msg: VhostUserMessage): MemRegionDesc[] {
  if (msg.payload.length < 8) throw proto(msg, `payload size ${msg.payload.length} < 8`, msg.payload.length);
  const dv = view(msg.payload);
  const n = dv.getUint32(0, true);
  if (n === 0 || n > MAX_MEM_TABLE_REGIONS) {
    throw proto(msg, `nregions ${n} not in 1..${MAX_MEM_TABLE_REGIONS}`, n);
  }
  // UML always sends 72 bytes whatever n is, so only a minimum is required.
  if (msg.payload.length < 8 + 32 * n) {
    throw proto(msg, `payload size ${msg.payload.length} < ${8 + 32 * n} for ${n} regions`, msg.payload.length);
  }
  if (msg.fds.length !== n) throw proto(msg, `${msg.fds.length} fds for ${n} regions`, msg.fds.length);
  const out: MemRegionDesc[] = [];
  for (let i = 0; i < n; i++) out.push(decodeRegion(dv, 8 + 32 * i, msg, i));
  return out;
}

/** ADD_MEM_REG / REM_MEM_REG: u64 padding + one region. */
export function decodeMemRegionMsg(msg: VhostUserMessage): MemRegionDesc {
  expectSize(msg, 40);
  return decodeRegion(view(msg.payload), 8, msg, 0);
}

/** GET_INFLIGHT_FD / SET_INFLIGHT_FD: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size (+4 padding). */
export const INFLIGHT_DESC_SIZE = 24;

export function decodeInflightDesc(msg: VhostUserMessage): InflightDesc {
  expectSize(msg, INFLIGHT_DESC_SIZE);
  const dv = view(msg.payload);
  const d: InflightDesc = {
    mmapSize: readSafeU64(dv, 0, msg, 'mmap_size'),
    mmapOffset: readSafeU64(dv, 8, msg, 'mmap_offset'),
    numQueues: dv.getUint16(16, true),
    queueSize: dv.getUint16(18, true),
  };
  if (d.numQueues === 0) throw proto(msg, 'num_queues 0', 0);
  if (d.queueSize === 0) throw proto(msg, 'queue_size 0', 0);
  return d;
}

export function encodeInflightDesc(d: InflightDesc): Uint8Array {
  const out = new Uint8Array(INFLIGHT_DESC_SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(d.mmapSize), true);
  dv.setBigUint64(8, BigInt(d.mmapOffset), true);
  dv.setUint16(16, d.numQueues, true);
  dv.setUint16(18, d.queueSize, true);
  return out;
}

/** A message that must carry exactly one fd. */
export function expectOneFd(msg: VhostUserMessage): void {
  if (msg.fds.length !== 1) throw proto(msg, `needs exactly one fd, got ${msg.fds.length}`, msg.fds.length);
}

/** GET_CONFIG / SET_CONFIG: u32 offset, u32 size, u32 flags, size bytes. */
export function decodeConfig(msg: VhostUserMessage): ConfigMsg {
  if (msg.payload.length < 12) throw proto(msg, `payload size ${msg.payload.length} < 12`, msg.payload.length);
  const dv = view(msg.payload);
  const offset = dv.getUint32(0, true);
  const size = dv.getUint32(4, true);
  const flags = dv.getUint32(8, true);
  if (size > MAX_CONFIG_SIZE) throw proto(msg, `config size ${size} > ${MAX_CONFIG_SIZE}`, size);
  if (offset > MAX_CONFIG_SIZE - size) {
    throw proto(msg, `config offset ${offset} + size ${size} > ${MAX_CONFIG_SIZE}`, offset);
  }
  if (msg.payload.length !== 12 + size) {
    throw proto(msg, `payload size ${msg.payload.length}, expected ${12 + size} for config size ${size}`,
      msg.payload.length);
  }
  return { offset, size, flags, data: msg.payload.subarray(12, 12 + size) };
}

// ---------------------------------------------------------------------------------------------
// Encoding (replies from the back-end, requests from the test front-end)

/** A full message: 12-byte header + payload. */
export function encodeMessage(request: number, flags: number, payload?: Uint8Array, sizeOverride?: number): Uint8Array {
  const len = payload ? payload.length : 0;
  const out = new Uint8Array(HEADER_SIZE + len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, request, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, sizeOverride ?? len, true);
  if (payload) out.set(payload, HEADER_SIZE);
  return out;
}

export function encodeU64(v: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(v), true);
  return out;
}

export function encodeVringState(index: number, num: number): Uint8Array {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, index, true);
  dv.setUint32(4, num, true);
  return out;
}

export function encodeVringAddr(a: { index: number; flags?: number; desc: number | bigint; used: number | bigint;
  avail: number | bigint; log?: bigint }): Uint8Array {
  const out = new Uint8Array(40);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, a.index, true);
  dv.setUint32(4, a.flags ?? 0, true);
  dv.setBigUint64(8, BigInt(a.desc), true);
  dv.setBigUint64(16, BigInt(a.used), true);
  dv.setBigUint64(24, BigInt(a.avail), true);
  dv.setBigUint64(32, a.log ?? 0xffff_ffff_ffff_ffffn, true);
  return out;
}

function putRegion(dv: DataView, off: number, r: MemRegionDesc): void {
  dv.setBigUint64(off, BigInt(r.guestPhysAddr), true);
  dv.setBigUint64(off + 8, BigInt(r.size), true);
  dv.setBigUint64(off + 16, BigInt(r.userAddr), true);
  dv.setBigUint64(off + 24, BigInt(r.mmapOffset), true);
}

/** SET_MEM_TABLE payload; `fixedSize` mimics UML's constant 72-byte payload. */
export function encodeMemTable(regions: MemRegionDesc[], fixedSize?: number): Uint8Array {
  const out = new Uint8Array(Math.max(fixedSize ?? 0, 8 + 32 * regions.length));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, regions.length, true);
  regions.forEach((r, i) => putRegion(dv, 8 + 32 * i, r));
  return out;
}

export function encodeMemRegionMsg(r: MemRegionDesc): Uint8Array {
  const out = new Uint8Array(40);
  putRegion(new DataView(out.buffer), 8, r);
  return out;
}

export function encodeConfig(offset: number, size: number, flags: number, data?: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, offset, true);
  dv.setUint32(4, size, true);
  dv.setUint32(8, flags, true);
  if (data) out.set(data.subarray(0, size), 12);
  return out;
}

/** Parses a 12-byte header. */
export function decodeHeader(h: Uint8Array): { request: number; flags: number; size: number } {
  const dv = view(h);
  return { request: dv.getUint32(0, true), flags: dv.getUint32(4, true), size: dv.getUint32(8, true) };
}
