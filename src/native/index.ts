// The typed door to the native addon (native/*.cc, one file per concern): unix sockets
// that pass fds, shared memory mappings, eventfd counters, fd polling on the Node loop, file
// locks and fallocate, the Linux zoned block device ioctls and io_uring. This is the only
// module that loads the addon.
//
// Every argument is validated here; a bad one throws ZbdError 'EARG' before any system
// call. A failing system call throws NativeError (a ZbdError with code 'ENATIVE') carrying
// errno, its name and the syscall. "Would block" is never an error: each function
// documents the value it returns instead.

import { Buffer, constants as bufferConstants } from 'node:buffer';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap, inspect } from 'node:util';
import { ZbdError } from '../errors.js';

/** A failed system call: ZbdError code 'ENATIVE', plus errno facts for callers to act on. */
export class NativeError extends ZbdError {
  readonly syscall: string;
  /** Positive errno number, e.g. 9. */
  readonly errno: number;
  /** Errno name, e.g. 'EBADF'. */
  readonly errnoName: string;

  /** detail lists the arguments of the call, e.g. "fd=7, len=4096". */
  constructor(syscall: string, errno: number, detail: string) {
    const [name, description] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, 'unknown error'];
    super('ENATIVE', `${syscall}(${detail}) failed: ${name} (${description})`, detail);
    this.syscall = syscall;
    this.errno = errno;
    this.errnoName = name;
  }
}

// ---- loading -------------------------------------------------------------------------------

type PollCallback = (err: Error | null, readable: boolean, writable: boolean) => void;

interface NativeIoRing {
  queueBatch(n: number, meta: Float64Array, views: ReadonlyArray<Uint8Array | readonly Uint8Array[] | null>): number;
  submit(): number;
  reap(out: Float64Array): number;
  submitAndReap(out: Float64Array): number;
  armEventFd(on: boolean): boolean;
  close(): void;
  readonly eventFd: number;
  readonly capacity: number;
}

interface NativePoller {
  setEvents(mask: number): boolean; // false once stopped
  stop(): void;
  ref(): void;
  unref(): void;
}

/** The raw addon. Its functions trust their argument types, so only this module calls them. */
interface Addon {
  setErrorFactory(factory: (syscall: string, errno: number, detail: string) => Error): void;
  listenUnix(path: string, backlog: number): number;
  acceptUnix(listenFd: number): number;
  connectUnix(path: string): number;
  socketpair(): [number, number];
  recvMsg(fd: number, buf: Uint8Array, fds: Int32Array): number;
  sendMsg(fd: number, buf: Uint8Array, fds: readonly number[] | undefined): number;
  closeFd(fd: number): void;
  eventfd(): number;
  writeCounter(fd: number, value: number): boolean;
  readCounter(fd: number): number;
  memfdCreate(name: string, size: number): number;
  mmap(fd: number, offset: number, length: number, writable: boolean): ArrayBuffer;
  munmap(ab: ArrayBuffer): boolean; // false: not a live mapping made by mmap
  pageSize(): number;
  flock(fd: number, exclusive: boolean, nonblocking: boolean): boolean;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  fallocateAsync(fd: number, mode: number, offset: number, length: number, cb: (err: Error | null) => void): void;
  preadNowait(fd: number, views: Uint8Array | readonly Uint8Array[], offset: number): number;
  blkGetZoneSize(fd: number): number;
  blkGetNrZones(fd: number): number;
  blkReportZones(fd: number, sector: number, buf: Uint8Array): number;
  blkZoneMgmt(fd: number, request: number, sector: number, nrSectors: number): void;
  blkReportZonesAsync(fd: number, sector: number, buf: Uint8Array, cb: (err: Error | null, zones: number) => void): void;
  blkZoneMgmtAsync(fd: number, request: number, sector: number, nrSectors: number, cb: (err: Error | null) => void): void;
  pageOffsetOf(view: Uint8Array): number;
  pollFds(fds: Int32Array, timeoutMs: number): number;
  FdPoller: new (fd: number, mask: number, callback: PollCallback) => NativePoller;
  IoRing: new (entries: number) => NativeIoRing;
  POLL_READABLE: number;
  POLL_WRITABLE: number;
  BLK_ZONE_OP: { RESET: number; OPEN: number; CLOSE: number; FINISH: number };
  FALLOC_FL_KEEP_SIZE: number;
  FALLOC_FL_PUNCH_HOLE: number;
}

