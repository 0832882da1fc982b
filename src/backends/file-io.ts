// Buffered file reads and writes for the file backends, through one of two engines:
//
// - io_uring (default when the kernel allows it): requests queued while the daemon handles a
//   kick are submitted together in one system call at the end of that turn (a microtask),
//   and what completed inside that call (cached reads: no thread hand-off at all) is read
//   from the completion queue in the same call into the addon. The ring's eventfd is on only
//   while requests stay in flight after a batch: what the kernel finishes later wakes us
//   through it, and a batch that completes inline costs no eventfd signal, read or wake-up.
//   A batch of one read (QD1) skips the ring when its data is cached: preadv2(RWF_NOWAIT)
//   does it in one plain system call, about 1 µs sooner; what would wait goes to the ring.
// - the libuv thread pool (fs.readv / fs.writev): the fallback where io_uring is refused
//   (old kernel, seccomp, io_uring_disabled), or forced with VHOST_USER_ZBD_IO=threads.
//
// Both call back with (err, bytes) as preadv does; callers move whole requests through
// transferAll (transfer-all.ts), which holds the one rule for short counts.
import fs from 'node:fs';
import { FdPoller, IoRing, NativeError, preadNowait, readCounter } from '../native/index.js';
import { runSoon } from '../run-soon.js';
import type { IoVec } from '../iovec.js';
import { ERRNO } from './host-errno.js';

export type IoCallback = (err: Error | null, bytes: number) => void;

/** The fds are of files opened without O_DIRECT (DirectIo moves those): a read whose data is cached may run on the calling thread. */
export interface FileIo {
  readonly kind: 'io_uring' | 'threads' | 'sync';
  /** preadv(fd, iov, pos); the views must stay valid until cb runs (which may be before this returns). */
  read(fd: number, iov: IoVec, pos: number, cb: IoCallback): void;
  /** pwritev(fd, iov, pos). */
  write(fd: number, iov: IoVec, pos: number, cb: IoCallback): void;
  /**
   * Start what was queued since the last flush now, and run the callbacks of what completed
   * meanwhile. Without it that happens at the end of the current turn (a microtask); a caller
   * that knows its batch is complete (a kick's requests all popped) calls it to finish the
   * batch in one pass.
   */
  flush(): void;
}

/** Most views one preadv/pwritev takes (Linux IOV_MAX). */
const IOV_MAX = 1024;

interface SyncOp { write: boolean; fd: number; iov: IoVec; pos: number; len: number; cb: IoCallback }

/**
 * preadv/pwritev on the calling thread, for files on memory-backed filesystems (tmpfs,
 * ramfs). Their reads and writes never wait for a device: the copy is the whole job, and
 * handing it to another thread (thread pool, or io-wq, since tmpfs cannot do non-blocking
 * reads) costs more than the copy itself. Writes to one file are serialised by the kernel's
 * inode lock anyway, so no parallelism is lost.
 *
 * Requests of one turn (a kick's worth) run together at its end: requests that continue
 * each other exactly (an append stream's neighbours in a zone, a sequential writer) become
 * one system call. Requests are only reordered to do so when none of them overlaps another;
 * callbacks run in request order.
 */
class SyncFileIo implements FileIo {
  readonly kind = 'sync' as const;
  private ops: SyncOp[] = [];
  private scheduled = false;
  private readonly flushFn = (): void => this.flush();

  read(fd: number, iov: IoVec, pos: number, cb: IoCallback): void { this.add(false, fd, iov, pos, cb); }
  write(fd: number, iov: IoVec, pos: number, cb: IoCallback): void { this.add(true, fd, iov, pos, cb); }

  private add(write: boolean, fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    let len = 0;
    for (let i = 0; i < iov.length; i++) len += iov[i].byteLength;
    this.ops.push({ write, fd, iov, pos, len, cb });
    if (!this.scheduled) {
      this.scheduled = true;
      runSoon(this.flushFn);
    }
  }

