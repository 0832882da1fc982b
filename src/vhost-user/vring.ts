// One virtqueue as the front-end configures it (spec §5.4), with one owner for all of it: size,
// addresses, base, the kick/call/err fds, the two independent switches started/stopped and
// enabled/disabled, and the split ring over guest memory (virtio/) that serves it. The ring
// signals the guest through this object, so the call fd exists in one place only.
import type { Logger } from 'pino';
import type { BusyPoll, PollSource } from '../busy-poll.js';
import { ZbdError } from '../errors.js';
import { closeFd, FdPoller, readCounter, writeCounter } from '../native/index.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { GuestMemory } from '../virtio/guest-memory.js';
import { SplitRing, type CallSignal, type InflightLog, type SplitRingAddrs } from '../virtio/split-ring.js';

const DRAIN_WARN_MS = 5000;

export interface VringOptions {
  index: number;
  log: Logger;
  device: VirtioDevice;
  memory: GuestMemory;
  maxChainBytes?: number;
  /** Busy polling shared by the thread's queues (none: served from kicks only). */
  poll?: BusyPoll;
}

function queueErr(index: number, what: string, value: unknown): ZbdError {
  return new ZbdError('EPROTO', `queue ${index}: ${what}`, value);
}

export class Vring implements CallSignal, PollSource {
  readonly index: number;
  readonly log: Logger;
  private readonly device: VirtioDevice;
  private readonly memory: GuestMemory;
  private readonly maxChainBytes: number | undefined;
  private readonly poll: BusyPoll | undefined;
  /** SET_VRING_NUM (0 = not set). */
  private num = 0;
  private addrs: SplitRingAddrs | null = null;
  /** Next avail index to use when the ring starts (SET_VRING_BASE, or where it stopped). */
  private nextBase = 0;
  private kickFd = -1;
  private callFd = -1;
  private errFd = -1;
  private kickPoller: FdPoller | null = null;
  /** Started by SET_VRING_KICK, stopped by GET_VRING_BASE / reset / disconnect. */
  private started = false;
  /** SET_VRING_ENABLE, or all enabled by SET_FEATURES without bit 30. */
  private enabled = false;
  private eventIdx = false;
  private splitRing: SplitRing | null = null;
  /** This queue's part of the inflight region (SET_INFLIGHT_FD), used from the next start. */
  private inflight: InflightLog | null = null;

  constructor(opts: VringOptions) {
    this.index = opts.index;
    this.log = opts.log;
    this.device = opts.device;
    this.memory = opts.memory;
    this.maxChainBytes = opts.maxChainBytes;
    this.poll = opts.poll;
  }

  /** The split ring (null until the first start). */
  get ring(): SplitRing | null { return this.splitRing; }
  get isStarted(): boolean { return this.started; }
  /** Where the ring continues from (valid while stopped). */
  get base(): number { return this.nextBase; }
  get inFlight(): number { return this.splitRing?.inFlight ?? 0; }

  setNum(num: number): void {
    if (this.started) throw queueErr(this.index, 'is running', num);
    if (num > this.device.maxQueueSize) {
      throw queueErr(this.index, `size ${num} exceeds the device's maximum ${this.device.maxQueueSize}`, num);
    }
    if (this.splitRing && this.splitRing.size !== num) this.splitRing = null;
    this.num = num;
  }

  setAddrs(addrs: SplitRingAddrs): void {
    this.addrs = addrs;
    if (this.started) this.remap();
  }

  setBase(base: number): void {
    if (this.started) throw queueErr(this.index, 'is running', base);
    this.nextBase = base;
  }

  /** SET_INFLIGHT_FD (null: none). Takes effect at the next start, as the front-end sends it before. */
  setInflight(log: InflightLog | null): void {
    this.inflight = log;
    if (this.splitRing && !this.started) this.splitRing.inflight = log;
  }

  setEventIdx(on: boolean): void {
    this.eventIdx = on;
    if (this.splitRing) this.splitRing.eventIdx = on;
  }

  /**
   * SET_VRING_KICK: checks the ring is configured and its memory mapped (throwing before it
   * takes `fd`, so a refused message changes nothing), then polls the fd and starts the ring.
   */
  setKick(fd: number): void {
    if (!this.started) {
      this.prepare();
      // Recovery from an inflight region may refuse a corrupt one: still before the fd is taken.
      this.splitRing!.start(this.nextBase);
      this.started = true;
      this.log.debug({ size: this.num, base: this.nextBase }, 'ring started');
    }
    this.clearKick();
    this.kickFd = fd;
    this.kickPoller = new FdPoller(fd, 'r', (err) => {
      if (err) {
        this.log.error({ err: String(err) }, 'kick fd poll error; kicks ignored until a new SET_VRING_KICK');
        this.clearKick();
        return;
      }
      // Reading clears the eventfd counter (or consumes 8 bytes from a socket) so the
      // level-triggered poll does not fire again for the same kick.
      if (readCounterSafe(fd) < 0) {
        this.log.warn('kick fd reached EOF; kicks ignored until a new SET_VRING_KICK');
        this.clearKick();
        return;
      }
      if (this.poll) this.poll.woke(this);
      else this.kickIfRunnable();
    });
    this.poll?.add(this);
    // Guests may have queued requests before the kick fd existed (and resubmitted ones wait):
    // look once now.
    this.kickIfRunnable();
  }

  /** SET_VRING_CALL (-1: none). */
  setCall(fd: number): void {
    if (this.callFd >= 0) closeFd(this.callFd);
    this.callFd = fd;
  }

