// One front-end session: turns vhost-user requests into ring setup and VirtioDevice calls
// (spec §5.2-5.6). Messages are handled strictly in order; the few asynchronous ones
// (GET_VRING_BASE, RESET_DEVICE, RESET_OWNER wait for in-flight requests) hold the queue.
// A bad message is logged once, answered with a failure if the front-end asked for a reply,
// and never ends the session: only a hang-up or lost framing does.
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { closeFd, sendMsg, writeCounter } from '../native/index.js';
import type { VirtioDevice } from '../virtio/device.js';
import { SplitRing } from '../virtio/split-ring.js';
import { MessageChannel } from './channel.js';
import { MappedRegion, MemoryTable, type MemoryTableOptions } from './memory-table.js';
import {
  BackendReq, decodeConfig, decodeMemRegionMsg, decodeMemTable, decodeU64, decodeVringAddr, decodeVringState,
  encodeConfig, encodeMessage, encodeU64, encodeVringState, expectNoFds, expectSize, F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY, ProtocolFeature, REPLY_FLAGS, Req, requestName, VERSION, VERSION_MASK, VRING_ADDR_F_LOG,
  VRING_IDX_MASK, VRING_NOFD, type MemRegionDesc, type VhostUserMessage,
} from './messages.js';
import { Vring } from './vring.js';

const bit = (n: number): bigint => 1n << BigInt(n);

/** Exactly what this back-end implements (QEMU acks any offered bit, so never offer more). */
export const OFFERED_PROTOCOL_FEATURES =
  bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) |
  bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  // UML 6.12 allocates its device interrupt only when BACKEND_REQ is negotiated; without it
  // the vring call interrupt collides with the timer and virtio_blk fails to probe (-EBUSY).
  bit(ProtocolFeature.BACKEND_REQ);

const VIRTIO_RING_F_EVENT_IDX = 29n;

/** Requests whose reply is their own payload (REPLY_ACK never applies to them). */
const OWN_REPLY = new Set<number>([
  Req.GET_FEATURES, Req.GET_PROTOCOL_FEATURES, Req.GET_VRING_BASE, Req.GET_CONFIG, Req.GET_QUEUE_NUM,
  Req.GET_MAX_MEM_SLOTS, Req.GET_INFLIGHT_FD, Req.GET_STATUS, Req.IOTLB_MSG, Req.CHECK_DEVICE_STATE,
  Req.SET_DEVICE_STATE_FD, Req.GET_SHARED_OBJECT, Req.POSTCOPY_ADVISE,
]);

const EMPTY = new Uint8Array(0);
const DRAIN_WARN_MS = 5000;

export interface ConnectionOptions {
  fd: number;
  id: number;
  device: VirtioDevice;
  log: Logger;
  memory?: MemoryTableOptions;
  maxChainBytes?: number;
  /** Called once after teardown finished (rings drained, memory unmapped, device reset). */
  onClosed?: (conn: FrontendConnection, reason: string) => void;
}

function protoErr(msg: VhostUserMessage, what: string, value: unknown): ZbdError {
  return new ZbdError('EPROTO', `${requestName(msg.request)}: ${what}`, value);
}

export class FrontendConnection {
  readonly id: number;
  readonly log: Logger;
  readonly device: VirtioDevice;
  readonly memory: MemoryTable;
  readonly vrings: Vring[];
  private readonly channel: MessageChannel;
  private readonly maxChainBytes: number | undefined;
  private readonly onClosed?: (conn: FrontendConnection, reason: string) => void;
  private readonly queue: VhostUserMessage[] = [];
  private pumping = false;
  private closing = false;
  private closedPromise: Promise<void> | null = null;
  /** Regions replaced or removed while requests may still hold views into them. */
  private retired = new Set<MappedRegion>();
  private offeredFeatures: bigint;
  private ackedFeatures = 0n;
  private protocolFeatures = 0n;
  /** Back-end request channel from SET_BACKEND_REQ_FD (-1 if none). */
  private backendReqFd = -1;
  private owner = false;
  /** Messages handled (for tests and debug logs). */
  messagesHandled = 0;