// The package root holds package.json and binding.gyp, whether this file runs compiled
// from dist/native or as TypeScript from src/native (vitest).
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    if (dirname(dir) === dir) {
      throw new ZbdError('ENATIVE', `no package root (package.json with binding.gyp) above ${start}`, start);
    }
  }
}

function loadAddon(): Addon {
  const path = join(packageRoot(), 'build', 'Release', 'vhost_user_zbd_native.node');
  let loaded: Addon;
  try {
    loaded = createRequire(import.meta.url)(path) as Addon;
  } catch (cause) {
    throw new ZbdError('ENATIVE', `cannot load native addon ${path} (build it with npm install)`, path, { cause });
  }
  loaded.setErrorFactory((syscall, errno, detail) => new NativeError(syscall, errno, detail));
  return loaded;
}

const addon = loadAddon();
const PAGE_SIZE = addon.pageSize();
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

// ---- argument checks -----------------------------------------------------------------------

function show(value: unknown): string {
  return inspect(value, { depth: 0, maxArrayLength: 0, maxStringLength: 120, breakLength: Infinity });
}

function argError(fn: string, what: string, value: unknown): ZbdError {
  return new ZbdError('EARG', `${fn}: ${what}, got ${show(value)}`, value);
}

function checkInt(fn: string, name: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw argError(fn, `${name} must be an integer in [${min}, ${max}]`, value);
  }
}

function checkFd(fn: string, value: unknown, name = 'fd'): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw argError(fn, `${name} must be a file descriptor (integer >= 0)`, value);
  }
}

function checkBool(fn: string, name: string, value: unknown): asserts value is boolean {
  if (typeof value !== 'boolean') throw argError(fn, `${name} must be a boolean`, value);
}

function checkBytes(fn: string, name: string, value: unknown, minLength: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.byteLength < minLength) {
    throw argError(fn, `${name} must be a Uint8Array of at least ${minLength} bytes`, value);
  }
}

// A NUL-free string whose UTF-8 form is 1..maxBytes long (the C side adds the NUL).
function checkCString(fn: string, name: string, value: unknown, maxBytes: number): asserts value is string {
  if (typeof value !== 'string' || value.includes('\0') ||
      value.length === 0 || Buffer.byteLength(value) > maxBytes) {
    throw argError(fn, `${name} must be a string of 1..${maxBytes} UTF-8 bytes without NUL`, value);
  }
}

const SUN_PATH_MAX = 107; // sizeof(sockaddr_un.sun_path) minus the NUL
const MEMFD_NAME_MAX = 249; // NAME_MAX minus the "memfd:" prefix
const MAX_SEND_FDS = 8;

// ---- unix sockets --------------------------------------------------------------------------

/**
 * Creates a non-blocking listening unix stream socket at path (which must not exist),
 * mode 0600 before listen(), so only our user can ever connect. Returns the fd.
 */
export function listenUnix(path: string, backlog = 16): number {
  checkCString('listenUnix', 'path', path, SUN_PATH_MAX);
  checkInt('listenUnix', 'backlog', backlog, 0, 0x7fffffff);
  return addon.listenUnix(path, backlog);
}

/** Accepts one connection as a non-blocking fd; -1 if none is pending. */
export function acceptUnix(listenFd: number): number {
  checkFd('acceptUnix', listenFd, 'listenFd');
  return addon.acceptUnix(listenFd);
}

/** Connects to a unix stream socket (blocking), then returns the fd made non-blocking. */
export function connectUnix(path: string): number {
  checkCString('connectUnix', 'path', path, SUN_PATH_MAX);
  return addon.connectUnix(path);
}

