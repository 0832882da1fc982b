// A vhost-user front-end for the tests and the benchmark: connects to a back-end socket,
// negotiates like QEMU (or like UML), shares memfd guest memory, sets up split rings with
// eventfd or socketpair notifications, and can send raw or malformed messages.
import pino, { type Logger } from 'pino';
import { closeFd, connectUnix, eventfd, socketpair } from '../native/index.js';
import { MessageChannel } from '../vhost-user/channel.js';
import {
  decodeInflightDesc, encodeConfig, encodeInflightDesc, encodeMemRegionMsg, encodeMemTable, encodeMessage, encodeU64,
  encodeVringAddr, encodeVringState, F_PROTOCOL_FEATURES, type InflightDesc, FLAG_NEED_REPLY, OWN_REPLY, ProtocolFeature,
  REPLY_FLAGS, Req, requestName, VERSION, VRING_NOFD,
  type MemRegionDesc, type VhostUserMessage,
} from '../vhost-user/messages.js';
import { DriverQueue, type DriverQueueOptions } from './driver-queue.js';
import type { GuestMemoryImage } from './guest-memory.js';

export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_RING_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_RING_F_EVENT_IDX = 1n << 29n;
const bit = (n: number): bigint => 1n << BigInt(n);

export interface RequestOptions {
  fds?: number[];
  needReply?: boolean;
  /** Raw header flags (overrides needReply). */
  flags?: number;
  /** Whether to wait for a reply (default: own-reply requests and needReply). */
  expectReply?: boolean;
}

export interface QueueSetup extends DriverQueueOptions {
  size: number;
  /** 'socketpair' makes the call fd a stream socket like UML's. */
  call?: 'eventfd' | 'socketpair' | 'none';
  enable?: boolean;
  base?: number;
}

export class VhostUserFrontend {
  readonly channel: MessageChannel;
  private replies: VhostUserMessage[] = [];
  private waiters: Array<(m: VhostUserMessage | null) => void> = [];
  private closedReason: string | null = null;
  protocolFeatures = 0n;

  private constructor(fd: number, log: Logger) {
    this.channel = new MessageChannel(fd, {
      onMessage: (m) => {
        const w = this.waiters.shift();
        if (w) w(m); else this.replies.push(m);
      },
      onClose: (reason) => {
        this.closedReason = reason;
        for (const w of this.waiters.splice(0)) w(null);
      },
    }, log);
  }

  static connect(path: string, log: Logger = pino({ level: 'silent' })): VhostUserFrontend {
    return new VhostUserFrontend(connectUnix(path), log);
  }

  get closed(): string | null { return this.closedReason; }

  /** Sends bytes exactly as given (malformed headers, truncated payloads...). */
  sendRaw(bytes: Uint8Array, fds?: number[]): void {
    this.channel.send(bytes, fds);
  }

  send(request: number, payload?: Uint8Array, opts: RequestOptions = {}): void {
    const flags = opts.flags ?? (VERSION | (opts.needReply ? FLAG_NEED_REPLY : 0));
    this.channel.send(encodeMessage(request, flags, payload), opts.fds);
  }