  constructor(opts: ConnectionOptions) {
    this.id = opts.id;
    this.device = opts.device;
    this.log = opts.log;
    this.maxChainBytes = opts.maxChainBytes;
    this.onClosed = opts.onClosed;
    this.memory = new MemoryTable(opts.memory);
    this.offeredFeatures = opts.device.deviceFeatures | F_PROTOCOL_FEATURES;
    this.vrings = [];
    for (let q = 0; q < opts.device.numQueues; q++) this.vrings.push(new Vring(q, this.log.child({ queue: q })));
    this.channel = new MessageChannel(opts.fd, {
      onMessage: (m) => this.enqueue(m),
      onClose: (reason) => {
        this.close(reason).catch((err: unknown) => this.log.error({ err }, 'session teardown failed'));
      },
    }, this.log);
  }

  get closed(): boolean { return this.closing; }
  get negotiatedFeatures(): bigint { return this.ackedFeatures; }
  get negotiatedProtocolFeatures(): bigint { return this.protocolFeatures; }

  private hasProtocol(f: number): boolean { return (this.protocolFeatures & bit(f)) !== 0n; }

  /**
   * Tells the front-end that config space changed (BACKEND_REQ channel, CONFIG_CHANGE_MSG).
   * No reply is requested, so nothing has to be read back. Returns false when there is no
   * channel or the message could not be sent whole.
   */
  notifyConfigChanged(): boolean {
    if (this.closing || this.backendReqFd < 0) return false;
    try {
      const msg = encodeMessage(BackendReq.CONFIG_CHANGE_MSG, VERSION);
      return sendMsg(this.backendReqFd, msg) === msg.length;
    } catch (err) {
      this.log.warn({ err: String(err) }, 'config change notification failed');
      return false;
    }
  }

  // --- message queue ---------------------------------------------------------------------------