/** A connected pair of non-blocking unix stream sockets. */
export function socketpair(): [number, number] {
  return addon.socketpair();
}

/**
 * One recvmsg() into the whole of buf. Returns the byte count, 0 at EOF, -1 if nothing is
 * available. Received fds go to fds[0..n-1] and the rest of fds is set to -1; fds beyond
 * fds.length are closed. The caller owns (and must close) every fd it is given.
 */
export function recvMsg(fd: number, buf: Uint8Array, fds: Int32Array): number {
  checkFd('recvMsg', fd);
  checkBytes('recvMsg', 'buf', buf, 1);
  if (!(fds instanceof Int32Array)) throw argError('recvMsg', 'fds must be an Int32Array', fds);
  return addon.recvMsg(fd, buf, fds);
}

/**
 * One sendmsg() of buf with up to 8 fds attached (SCM_RIGHTS). Returns the bytes sent,
 * which may be fewer than buf.length, or -1 if the socket is full (nothing sent). The fds
 * travel with the first byte sent. A vanished peer throws EPIPE, never SIGPIPE.
 */
export function sendMsg(fd: number, buf: Uint8Array, fds?: readonly number[]): number {
  checkFd('sendMsg', fd);
  checkBytes('sendMsg', 'buf', buf, 1);
  if (fds !== undefined) {
    if (!Array.isArray(fds) || fds.length > MAX_SEND_FDS) {
      throw argError('sendMsg', `fds must be an array of at most ${MAX_SEND_FDS} fds`, fds);
    }
    for (const f of fds) checkFd('sendMsg', f, 'fds[]');
  }
  return addon.sendMsg(fd, buf, fds);
}

/** Closes fd. An EINTR from close() counts as closed (Linux has released the fd). */
export function closeFd(fd: number): void {
  checkFd('closeFd', fd);
  addon.closeFd(fd);
}

// ---- eventfd counters ----------------------------------------------------------------------

/** A non-blocking eventfd with counter 0. */
export function eventfd(): number {
  return addon.eventfd();
}

/**
 * Adds value (default 1) to an eventfd, or sends it as an 8-byte little-endian counter on
 * a stream socket (UML uses a socketpair as its call fd). false if it would block.
 */
export function writeCounter(fd: number, value = 1): boolean {
  checkFd('writeCounter', fd);
  checkInt('writeCounter', 'value', value, 0, MAX_SAFE);
  return addon.writeCounter(fd, value);
}

/**
 * Reads and resets an eventfd counter (or reads one 8-byte counter from a socket).
 * 0 if nothing is pending, -1 at EOF (socket peer closed). Values above 2^53 lose precision.
 */
export function readCounter(fd: number): number {
  checkFd('readCounter', fd);
  return addon.readCounter(fd);
}

// ---- shared memory -------------------------------------------------------------------------

/** An anonymous shared memory file of size bytes (close-on-exec, sealing allowed). */
export function memfdCreate(name: string, size: number): number {
  checkCString('memfdCreate', 'name', name, MEMFD_NAME_MAX);
  checkInt('memfdCreate', 'size', size, 0, MAX_SAFE);
  return addon.memfdCreate(name, size);
}

/** ArrayBuffers made by mmap (guest RAM, shared buffers), as opposed to JavaScript heap memory. */
const mappedBuffers = new WeakSet<ArrayBuffer>();

/**
 * Maps length bytes of fd at offset (a multiple of pageSize()), MAP_SHARED, read-write
 * unless writable is false. length is at most buffer.constants.MAX_LENGTH (4 GiB on
 * Node 20), the most a Uint8Array can view. The ArrayBuffer is never unmapped by the
 * garbage collector: call munmap. Writing to a read-only mapping kills the process
 * (SIGSEGV), so views over it must be read only.
 */