  flush(): void {
    this.scheduled = false;
    const ops = this.ops;
    if (ops.length === 0) return;
    this.ops = [];
    const done = new Array<number>(ops.length);
    const errs: Array<Error | null> = new Array<Error | null>(ops.length).fill(null);
    const order = ops.length > 1 ? mergeOrder(ops) : [0];
    for (let i = 0; i < order.length;) {
      // A run: ops that start exactly where the previous one ended, same file and direction.
      const a = ops[order[i]];
      let j = i + 1, end = a.pos + a.len, views = a.iov.length;
      while (j < order.length) {
        const b = ops[order[j]];
        if (b.fd !== a.fd || b.write !== a.write || b.pos !== end || views + b.iov.length > IOV_MAX) break;
        end += b.len;
        views += b.iov.length;
        j++;
      }
      let iov: IoVec = a.iov;
      if (j > i + 1) {
        const all: Uint8Array[] = [];
        for (let k = i; k < j; k++) { const v = ops[order[k]].iov; for (let m = 0; m < v.length; m++) all.push(v[m]); }
        iov = all;
      }
      let n = 0;
      let err: Error | null = null;
      try {
        n = a.write ? fs.writevSync(a.fd, iov as Uint8Array[], a.pos) : fs.readvSync(a.fd, iov as Uint8Array[], a.pos);
      } catch (e) {
        err = e as Error;
      }
      // A short transfer ends inside one request: those before it are whole, those after it got nothing.
      for (let k = i; k < j; k++) {
        const op = order[k];
        errs[op] = err;
        const mine = Math.min(Math.max(n, 0), ops[op].len);
        done[op] = mine;
        n -= mine;
      }
      i = j;
    }
    for (let k = 0; k < ops.length; k++) ops[k].cb(errs[k], errs[k] ? 0 : done[k]);
  }
}

/**
 * The order to run ops in: by file and position when no two of them overlap (then no order
 * between them is observable), else as they came.
 */
function mergeOrder(ops: readonly SyncOp[]): number[] {
  const idx = ops.map((_, i) => i);
  const sorted = [...idx].sort((x, y) => (ops[x].fd - ops[y].fd) || (ops[x].pos - ops[y].pos) || (x - y));
  for (let k = 1; k < sorted.length; k++) {
    const p = ops[sorted[k - 1]], q = ops[sorted[k]];
    if (p.fd === q.fd && q.pos < p.pos + p.len) return idx;
  }
  return sorted;
}

class ThreadPoolFileIo implements FileIo {
  readonly kind = 'threads' as const;
  read(fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    fs.readv(fd, iov as Uint8Array[], pos, (err, n) => cb(err, n));
  }
  write(fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    fs.writev(fd, iov as Uint8Array[], pos, (err, n) => cb(err, n));
  }
  /** The pool starts every request at once: nothing is held back. */
  flush(): void { /* nothing queued */ }
}

/** Ring size: requests in flight at once; more wait in a FIFO until a completion frees a slot. */
const RING_ENTRIES = 512;

interface Waiting { write: boolean; fd: number; iov: IoVec; pos: number; cb: IoCallback }

/** The addon's form of a request's buffers: one view as itself (a plain read or write), several as a list. */
function ringViews(iov: IoVec): Uint8Array | IoVec { return iov.length === 1 ? iov[0] : iov; }

class UringFileIo implements FileIo {
  readonly kind = 'io_uring' as const;
  private readonly ring: IoRing;
  private readonly cbs: Array<IoCallback | null>;
  /** Buffers of each in-flight request: referenced until the kernel is done with them. */
  private readonly bufs: Array<IoVec | null>;
  private readonly writes: Uint8Array;
  private readonly freeTags: number[] = [];
  private readonly waiting: Waiting[] = [];
  private readonly out: Float64Array;
  private readonly poller: FdPoller;
  private inFlight = 0;
  /** The eventfd poller keeps the loop alive (requests in flight after a reap). */
  private pollerRef = false;
  /** Entries staged since the last flush: (write, fd, pos, tag) × staged in stageMeta, views in stageViews. */
  private staged = 0;
  private readonly stageMeta: Float64Array;
  private readonly stageViews: Array<Uint8Array | IoVec | null>;
  /** A batch's first read, not yet queued (see read): its callback, or null when none is held. */
  private heldCb: IoCallback | null = null;
  private heldIov: IoVec | null = null;
  private heldFd = -1;
  private heldPos = 0;
  /** preadv2(RWF_NOWAIT) works here (cleared on EOPNOTSUPP). */
  private nowaitReads = true;
  private flushScheduled = false;
  private readonly flushFn = (): void => this.flush();