  private enqueue(m: VhostUserMessage): void {
    if (this.closing) { closeAll(m.fds); return; }
    this.queue.push(m);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closing) {
        const m = this.queue.shift()!;
        try {
          const r = this.process(m);
          // Only asynchronous handlers cost a microtask turn; the rest stay synchronous.
          if (r !== undefined) await r;
        } catch (err) {
          // Only a bug can get here (handlers' errors become replies); keep serving.
          this.log.error({ err, req: requestName(m.request) }, 'internal error while handling a message');
        }
      }
    } finally {
      this.pumping = false;
      if (this.closing) for (const m of this.queue.splice(0)) closeAll(m.fds);
    }
  }

  private process(m: VhostUserMessage): Promise<void> | undefined {
    this.messagesHandled++;
    this.log.debug({ req: requestName(m.request), size: m.payload.length, fds: m.fds.length, flags: m.flags }, 'message');
    let result: Uint8Array | null | Promise<Uint8Array | null>;
    try {
      if ((m.flags & VERSION_MASK) !== VERSION) throw protoErr(m, `header version ${m.flags & VERSION_MASK} != 1`, m.flags);
      result = this.dispatch(m);
    } catch (err) {
      this.finish(m, err);
      return undefined;
    }
    if (result instanceof Promise) {
      return result.then((r) => this.finish(m, null, r), (err) => this.finish(m, err));
    }
    this.finish(m, null, result);
    return undefined;
  }

  /** Sends the reply (own payload, REPLY_ACK, or failure) and closes fds nobody took. */
  private finish(m: VhostUserMessage, err: unknown, reply: Uint8Array | null = null): void {
    closeAll(m.fds);
    const own = OWN_REPLY.has(m.request);
    const ack = (m.flags & FLAG_NEED_REPLY) !== 0 && this.hasProtocol(ProtocolFeature.REPLY_ACK);
    if (err) {
      const e = err as Error & { code?: string };
      this.log.error({ req: requestName(m.request), code: e.code, size: m.payload.length, fds: m.fds.length },
        `message rejected: ${e.message}`);
      // A request that always has a reply gets an empty one so the front-end fails instead of waiting.
      if (own) this.reply(m.request, EMPTY);
      else if (ack) this.reply(m.request, encodeU64(1));
      return;
    }
    if (own) this.reply(m.request, reply ?? EMPTY);
    else if (ack) this.reply(m.request, encodeU64(0));
  }

  private reply(request: number, payload: Uint8Array): void {
    if (this.closing) return;
    this.channel.send(encodeMessage(request, REPLY_FLAGS, payload));
  }

  // --- dispatch ----------------------------------------------------------------------------

  private vring(m: VhostUserMessage, index: number): Vring {
    const v = this.vrings[index];
    if (!v) throw protoErr(m, `queue index ${index} >= ${this.vrings.length} queues`, index);
    return v;
  }

  private noPayload(m: VhostUserMessage): void {
    expectSize(m, 0);
    expectNoFds(m);
  }

  private dispatch(m: VhostUserMessage): Uint8Array | null | Promise<Uint8Array | null> {
    switch (m.request) {
      case Req.GET_FEATURES:
        this.noPayload(m);
        return encodeU64(this.offeredFeatures);
      case Req.SET_FEATURES:
        expectNoFds(m);
        this.setFeatures(m, decodeU64(m));
        return null;
      case Req.GET_PROTOCOL_FEATURES:
        this.noPayload(m);
        return encodeU64(OFFERED_PROTOCOL_FEATURES);
      case Req.SET_PROTOCOL_FEATURES: {
        expectNoFds(m);
        const f = decodeU64(m);
        if ((f & ~OFFERED_PROTOCOL_FEATURES) !== 0n) {
          throw protoErr(m, `protocol features 0x${f.toString(16)} include bits not offered ` +
            `(offered 0x${OFFERED_PROTOCOL_FEATURES.toString(16)})`, f);
        }
        this.protocolFeatures = f;
        return null;
      }
      case Req.SET_OWNER:
        this.noPayload(m);
        if (this.owner) this.log.warn('SET_OWNER on a session that already has an owner');
        this.owner = true;
        return null;
      case Req.RESET_OWNER:
        this.noPayload(m);
        return this.resetDevice().then(() => { this.owner = false; return null; });
      case Req.RESET_DEVICE:
        this.noPayload(m);
        return this.resetDevice().then(() => null);
      case Req.SET_MEM_TABLE:
        this.setMemTable(m);
        return null;
      case Req.ADD_MEM_REG:
        this.addMemReg(m);
        return null;
      case Req.REM_MEM_REG:
        this.remMemReg(m);
        return null;
      case Req.GET_MAX_MEM_SLOTS:
        this.noPayload(m);
        return encodeU64(this.memory.maxRegions);
      case Req.GET_QUEUE_NUM:
        this.noPayload(m);
        return encodeU64(this.device.numQueues);
      case Req.SET_VRING_NUM: {
        expectNoFds(m);
        const s = decodeVringState(m);
        const v = this.vring(m, s.index);
        if (v.started) throw protoErr(m, `queue ${s.index} is running`, s.index);
        const max = Math.min(this.device.maxQueueSize, 32768);
        if (s.num < 1 || s.num > max || (s.num & (s.num - 1)) !== 0) {
          throw protoErr(m, `queue ${s.index} size ${s.num} is not a power of two in 1..${max}`, s.num);
        }
        if (v.ring && v.ring.size !== s.num) v.ring = null;
        v.num = s.num;
        return null;
      }
      case Req.SET_VRING_ADDR: {
        expectNoFds(m);
        const a = decodeVringAddr(m);
        const v = this.vring(m, a.index);
        if ((a.flags & VRING_ADDR_F_LOG) !== 0) {
          throw protoErr(m, `queue ${a.index} asks for used-ring logging, which is not supported`, a.flags);
        }
        v.addrs = { desc: a.desc, used: a.used, avail: a.avail };
        if (v.started && v.ring) this.attachRing(v);
        return null;
      }
      case Req.SET_VRING_BASE: {
        expectNoFds(m);
        const s = decodeVringState(m);
        const v = this.vring(m, s.index);
        if (v.started) throw protoErr(m, `queue ${s.index} is running`, s.index);
        if (s.num > 0xffff) throw protoErr(m, `queue ${s.index} base ${s.num} > 0xffff (split ring)`, s.num);
        v.base = s.num;
        return null;
      }
      case Req.GET_VRING_BASE: {
        expectNoFds(m);
        const s = decodeVringState(m);
        const v = this.vring(m, s.index);
        return this.stopRing(v).then(() => encodeVringState(v.index, v.base));
      }
      case Req.SET_VRING_KICK:
        this.setVringKick(m);
        return null;
      case Req.SET_VRING_CALL:
      case Req.SET_VRING_ERR: {
        const { v, fd } = this.vringFdMsg(m);
        if (m.request === Req.SET_VRING_CALL) v.setCallFd(fd); else v.setErrFd(fd);
        return null;
      }
      case Req.SET_VRING_ENABLE: {
        expectNoFds(m);
        const s = decodeVringState(m);
        const v = this.vring(m, s.index);
        if (s.num > 1) throw protoErr(m, `queue ${s.index} enable value ${s.num} is not 0 or 1`, s.num);
        v.enabled = s.num === 1;
        if (v.updateActive()) this.kickDevice(v);
        return null;
      }
      case Req.GET_CONFIG: {
        expectNoFds(m);
        const c = decodeConfig(m);
        const data = this.device.readConfig(c.offset, c.size);
        // The reply must carry exactly the requested size (QEMU and UML check it).
        return encodeConfig(c.offset, c.size, c.flags, data.length === c.size ? data : fit(data, c.size));
      }
      case Req.SET_BACKEND_REQ_FD: {
        if (!this.hasProtocol(ProtocolFeature.BACKEND_REQ)) throw protoErr(m, 'BACKEND_REQ not negotiated', m.request);
        expectSize(m, 0);
        if (m.fds.length !== 1 || m.fds[0] < 0) throw protoErr(m, `needs exactly one fd, got ${m.fds.length}`, m.fds.length);
        // Kept for back-end initiated messages (config change); replaced if sent again.
        if (this.backendReqFd >= 0) closeFd(this.backendReqFd);
        this.backendReqFd = m.fds[0];
        m.fds[0] = -1;
        return null;
      }
      case Req.SET_CONFIG: {
        expectNoFds(m);
        const c = decodeConfig(m);
        this.device.writeConfig(c.offset, c.data.slice());
        return null;
      }
      default:
        if (requestName(m.request).startsWith('UNKNOWN')) throw protoErr(m, 'unknown request', m.request);
        throw protoErr(m, 'not supported by this back-end (feature not offered)', m.request);
    }
  }

  private setFeatures(m: VhostUserMessage, f: bigint): void {
    if ((f & ~this.offeredFeatures) !== 0n) {
      throw protoErr(m, `features 0x${f.toString(16)} include bits not offered (0x${(f & ~this.offeredFeatures).toString(16)})`, f);
    }
    this.ackedFeatures = f;
    const eventIdx = (f & (1n << VIRTIO_RING_F_EVENT_IDX)) !== 0n;
    for (const v of this.vrings) if (v.ring) v.ring.eventIdx = eventIdx;
    this.device.setDriverFeatures(f & ~F_PROTOCOL_FEATURES);
    if ((f & F_PROTOCOL_FEATURES) === 0n) {
      // Without bit 30 there is no SET_VRING_ENABLE: rings are enabled from the start.
      for (const v of this.vrings) {
        v.enabled = true;
        if (v.updateActive()) this.kickDevice(v);
      }
    }
  }

  private vringFdMsg(m: VhostUserMessage): { v: Vring; fd: number } {
    const u = decodeU64(m);
    if (u > BigInt(VRING_IDX_MASK | VRING_NOFD)) throw protoErr(m, `reserved bits set in 0x${u.toString(16)}`, u);
    const n = Number(u);
    const v = this.vring(m, n & VRING_IDX_MASK);
    if ((n & VRING_NOFD) !== 0) {
      if (m.fds.length !== 0) throw protoErr(m, `NOFD set but ${m.fds.length} fd(s) attached`, m.fds.length);
      return { v, fd: -1 };
    }
    if (m.fds.length !== 1) throw protoErr(m, `expected 1 fd, got ${m.fds.length}`, m.fds.length);
    const fd = m.fds[0];
    m.fds[0] = -1; // taken
    return { v, fd };
  }

  private setVringKick(m: VhostUserMessage): void {
    const u = decodeU64(m);
    if ((Number(u & 0xffffn) & VRING_NOFD) !== 0 && m.fds.length === 0) {
      throw protoErr(m, 'NOFD kick (polling mode) is not supported', u);
    }
    // Validate everything before taking the fd so a rejected message leaves the ring as it was.
    const peek = this.vring(m, Number(u & BigInt(VRING_IDX_MASK)));
    if (!peek.started) this.prepareRing(m, peek);
    const { v, fd } = this.vringFdMsg(m);
    v.setKickFd(fd, () => { if (v.updateActive()) this.kickDevice(v); });
    if (!v.started) {
      v.ring!.start(v.base);
      v.started = true;
      v.log.debug({ size: v.num, base: v.base }, 'ring started');
    }
    // Guests may have queued requests before the kick fd existed: look once now.
    if (v.updateActive()) this.kickDevice(v);
  }

  /** Creates/attaches the split ring for a start; throws if the front-end left it unconfigured. */
  private prepareRing(m: VhostUserMessage, v: Vring): void {
    if (v.num === 0) throw protoErr(m, `queue ${v.index} has no size (SET_VRING_NUM missing)`, v.index);
    if (!v.addrs) throw protoErr(m, `queue ${v.index} has no addresses (SET_VRING_ADDR missing)`, v.index);
    if (!v.ring || v.ring.size !== v.num) {
      v.ring = new SplitRing({
        index: v.index, size: v.num, log: v.log, maxChainBytes: this.maxChainBytes,
        onBroken: () => this.signalErr(v),
      });
    }
    const err = v.ring.attach(this.memory, v.addrs);
    if (err) throw protoErr(m, `queue ${v.index}: ${err}`, v.addrs);
    v.ring.callFd = v.callFd;
    v.ring.eventIdx = (this.ackedFeatures & (1n << VIRTIO_RING_F_EVENT_IDX)) !== 0n;
  }

  /** Re-resolves a running ring's addresses (memory table or addresses changed). */
  private attachRing(v: Vring): void {
    if (!v.ring || !v.addrs) return;
    const err = v.ring.attach(this.memory, v.addrs);
    if (err) {
      v.log.error({ reason: err }, 'ring memory no longer mapped; queue stopped');
      v.ring.broken = err;
      this.signalErr(v);
    }
  }

  private signalErr(v: Vring): void {
    if (v.errFd < 0) return;
    try { writeCounter(v.errFd, 1); } catch (err) { v.log.warn({ err: String(err) }, 'err fd write failed'); }
  }

  private kickDevice(v: Vring): void {
    try {
      this.device.queueKicked(v.ring!);
    } catch (err) {
      v.log.error({ err }, 'device failed while handling a kick');
    }
  }

  /**
   * Stops a ring: no more pops, wait for the device to push everything in flight, publish
   * the used index. Afterwards the ring memory is not touched until the next start.
   */
  private async stopRing(v: Vring): Promise<void> {
    const wasStarted = v.started;
    v.started = false;
    v.clearKick();
    v.updateActive();
    if (!v.ring) return;
    if (wasStarted || v.ring.inFlight > 0) {
      // Memory cannot be unmapped under in-flight I/O, so this waits as long as the backend
      // takes; say so if that is unusually long.
      const started = Date.now();
      const slow = setInterval(() => {
        v.log.warn({ inFlight: v.ring?.inFlight, waitedMs: Date.now() - started }, 'still waiting for in-flight requests');
      }, DRAIN_WARN_MS);
      slow.unref();
      try {
        await this.device.drainQueue(v.index);
      } catch (err) {
        v.log.error({ err }, 'device drain failed');
      } finally {
        clearInterval(slow);
      }
      if (v.ring.inFlight > 0) v.log.warn({ inFlight: v.ring.inFlight }, 'device drained with requests still in flight');
      v.ring.flush();
      v.base = v.ring.lastAvailIdx;
      if (wasStarted) v.log.debug({ base: v.base }, 'ring stopped');
    }
  }

  /** RESET_DEVICE / RESET_OWNER: rings stopped and forgotten, device reset; memory stays. */
  private async resetDevice(): Promise<void> {
    await Promise.all(this.vrings.map((v) => this.stopRing(v)));
    if (this.closing) return;
    for (const v of this.vrings) {
      v.dispose();
      v.ring = null;
      v.num = 0;
      v.addrs = null;
      v.base = 0;
      v.enabled = false;
    }
    this.ackedFeatures = 0n;
    this.device.reset();
  }

  // --- memory ------------------------------------------------------------------------------

  private setMemTable(m: VhostUserMessage): void {
    const descs = decodeMemTable(m);
    this.memory.checkDisjoint(descs);
    const mapped: MappedRegion[] = [];
    try {
      for (let i = 0; i < descs.length; i++) mapped.push(this.memory.mapRegion(descs[i], m.fds[i]));
    } catch (err) {
      for (const r of mapped) r.unmap();
      throw err;
    }
    // The fds are closed after handling: a mapping stays valid without its fd.
    const old = this.memory.replaceAll(mapped);
    this.log.debug({ regions: mapped.map(String) }, 'memory table set');
    this.memoryChanged(old);
  }

  private addMemReg(m: VhostUserMessage): void {
    const desc = decodeMemRegionMsg(m);
    if (m.fds.length !== 1) throw protoErr(m, `expected 1 fd, got ${m.fds.length}`, m.fds.length);
    const r = this.memory.mapRegion(desc, m.fds[0]);
    try {
      this.memory.add(r);
    } catch (err) {
      r.unmap();
      throw err;
    }
    this.log.debug({ region: String(r) }, 'memory region added');
    this.memoryChanged([]);
  }

  private remMemReg(m: VhostUserMessage): void {
    // Any fd sent along is closed after handling (the spec says none SHOULD be sent).
    const desc: MemRegionDesc = decodeMemRegionMsg(m);
    const r = this.memory.remove(desc);
    if (!r) {
      throw protoErr(m, `no region with gpa 0x${desc.guestPhysAddr.toString(16)} size 0x${desc.size.toString(16)} ` +
        `uva 0x${desc.userAddr.toString(16)}`, desc.guestPhysAddr);
    }
    this.log.debug({ region: String(r) }, 'memory region removed');
    this.memoryChanged([r]);
  }

  /**
   * Running rings re-resolve their addresses; regions that left the table are unmapped once
   * nothing popped before the change can still be using them.
   */
  private memoryChanged(old: MappedRegion[]): void {
    for (const v of this.vrings) if (v.started) this.attachRing(v);
    if (old.length === 0) return;
    const busy = this.vrings.filter((v) => v.ring && v.ring.inFlight > 0);
    if (busy.length === 0) {
      for (const r of old) r.unmap();
      return;
    }
    for (const r of old) this.retired.add(r);
    Promise.all(busy.map((v) => v.ring!.whenIdle())).then(() => {
      for (const r of old) {
        if (this.retired.delete(r)) r.unmap();
      }
    }).catch((err: unknown) => this.log.error({ err }, 'unmapping replaced memory failed'));
  }

  // --- teardown ----------------------------------------------------------------------------

  /**
   * Ends the session (front-end hung up, or shutdown): stop every ring, wait for in-flight
   * requests, unmap memory, close fds, reset the device. Idempotent.
   */
  close(reason = 'closed by back-end'): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closing = true;
    this.log.info({ reason }, 'front-end session ending');
    this.channel.close();
    // Each step runs even if an earlier one failed: a half-torn-down session would keep
    // the next front-end out.
    const step = (what: string, f: () => void): void => {
      try { f(); } catch (err) { this.log.error({ err }, `teardown: ${what} failed`); }
    };
    this.closedPromise = (async () => {
      await Promise.all(this.vrings.map((v) => this.stopRing(v).catch((err: unknown) => {
        v.log.error({ err }, 'teardown: stopping the ring failed');
      })));
      for (const v of this.vrings) step(`queue ${v.index} fds`, () => v.dispose());
      for (const r of [...this.memory.clear(), ...this.retired]) step('unmap', () => r.unmap());
      this.retired.clear();
      for (const m of this.queue.splice(0)) step('queued fds', () => closeAll(m.fds));
      step('back-end channel', () => {
        const fd = this.backendReqFd;
        this.backendReqFd = -1;
        if (fd >= 0) closeFd(fd);
      });
      step('device reset', () => this.device.reset());
      this.log.info('front-end session closed');
      step('close callback', () => this.onClosed?.(this, reason));
    })();
    return this.closedPromise;
  }
}

function closeAll(fds: number[]): void {
  for (let i = 0; i < fds.length; i++) {
    if (fds[i] >= 0) closeFd(fds[i]);
    fds[i] = -1;
  }
}

function fit(data: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(data.subarray(0, size));
  return out;
}