export function mmap(fd: number, offset: number, length: number, writable = true): ArrayBuffer {
  checkFd('mmap', fd);
  checkInt('mmap', 'offset', offset, 0, MAX_SAFE);
  if (offset % PAGE_SIZE !== 0) throw argError('mmap', `offset must be a multiple of the page size ${PAGE_SIZE}`, offset);
  checkInt('mmap', 'length', length, 1, bufferConstants.MAX_LENGTH);
  checkBool('mmap', 'writable', writable);
  const ab = addon.mmap(fd, offset, length, writable);
  mappedBuffers.add(ab);
  return ab;
}

/**
 * True when view lies in memory mapped by mmap() (and not unmapped since), false for
 * JavaScript heap memory. O_DIRECT I/O goes straight to mapped memory only: pages of the
 * JavaScript heap are shared with other objects and recycled by V8 and malloc.
 */
export function isMapped(view: Uint8Array): boolean {
  return view instanceof Uint8Array && mappedBuffers.has(view.buffer as ArrayBuffer) && view.buffer.byteLength > 0;
}

/**
 * Unmaps an ArrayBuffer returned by mmap and detaches it: it and every view over it then
 * have length 0, so no later access can reach the freed memory. Do not unmap memory that
 * asynchronous I/O is still using. Throws for any other buffer and on a second call.
 */
export function munmap(ab: ArrayBuffer): void {
  if (!(ab instanceof ArrayBuffer)) throw argError('munmap', 'expected an ArrayBuffer returned by mmap', ab);
  if (!addon.munmap(ab)) {
    throw argError('munmap', 'not a live mapping made by mmap (already unmapped?)', ab);
  }
}

// The fence is a sequentially consistent read-modify-write on a cell of our own (x86 xchg,
// arm64 swpal): no load or store moves across it, in the CPU or in V8's compiled code (an
// atomic is an effect that orders and invalidates the typed-array accesses around it), and
// unlike a call into the addon it compiles to one instruction. It is on every pop and notify.
const fenceCell = new Int32Array(new SharedArrayBuffer(4));

/** A full (sequentially consistent) memory fence, for ring indexes shared with the guest. */
export function memoryBarrier(): void {
  Atomics.exchange(fenceCell, 0, 0);
}

// x86 never reorders a load with an earlier load, nor a store with an earlier store (TSO):
// only a store followed by a load needs the fence there. Linux's virt_rmb()/virt_wmb() and
// QEMU's smp_rmb()/smp_wmb() are compiler barriers on x86 for that reason, and V8 keeps
// typed-array loads and stores in program order (each is an effect in its compiled code).
// Elsewhere (arm64) both are the full fence.
const TSO = process.arch === 'x64' || process.arch === 'ia32';
const inOrder = (): void => {};
/** Loads before it complete before loads after it (smp_rmb). */
export const readBarrier: () => void = TSO ? inOrder : memoryBarrier;
/** Stores before it are visible before stores after it (smp_wmb). */
export const writeBarrier: () => void = TSO ? inOrder : memoryBarrier;

/** The system page size in bytes. */
export function pageSize(): number {
  return PAGE_SIZE;
}

// ---- fd polling ----------------------------------------------------------------------------

export type PollEvents = 'r' | 'w' | 'rw';

const POLL_MASKS: Readonly<Record<PollEvents, number>> = {
  r: addon.POLL_READABLE,
  w: addon.POLL_WRITABLE,
  rw: addon.POLL_READABLE | addon.POLL_WRITABLE,
};

function pollMask(fn: string, events: unknown): number {
  if (typeof events !== 'string' || !Object.hasOwn(POLL_MASKS, events)) {
    throw argError(fn, "events must be 'r', 'w' or 'rw'", events);
  }
  return POLL_MASKS[events as PollEvents];
}

/**
 * Watches fd for readiness on the Node event loop (level-triggered: the callback repeats
 * while the condition holds). An error from the poll arrives as a NativeError with both
 * flags false. A poller keeps the loop alive (see unref) and itself from being collected
 * until stop(). stop() before closing the fd, and poll an fd with one poller at a time.
 */
export class FdPoller {
  readonly #poller: NativePoller;