  /** SET_VRING_ERR (-1: none). */
  setErr(fd: number): void {
    if (this.errFd >= 0) closeFd(this.errFd);
    this.errFd = fd;
  }

  setEnabled(on: boolean): void {
    this.enabled = on;
    this.kickIfRunnable();
  }

  // PollSource: the avail ring looked at between kicks.
  ready(): boolean { return this.splitRing !== null && this.splitRing.hasAvail(); }
  run(): void { this.kickIfRunnable(); }
  busy(): boolean { return this.splitRing !== null && this.splitRing.inFlight > 0; }
  mute(on: boolean): boolean { return this.splitRing !== null && this.splitRing.muteKicks(on); }

  /** CallSignal for the split ring: one write to the call fd. */
  signal(): boolean {
    if (this.callFd < 0) return false;
    try {
      writeCounter(this.callFd, 1);
      return true;
    } catch (err) {
      // A front-end that closed its end of a socketpair call fd is going away; the
      // disconnect path cleans up. Never let it escape into device code.
      this.log.warn({ err }, 'call fd write failed');
      return false;
    }
  }

  /** Creates/attaches the split ring for a start; throws if the front-end left it unconfigured. */
  private prepare(): void {
    if (this.num === 0) throw queueErr(this.index, 'has no size (SET_VRING_NUM missing)', this.index);
    if (!this.addrs) throw queueErr(this.index, 'has no addresses (SET_VRING_ADDR missing)', this.index);
    if (!this.splitRing || this.splitRing.size !== this.num) {
      this.splitRing = new SplitRing({
        index: this.index, size: this.num, log: this.log, maxChainBytes: this.maxChainBytes, call: this,
        onBroken: () => this.signalErr(),
      });
    }
    const err = this.splitRing.attach(this.memory, this.addrs);
    if (err) throw queueErr(this.index, err, this.addrs);
    this.splitRing.eventIdx = this.eventIdx;
    this.splitRing.inflight = this.inflight;
  }

  /** Re-resolves a running ring's addresses (memory table or addresses changed). */
  remap(): void {
    if (!this.started || !this.splitRing || !this.addrs) return;
    const err = this.splitRing.attach(this.memory, this.addrs);
    if (err) {
      this.log.error({ reason: err }, 'ring memory no longer mapped; queue stopped');
      this.splitRing.broken = err;
      this.signalErr();
    }
  }

  private signalErr(): void {
    if (this.errFd < 0) return;
    try { writeCounter(this.errFd, 1); } catch (err) { this.log.warn({ err: String(err) }, 'err fd write failed'); }
  }

  /** Lets the device drain the ring if it may be popped (started, enabled, not broken). */
  private kickIfRunnable(): void {
    const r = this.splitRing;
    if (!r) return;
    r.active = this.started && this.enabled;
    if (!r.active || r.broken !== null) return;
    try {
      this.device.queueKicked(r);
    } catch (err) {
      this.log.error({ err }, 'device failed while handling a kick');
    }
  }

  private clearKick(): void {
    this.poll?.remove(this);
    this.kickPoller?.stop();
    this.kickPoller = null;
    if (this.kickFd >= 0) closeFd(this.kickFd);
    this.kickFd = -1;
  }

  /**
   * Stops the ring: no more pops, wait for the device to push everything in flight, publish
   * the used index. Afterwards the ring memory is not touched until the next start.
   */
  async stop(): Promise<void> {
    const wasStarted = this.started;
    this.started = false;
    this.clearKick();
    const r = this.splitRing;
    if (!r) return;
    r.active = false;
    if (!wasStarted && r.inFlight === 0) return;
    // Memory cannot be unmapped under in-flight I/O, so this waits as long as the backend
    // takes; say so if that is unusually long.
    const t0 = Date.now();
    const slow = setInterval(() => {
      this.log.warn({ inFlight: r.inFlight, waitedMs: Date.now() - t0 }, 'still waiting for in-flight requests');
    }, DRAIN_WARN_MS);
    slow.unref();
    try {
      await this.device.drainQueue(this.index);
    } catch (err) {
      this.log.error({ err }, 'device drain failed');
    } finally {
      clearInterval(slow);
    }
    if (r.inFlight > 0) this.log.warn({ inFlight: r.inFlight }, 'device drained with requests still in flight');
    r.flush();
    this.nextBase = r.lastAvailIdx;
    if (wasStarted) this.log.debug({ base: this.nextBase }, 'ring stopped');
  }

  /** Resolves when nothing popped from this ring is still in flight. */
  whenIdle(): Promise<void> {
    return this.splitRing?.whenIdle() ?? Promise.resolve();
  }

  /** Closes every fd; the ring forgets its memory (about to be unmapped). */
  dispose(): void {
    this.clearKick();
    this.setCall(-1);
    this.setErr(-1);
    this.started = false;
    if (this.splitRing) {
      this.splitRing.active = false;
      this.splitRing.detach();
    }
  }

  /** RESET_DEVICE / RESET_OWNER after stop(): fds closed and configuration forgotten. */
  reset(): void {
    this.dispose();
    this.splitRing = null;
    this.num = 0;
    this.addrs = null;
    this.nextBase = 0;
    this.enabled = false;
    this.eventIdx = false;
    this.inflight = null;
  }
}

function readCounterSafe(fd: number): number {
  try {
    return readCounter(fd);
  } catch {
    return -1;
  }
}