  constructor() {
    this.ring = new IoRing(RING_ENTRIES);
    const cap = this.ring.capacity;
    this.cbs = new Array<IoCallback | null>(cap).fill(null);
    this.bufs = new Array<IoVec | null>(cap).fill(null);
    this.writes = new Uint8Array(cap);
    for (let t = cap - 1; t >= 0; t--) this.freeTags.push(t);
    this.out = new Float64Array(2 * cap);
    this.stageMeta = new Float64Array(4 * cap);
    this.stageViews = new Array<Uint8Array | IoVec | null>(cap).fill(null);
    this.poller = new FdPoller(this.ring.eventFd, 'r', (err) => {
      if (err) throw err; // an eventfd poll error is a bug: surface it
      readCounter(this.ring.eventFd);
      this.reap(this.ring.reap(this.out));
    });
    // Only requests in flight keep the process alive (see start/finish).
    this.poller.unref();

  }

  read(fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    if (this.heldCb === null && this.staged === 0 && this.nowaitReads) {
      // The first request of a batch, held back: if it stays alone, flush tries it on this thread.
      this.heldFd = fd;
      this.heldIov = iov;
      this.heldPos = pos;
      this.heldCb = cb;
      this.flushSoon();
      return;
    }
    this.start(false, fd, iov, pos, cb);
  }

  write(fd: number, iov: IoVec, pos: number, cb: IoCallback): void { this.start(true, fd, iov, pos, cb); }

  private start(write: boolean, fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    if (this.heldCb !== null) this.queueHeld();
    this.enqueue(write, fd, iov, pos, cb);
    this.flushSoon();
  }