  constructor(fd: number, events: PollEvents, callback: (err: Error | null, readable: boolean, writable: boolean) => void) {
    checkFd('FdPoller', fd);
    const mask = pollMask('FdPoller', events);
    if (typeof callback !== 'function') throw argError('FdPoller', 'callback must be a function', callback);
    this.#poller = new addon.FdPoller(fd, mask, callback);
  }

  /** Changes the watched events; throws once stopped. */
  setEvents(events: PollEvents): void {
    if (!this.#poller.setEvents(pollMask('FdPoller.setEvents', events))) {
      throw argError('FdPoller.setEvents', 'poller is stopped', events);
    }
  }

  /** Stops for good: no callback after this returns. Idempotent; leaves the fd open. */
  stop(): void {
    this.#poller.stop();
  }

  /** Keeps the event loop alive while polling (the default). */
  ref(): void {
    this.#poller.ref();
  }

  /** Lets the process exit even while polling. */
  unref(): void {
    this.#poller.unref();
  }
}

// ---- files ---------------------------------------------------------------------------------

/**
 * flock() on fd: shared or exclusive, waiting unless nonblocking. Returns false if
 * nonblocking and the lock is held through another open file description.
 */
export function flock(fd: number, exclusive: boolean, nonblocking: boolean): boolean {
  checkFd('flock', fd);
  checkBool('flock', 'exclusive', exclusive);
  checkBool('flock', 'nonblocking', nonblocking);
  return addon.flock(fd, exclusive, nonblocking);
}

export const FALLOC_FL_KEEP_SIZE: number = addon.FALLOC_FL_KEEP_SIZE;
export const FALLOC_FL_PUNCH_HOLE: number = addon.FALLOC_FL_PUNCH_HOLE;
/** linux/falloc.h: zero a range, keeping (or allocating) its space. A fixed ABI value. */
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** fallocate(2): mode 0 allocates; FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE frees a range. */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  checkFd('fallocate', fd);
  checkInt('fallocate', 'mode', mode, 0, 0x7fffffff);
  checkInt('fallocate', 'offset', offset, 0, MAX_SAFE);
  checkInt('fallocate', 'length', length, 1, MAX_SAFE);
  addon.fallocate(fd, mode, offset, length);
}

/** fallocate(2) on the libuv thread pool; rejects with a NativeError. */
export function fallocateAsync(fd: number, mode: number, offset: number, length: number): Promise<void> {
  checkFd('fallocateAsync', fd);
  checkInt('fallocateAsync', 'mode', mode, 0, 0x7fffffff);
  checkInt('fallocateAsync', 'offset', offset, 0, MAX_SAFE);
  checkInt('fallocateAsync', 'length', length, 1, MAX_SAFE);
  return new Promise((resolve, reject) => {
    addon.fallocateAsync(fd, mode, offset, length, (err) => (err ? reject(err) : resolve()));
  });
}

// ---- zoned block devices -------------------------------------------------------------------

/** Zone size in 512-byte sectors (BLKGETZONESZ); 0 for a block device that is not zoned. */
export function blkGetZoneSize(fd: number): number {
  checkFd('blkGetZoneSize', fd);
  return addon.blkGetZoneSize(fd);
}

/** Number of zones (BLKGETNRZONES). */
export function blkGetNrZones(fd: number): number {
  checkFd('blkGetNrZones', fd);
  return addon.blkGetNrZones(fd);
}

/** Size of struct blk_zone_report, the header at the start of a report buffer. */
export const BLK_ZONE_REPORT_HEADER_SIZE = 16;
/** Size of one struct blk_zone in a report buffer. */
export const BLK_ZONE_SIZE = 64;

/**
 * BLKREPORTZONE from sector: buf[0..16) is the struct blk_zone_report header (sector u64,
 * nr_zones u32, flags u32, filled in by the kernel), then up to
 * floor((buf.length - 16) / 64) struct blk_zone entries. Returns the zones reported.
 */
export function blkReportZones(fd: number, sector: number, buf: Uint8Array): number {
  checkFd('blkReportZones', fd);
  checkInt('blkReportZones', 'sector', sector, 0, MAX_SAFE);
  checkBytes('blkReportZones', 'buf', buf, BLK_ZONE_REPORT_HEADER_SIZE + BLK_ZONE_SIZE);
  return addon.blkReportZones(fd, sector, buf);
}