  /** Next message from the back-end (null if the connection closed). */
  nextReply(timeoutMs = 5000): Promise<VhostUserMessage | null> {
    const m = this.replies.shift();
    if (m) return Promise.resolve(m);
    if (this.closedReason !== null) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (r: VhostUserMessage | null): void => { clearTimeout(t); resolve(r); };
      this.waiters.push(done);
    });
  }

  /** True if no message arrives within ms. */
  async quietFor(ms: number): Promise<boolean> {
    try {
      const m = await this.nextReply(ms);
      if (m) this.replies.unshift(m);
      return m === null;
    } catch {
      return true;
    }
  }

  async request(request: number, payload?: Uint8Array, opts: RequestOptions = {}): Promise<VhostUserMessage | null> {
    this.send(request, payload, opts);
    const expect = opts.expectReply ?? (OWN_REPLY.has(request) || opts.needReply === true);
    if (!expect) return null;
    const r = await this.nextReply();
    if (r === null) throw new Error(`${requestName(request)}: connection closed (${this.closedReason})`);
    if (r.request !== request) throw new Error(`${requestName(request)}: reply is for ${requestName(r.request)}`);
    if (r.flags !== REPLY_FLAGS) throw new Error(`${requestName(request)}: reply flags 0x${r.flags.toString(16)}`);
    return r;
  }

  private static u64(m: VhostUserMessage | null): bigint {
    if (!m || m.payload.length !== 8) throw new Error(`expected a u64 reply, got ${m?.payload.length} bytes`);
    return new DataView(m.payload.buffer, m.payload.byteOffset, 8).getBigUint64(0, true);
  }

  async requestU64(request: number, payload?: Uint8Array): Promise<bigint> {
    return VhostUserFrontend.u64(await this.request(request, payload));
  }

  /** Sends with NEED_REPLY and returns the REPLY_ACK value (0 = success). */
  async requestAck(request: number, payload?: Uint8Array, fds?: number[]): Promise<bigint> {
    return VhostUserFrontend.u64(await this.request(request, payload, { needReply: true, fds }));
  }

  /** A plain request: acknowledged if REPLY_ACK was negotiated, throws on failure. */
  async command(request: number, payload?: Uint8Array, fds?: number[]): Promise<void> {
    if ((this.protocolFeatures & (1n << BigInt(ProtocolFeature.REPLY_ACK))) !== 0n) {
      const r = await this.requestAck(request, payload, fds);
      if (r !== 0n) throw new Error(`${requestName(request)} failed (ack ${r})`);
    } else {
      this.send(request, payload, { fds });
    }
  }

  getFeatures(): Promise<bigint> { return this.requestU64(Req.GET_FEATURES); }
  getProtocolFeatures(): Promise<bigint> { return this.requestU64(Req.GET_PROTOCOL_FEATURES); }
  getQueueNum(): Promise<bigint> { return this.requestU64(Req.GET_QUEUE_NUM); }
  getMaxMemSlots(): Promise<bigint> { return this.requestU64(Req.GET_MAX_MEM_SLOTS); }

  async setProtocolFeatures(f: bigint): Promise<void> {
    this.send(Req.SET_PROTOCOL_FEATURES, encodeU64(f));
    this.protocolFeatures = f;
  }

  /**
   * QEMU-like negotiation: features (all offered unless `features` given, bit 30 kept) and
   * protocol features (all offered unless `protocol` given), SET_OWNER. Returns the features.
   */
  async negotiate(opts: { features?: bigint; protocol?: bigint } = {}): Promise<{ features: bigint; protocol: bigint }> {
    const offered = await this.getFeatures();
    const protocol = (opts.protocol ?? await this.getProtocolFeatures());
    await this.setProtocolFeatures(protocol);
    await this.command(Req.SET_OWNER);
    const features = (opts.features ?? offered) | (offered & F_PROTOCOL_FEATURES);
    await this.command(Req.SET_FEATURES, encodeU64(features));
    return { features, protocol };
  }

  async setMemTable(mem: GuestMemoryImage, opts: { fixedSize?: number } = {}): Promise<void> {
    await this.command(Req.SET_MEM_TABLE, encodeMemTable(mem.descs, opts.fixedSize), mem.fds);
  }

  async addMemReg(r: MemRegionDesc, fd: number): Promise<void> {
    await this.command(Req.ADD_MEM_REG, encodeMemRegionMsg(r), [fd]);
  }

  async remMemReg(r: MemRegionDesc): Promise<void> {
    await this.command(Req.REM_MEM_REG, encodeMemRegionMsg(r));
  }

  async getConfig(offset: number, size: number): Promise<{ offset: number; size: number; data: Uint8Array; total: number }> {
    const r = await this.request(Req.GET_CONFIG, encodeConfig(offset, size, 0));
    const p = r!.payload;
    if (p.length < 12) return { offset: -1, size: -1, data: new Uint8Array(0), total: p.length };
    const dv = new DataView(p.buffer, p.byteOffset, p.length);
    return { offset: dv.getUint32(0, true), size: dv.getUint32(4, true), data: p.slice(12), total: p.length };
  }

  async setConfig(offset: number, data: Uint8Array): Promise<void> {
    await this.command(Req.SET_CONFIG, encodeConfig(offset, data.length, 0, data));
  }

  async getVringBase(q: number): Promise<number> {
    const r = await this.request(Req.GET_VRING_BASE, encodeVringState(q, 0));
    const p = r!.payload;
    if (p.length !== 8) throw new Error(`GET_VRING_BASE reply has ${p.length} bytes`);
    return new DataView(p.buffer, p.byteOffset, 8).getUint32(4, true);
  }

  /** Creates a driver queue in guest memory and starts it the way QEMU does. */
  async setupQueue(mem: GuestMemoryImage, index: number, setup: QueueSetup): Promise<DriverQueue> {
    const q = new DriverQueue(mem, index, setup.size, setup);
    q.reset(setup.base ?? 0);
    await this.command(Req.SET_VRING_NUM, encodeVringState(index, setup.size));
    await this.command(Req.SET_VRING_BASE, encodeVringState(index, setup.base ?? 0));
    await this.command(Req.SET_VRING_ADDR, encodeVringAddr({ index, ...q.addrs }));
    const call = setup.call ?? 'eventfd';
    if (call === 'none') {
      await this.command(Req.SET_VRING_CALL, encodeU64(index | VRING_NOFD));
    } else {
      let theirs: number;
      if (call === 'eventfd') {
        q.callFd = eventfd();
        theirs = q.callFd;
      } else {
        [q.callFd, theirs] = socketpair();
      }
      await this.command(Req.SET_VRING_CALL, encodeU64(index), [theirs]);
      if (call === 'socketpair') closeFd(theirs); // the back-end has its own copy now
    }
    q.kickFd = eventfd();
    await this.command(Req.SET_VRING_KICK, encodeU64(index), [q.kickFd]);
    if (setup.enable !== false) await this.command(Req.SET_VRING_ENABLE, encodeVringState(index, 1));
    return q;
  }

  /**
   * What QEMU does from vhost-user-blk realize to a running device: features (`wanted` of
   * those offered, protocol features kept), protocol features (`protocol` of those offered),
   * queue count, SET_OWNER, the config read, SET_FEATURES, the memory table, then each queue
   * started and enabled. Rings are page-aligned as in a real guest; with EVENT_IDX negotiated
   * the queues honour avail_event.
   */
  async startDevice(mem: GuestMemoryImage, o: { queues: number; size: number; wanted: bigint; protocol: bigint }):
    Promise<{ features: bigint; queues: DriverQueue[] }> {
    const offered = await this.getFeatures();
    if ((offered & F_PROTOCOL_FEATURES) === 0n) throw new Error('back-end does not offer vhost-user protocol features');
    const protocol = (await this.getProtocolFeatures()) & o.protocol;
    await this.setProtocolFeatures(protocol);
    if ((protocol & bit(ProtocolFeature.MQ)) !== 0n) {
      const n = Number(await this.getQueueNum());
      if (n < o.queues) throw new Error(`back-end offers ${n} queues, ${o.queues} wanted`);
    } else if (o.queues > 1) {
      throw new Error('back-end does not offer multiqueue');
    }
    await this.command(Req.SET_OWNER);
    await this.getConfig(0, 60);
    const features = offered & (o.wanted | F_PROTOCOL_FEATURES);
    await this.command(Req.SET_FEATURES, encodeU64(features));
    await this.setMemTable(mem);
    const queues: DriverQueue[] = [];
    for (let i = 0; i < o.queues; i++) {
      const q = await this.setupQueue(mem, i, { size: o.size, pageAligned: true });
      q.eventIdx = (features & VIRTIO_RING_F_EVENT_IDX) !== 0n;
      queues.push(q);
    }
    return { features, queues };
  }

  /** Stops each queue as QEMU does (GET_VRING_BASE: the back-end finishes what is in flight). */
  async stopQueues(queues: readonly DriverQueue[]): Promise<void> {
    for (const q of queues) await this.getVringBase(q.index);
  }

  /** GET_INFLIGHT_FD: the region's description and the memfd that came with the reply (ours to close). */
  async getInflightFd(numQueues: number, queueSize: number): Promise<{ desc: InflightDesc; fd: number }> {
    const r = await this.request(Req.GET_INFLIGHT_FD, encodeInflightDesc({ mmapSize: 0, mmapOffset: 0, numQueues, queueSize }));
    if (r!.fds.length !== 1) throw new Error(`GET_INFLIGHT_FD reply carries ${r!.fds.length} fds (${r!.payload.length} bytes)`);
    return { desc: decodeInflightDesc(r!), fd: r!.fds[0] };
  }

  /** SET_INFLIGHT_FD: hands the region (back) to the back-end, as QEMU does before each start. */
  async setInflightFd(desc: InflightDesc, fd: number): Promise<void> {
    await this.command(Req.SET_INFLIGHT_FD, encodeInflightDesc(desc), [fd]);
  }

  /** Round trip that proves the back-end still serves requests in order. */
  async ping(): Promise<bigint> { return this.getFeatures(); }

  close(): void {
    this.channel.close();
  }
}