  /** Everything queued in this turn (one kick's worth of requests) goes in one submit. */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    runSoon(this.flushFn);
  }

  private queueHeld(): void {
    const cb = this.heldCb as IoCallback, iov = this.heldIov as IoVec;
    this.heldCb = null;
    this.heldIov = null;
    this.enqueue(false, this.heldFd, iov, this.heldPos, cb);
  }

  /** Staged for the next flush, or into the FIFO when every tag is taken. */
  private enqueue(write: boolean, fd: number, iov: IoVec, pos: number, cb: IoCallback): void {
    const tag = this.freeTags.pop();
    if (tag === undefined) { this.waiting.push({ write, fd, iov, pos, cb }); return; }
    const k = this.staged++;
    const m = this.stageMeta;
    m[4 * k] = write ? 1 : 0;
    m[4 * k + 1] = fd;
    m[4 * k + 2] = pos;
    m[4 * k + 3] = tag;
    this.stageViews[k] = ringViews(iov);
    this.cbs[tag] = cb;
    this.bufs[tag] = iov;
    this.writes[tag] = write ? 1 : 0;
    this.inFlight++;
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.heldCb !== null && this.readHeldNow()) return;
    if (this.staged === 0) return;
    this.queueStaged();
    this.reap(this.ring.submitAndReap(this.out));
  }

  /**
   * The staged entries into the submission queue, in one call. The queue has as many entries
   * as there are tags, so it can only be short of room while entries of an earlier batch
   * wait there (the kernel took fewer than offered): submit them and queue again; what still
   * finds no room waits in the FIFO.
   */
  private queueStaged(): void {
    const n = this.staged, views = this.stageViews;
    this.staged = 0;
    const placed = this.ring.queueBatch(n, this.stageMeta, views);
    if (placed < n) {
      this.ring.submit();
      const m = this.stageMeta;
      m.copyWithin(0, 4 * placed, 4 * n);
      for (let i = placed; i < n; i++) views[i - placed] = views[i];
      const rest = n - placed;
      const more = this.ring.queueBatch(rest, m, views);
      for (let i = more; i < rest; i++) {
        const tag = m[4 * i + 3];
        this.waiting.push({ write: m[4 * i] === 1, fd: m[4 * i + 1], iov: this.bufs[tag] as IoVec, pos: m[4 * i + 2], cb: this.cbs[tag] as IoCallback });
        this.cbs[tag] = null;
        this.bufs[tag] = null;
        this.freeTags.push(tag);
        this.inFlight--;
      }
    }
    // The kernel holds them now (bufs keeps each alive until its completion).
    for (let i = 0; i < n; i++) views[i] = null;
  }

  /**
   * The batch is one read: preadv2(RWF_NOWAIT) reads it right here when its data is cached,
   * one system call and one call into the addon where the ring takes a submission, a
   * completion and two. True when it is done (its callback ran); false when it went into the
   * submission queue (it would wait for the disk, or the file cannot tell).
   */
  private readHeldNow(): boolean {
    const cb = this.heldCb as IoCallback, iov = this.heldIov as IoVec, fd = this.heldFd, pos = this.heldPos;
    this.heldCb = null;
    this.heldIov = null;
    const r = preadNowait(fd, ringViews(iov), pos);
    if (r >= 0) { cb(null, r); return true; }
    if (r !== -ERRNO.EAGAIN) {
      if (r !== -ERRNO.EOPNOTSUPP && r !== -ERRNO.EINVAL) { cb(new NativeError('preadv2', -r, `fd=${fd}, pos=${pos}, RWF_NOWAIT`), 0); return true; }
      // This file (or kernel) cannot read without waiting: the ring from now on.
      this.nowaitReads = false;
    }
    this.enqueue(false, fd, iov, pos, cb);
    return false;
  }

  /** Completes the n completions in `out`, then reaps until the queue is empty. */
  private reap(first: number): void {
    const out = this.out;
    for (let n = first; ; n = this.ring.reap(out)) {
      for (let i = 0; i < n; i++) {
        const tag = out[2 * i], res = out[2 * i + 1];
        const cb = this.cbs[tag] as IoCallback;
        const write = this.writes[tag] === 1;
        this.cbs[tag] = null;
        this.bufs[tag] = null;
        this.freeTags.push(tag);
        this.inFlight--;
        if (res < 0) cb(new NativeError(write ? 'pwritev' : 'preadv', -res, `io_uring tag=${tag}`), 0);
        else cb(null, res);
      }
      // Drained. Requests left in flight need the eventfd to say when they finish; signals
      // were off since the submit, so one posted in between signalled nothing: look again.
      if (n < out.length / 2 && (this.inFlight === 0 || !this.ring.armEventFd(true))) break;
    }
    // Only requests left in the kernel's hands keep the process alive (the queued ones are
    // submitted by a microtask); a batch completed inside its submit changes nothing here.
    if ((this.inFlight > 0) !== this.pollerRef) {
      this.pollerRef = this.inFlight > 0;
      if (this.pollerRef) this.poller.ref(); else this.poller.unref();
    }
    while (this.waiting.length > 0 && this.freeTags.length > 0) {
      const w = this.waiting.shift() as Waiting;
      this.start(w.write, w.fd, w.iov, w.pos, w.cb);
    }
  }
}

// One engine of each kind per process: all files share the ring and its eventfd poller.
let sharedSync: FileIo | null = null;
let sharedUring: FileIo | null = null;
let sharedThreads: FileIo | null = null;
let uringRefused = false;

/** statfs f_type of filesystems that keep file data in memory only. */
const MEMORY_FS_TYPES = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

export type FileIoKind = FileIo['kind'];

/**
 * The engine for the regular file at `path` (null: a block device): synchronous for
 * memory-backed filesystems, otherwise io_uring when the kernel grants a ring, else the
 * thread pool. VHOST_USER_ZBD_IO=sync|io_uring|threads overrides the choice (io_uring still
 * falls back to threads).
 */
export function fileIoFor(path: string | null): FileIo {
  const forced = process.env.VHOST_USER_ZBD_IO;
  let kind: string | undefined = forced;
  if (kind !== 'sync' && kind !== 'io_uring' && kind !== 'threads') {
    let type = 0;
    try { if (path !== null) type = Number(fs.statfsSync(path).type); } catch { /* unknown filesystem: asynchronous I/O */ }
    kind = MEMORY_FS_TYPES.has(type) ? 'sync' : 'io_uring';
  }
  if (kind === 'sync') return (sharedSync ??= new SyncFileIo());
  if (kind === 'io_uring' && !uringRefused) {
    try {
      return (sharedUring ??= new UringFileIo());
    } catch {
      // io_uring refused (ENOSYS, EPERM under seccomp, io_uring_disabled): use the thread pool.
      uringRefused = true;
    }
  }
  return (sharedThreads ??= new ThreadPoolFileIo());
}