/** Zone management operations for blkZoneMgmt; the values are the ioctl request numbers. */
export const BLK_ZONE_OP: { readonly RESET: number; readonly OPEN: number; readonly CLOSE: number; readonly FINISH: number } =
  Object.freeze({ ...addon.BLK_ZONE_OP });

const ZONE_OPS: ReadonlySet<number> = new Set(Object.values(BLK_ZONE_OP));

/** BLKRESETZONE / BLKOPENZONE / BLKCLOSEZONE / BLKFINISHZONE over [sector, sector + nrSectors). */
export function blkZoneMgmt(fd: number, op: number, sector: number, nrSectors: number): void {
  checkFd('blkZoneMgmt', fd);
  if (!ZONE_OPS.has(op)) throw argError('blkZoneMgmt', 'op must be a BLK_ZONE_OP value', op);
  checkInt('blkZoneMgmt', 'sector', sector, 0, MAX_SAFE);
  checkInt('blkZoneMgmt', 'nrSectors', nrSectors, 0, MAX_SAFE);
  addon.blkZoneMgmt(fd, op, sector, nrSectors);
}

/**
 * blkReportZones on the libuv thread pool (a report of many zones on a real drive takes
 * long enough to stall the daemon's loop). Resolves the zones reported; rejects with a
 * NativeError. buf must not be read or written until the promise settles.
 */
export function blkReportZonesAsync(fd: number, sector: number, buf: Uint8Array): Promise<number> {
  checkFd('blkReportZonesAsync', fd);
  checkInt('blkReportZonesAsync', 'sector', sector, 0, MAX_SAFE);
  checkBytes('blkReportZonesAsync', 'buf', buf, BLK_ZONE_REPORT_HEADER_SIZE + BLK_ZONE_SIZE);
  return new Promise((resolve, reject) => {
    addon.blkReportZonesAsync(fd, sector, buf, (err, zones) => (err ? reject(err) : resolve(zones)));
  });
}

/** blkZoneMgmt on the libuv thread pool (a reset of many zones can take seconds on an SMR disk). */
export function blkZoneMgmtAsync(fd: number, op: number, sector: number, nrSectors: number): Promise<void> {
  checkFd('blkZoneMgmtAsync', fd);
  if (!ZONE_OPS.has(op)) throw argError('blkZoneMgmtAsync', 'op must be a BLK_ZONE_OP value', op);
  checkInt('blkZoneMgmtAsync', 'sector', sector, 0, MAX_SAFE);
  checkInt('blkZoneMgmtAsync', 'nrSectors', nrSectors, 0, MAX_SAFE);
  return new Promise((resolve, reject) => {
    addon.blkZoneMgmtAsync(fd, op, sector, nrSectors, (err) => (err ? reject(err) : resolve()));
  });
}

// ---- memory addresses ----------------------------------------------------------------------

/**
 * The start address of view's bytes modulo pageSize(). O_DIRECT I/O needs buffers aligned to
 * the device's DMA alignment, and JavaScript cannot see where an ArrayBuffer lives.
 */
export function pageOffsetOf(view: Uint8Array): number {
  if (!(view instanceof Uint8Array)) throw argError('pageOffsetOf', 'view must be a Uint8Array', view);
  return addon.pageOffsetOf(view);
}

// ---- synchronous wait ----------------------------------------------------------------------

/**
 * Blocks the calling thread until one of fds (at most 64) is readable or timeoutMs passes
 * (Infinity = no limit). Returns how many are readable; fds[i] becomes -1 where nothing was
 * ready. Only for a process that has nothing else to do meanwhile (the benchmark's load
 * generator): it stalls the event loop.
 */
export function pollFds(fds: Int32Array, timeoutMs: number): number {
  if (!(fds instanceof Int32Array) || fds.length > 64) throw argError('pollFds', 'fds must be an Int32Array of at most 64 fds', fds);
  for (const f of fds) checkFd('pollFds', f, 'fds[]');
  const t = timeoutMs === Infinity ? 0x7fffffff : timeoutMs;
  checkInt('pollFds', 'timeoutMs', t, 0, 0x7fffffff);
  return addon.pollFds(fds, t);
}

/**
 * preadv2(fd, views, offset, RWF_NOWAIT): reads on this thread only what needs no waiting
 * (data in the page cache). Returns the bytes read (possibly short: only part was cached),
 * or -errno: -EAGAIN when the read would have to wait, -EOPNOTSUPP where the file cannot say
 * (then use a path that may wait). Failures are returned, not thrown.
 */
export function preadNowait(fd: number, views: Uint8Array | readonly Uint8Array[], offset: number): number {
  // The hot path: only the cheap check; the addon re-checks types.
  if (!(offset >= 0 && offset <= MAX_SAFE)) throw argError('preadNowait', 'offset must be a non-negative integer', offset);
  return addon.preadNowait(fd, views, offset);
}

// ---- io_uring file I/O ---------------------------------------------------------------------

/**
 * Buffered file reads and writes through io_uring, for the JavaScript thread: queueBatch() fills
 * submission entries, submit() passes them all to the kernel in one system call (reads of
 * cached data are complete when it returns), reap() collects completions from shared memory
 * (no system call); submitAndReap() is both in one call. Completions signal `eventFd` (poll
 * it with FdPoller, clear it with readCounter, then reap) unless armEventFd(false) turned
 * that off. The caller picks tags in [0, capacity), keeps at most capacity operations in
 * flight, and keeps each buffer alive and mapped until its completion is reaped.
 */
export class IoRing {
  readonly #ring: NativeIoRing;
  /** Operations that may be in flight at once (the completion queue size). */
  readonly capacity: number;
  /** Signalled for every completion the kernel posts. */
  readonly eventFd: number;

  /** entries: a power of two in 1..4096. Throws NativeError when the kernel refuses io_uring. */
  constructor(entries: number) {
    checkInt('IoRing', 'entries', entries, 1, 4096);
    if ((entries & (entries - 1)) !== 0) throw argError('IoRing', 'entries must be a power of two', entries);
    this.#ring = new addon.IoRing(entries);
    this.capacity = this.#ring.capacity;
    this.eventFd = this.#ring.eventFd;
  }

  /**
   * Queues n reads or writes in one call: entry i is meta[4i..4i+3] = (write ? 1 : 0, fd,
   * offset, tag) with views[i] (a Uint8Array or an array of them), tag in [0, capacity).
   * Returns how many were queued, from the first: fewer than n when the submission queue
   * filled up (submit(), then queue the rest). The addon checks every entry; a bad one
   * throws, and the entries before it stay queued.
   */
  queueBatch(n: number, meta: Float64Array, views: ReadonlyArray<Uint8Array | readonly Uint8Array[] | null>): number {
    return this.#ring.queueBatch(n, meta, views);
  }

  /** Hands every queued entry to the kernel; returns how many it took. */
  submit(): number {
    return this.#ring.submit();
  }

  /** Copies completions into out as (tag, result) pairs; result is bytes or -errno. Returns the pairs. */
  reap(out: Float64Array): number {
    return this.#ring.reap(out);
  }

  /**
   * With eventFd signals turned off, submit(), then reap(out): one system call and one call
   * into the addon per batch. Turn signals on (armEventFd) when requests stay in flight.
   */
  submitAndReap(out: Float64Array): number {
    return this.#ring.submitAndReap(out);
  }

  /**
   * Turns completion signals on `eventFd` on or off (on at first). Returns true when
   * completions are waiting: one posted while signals were off signalled nothing, so reap
   * after turning them on when this says so.
   */
  armEventFd(on: boolean): boolean {
    return this.#ring.armEventFd(on);
  }

  /** Releases the ring (the kernel cancels what it still holds). Idempotent. */
  close(): void {
    this.#ring.close();
  }
}
