// The benchmark's vhost-user front-end session: the QEMU message sequence (spec §5.6) over a
// blocking request/reply exchange. The load generator has nothing else to do while it sets
// up, so a synchronous socket is simpler and keeps its event loop out of the measurement.
import { closeFd, connectUnix, eventfd, pollFds, readCounter, recvMsg, sendMsg } from '../native/index.js';
import { BLK_F, VIRTIO_F } from '../blk/constants.js';
import {
  encodeConfig, encodeMemTable, encodeMessage, encodeU64, encodeVringAddr, encodeVringState, F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY, HEADER_SIZE, ProtocolFeature, Req, requestName, VERSION,
} from '../vhost-user/messages.js';
import { DriverRing } from './driver-ring.js';
import type { BenchMemory } from './guest-memory.js';

const bit = (n: number): bigint => 1n << BigInt(n);

/** Driver features we can use: what a Linux virtio-blk driver would take, minus indirect chains. */
const WANTED_FEATURES = bit(VIRTIO_F.VERSION_1) | bit(VIRTIO_F.EVENT_IDX) | F_PROTOCOL_FEATURES |
  bit(BLK_F.SEG_MAX) | bit(BLK_F.BLK_SIZE) | bit(BLK_F.FLUSH) | bit(BLK_F.TOPOLOGY) | bit(BLK_F.CONFIG_WCE) |
  bit(BLK_F.MQ) | bit(BLK_F.SIZE_MAX);
const WANTED_PROTOCOL = bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG);
const REPLY_TIMEOUT_MS = 10_000;

export interface Reply { request: number; flags: number; payload: Uint8Array }

export class BenchFrontend {
  readonly fd: number;
  readonly rings: DriverRing[] = [];
  readonly kickFds: number[] = [];
  readonly callFds: number[] = [];
  features = 0n;
  private protocol = 0n;
  private readonly hdr = new Uint8Array(HEADER_SIZE);
  private readonly fdScratch = new Int32Array(8);
  private readonly waitFd = new Int32Array(1);

  constructor(socketPath: string) {
    this.fd = connectUnix(socketPath);
  }

  send(request: number, payload?: Uint8Array, fds?: number[], needReply = false): void {
    const msg = encodeMessage(request, VERSION | (needReply ? FLAG_NEED_REPLY : 0), payload);
    let off = 0;
    while (off < msg.length) {
      const n = sendMsg(this.fd, msg.subarray(off), off === 0 ? fds : undefined);
      if (n < 0) { this.wait(); continue; }
      off += n;
    }
  }

  private wait(): void {
    this.waitFd[0] = this.fd;
    if (pollFds(this.waitFd, REPLY_TIMEOUT_MS) === 0) throw new Error(`no reply from the daemon within ${REPLY_TIMEOUT_MS} ms`);
  }

  private readExact(buf: Uint8Array): void {
    let got = 0;
    while (got < buf.length) {
      this.fdScratch.fill(-1);
      const n = recvMsg(this.fd, buf.subarray(got), this.fdScratch);
      // Replies to our requests carry no fds; never keep any the peer sends.
      for (const f of this.fdScratch) if (f >= 0) closeFd(f);
      if (n === 0) throw new Error('daemon closed the connection');
      if (n < 0) { this.wait(); continue; }
      got += n;
    }
  }

  recv(): Reply {
    this.readExact(this.hdr);
    const dv = new DataView(this.hdr.buffer);
    const request = dv.getUint32(0, true), flags = dv.getUint32(4, true), size = dv.getUint32(8, true);
    const payload = new Uint8Array(size);
    if (size > 0) this.readExact(payload);
    return { request, flags, payload };
  }

  /** Request with its own reply (GET_*). */
  query(request: number, payload?: Uint8Array): Uint8Array {
    this.send(request, payload);
    const r = this.recv();
    if (r.request !== request) throw new Error(`${requestName(request)}: reply is for ${requestName(r.request)}`);
    return r.payload;
  }

  queryU64(request: number): bigint {
    const p = this.query(request);
    if (p.length !== 8) throw new Error(`${requestName(request)}: ${p.length}-byte reply`);
    return new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
  }

  /** A setting request; waits for its REPLY_ACK when negotiated so failures surface here. */
  command(request: number, payload?: Uint8Array, fds?: number[]): void {
    const ack = (this.protocol & bit(ProtocolFeature.REPLY_ACK)) !== 0n;
    this.send(request, payload, fds, ack);
    if (!ack) return;
    const r = this.recv();
    const v = r.payload.length === 8 ? new DataView(r.payload.buffer, r.payload.byteOffset, 8).getBigUint64(0, true) : -1n;
    if (r.request !== request || v !== 0n) throw new Error(`${requestName(request)} refused by the daemon (ack ${v})`);
  }

  /**
   * Negotiates like QEMU, shares guest memory and starts `queues` rings of `size` entries.
   * `extraFeatures` adds device bits (VIRTIO_BLK_F_ZONED for zoned workloads).
   */
  start(mem: BenchMemory, queues: number, size: number, extraFeatures = 0n): void {
    const offered = this.queryU64(Req.GET_FEATURES);
    if ((offered & F_PROTOCOL_FEATURES) === 0n) throw new Error('daemon does not offer vhost-user protocol features');
    const proto = this.queryU64(Req.GET_PROTOCOL_FEATURES) & WANTED_PROTOCOL;
    this.send(Req.SET_PROTOCOL_FEATURES, encodeU64(proto));
    this.protocol = proto;
    if ((proto & bit(ProtocolFeature.MQ)) !== 0n) {
      const n = Number(this.queryU64(Req.GET_QUEUE_NUM));
      if (n < queues) throw new Error(`daemon offers ${n} queues, ${queues} wanted`);
    } else if (queues > 1) {
      throw new Error('daemon does not offer multiqueue');
    }
    this.command(Req.SET_OWNER);
    // QEMU reads the config before starting (vhost-user-blk realize).
    this.query(Req.GET_CONFIG, encodeConfig(0, 60, 0));
    this.features = offered & (WANTED_FEATURES | extraFeatures);
    this.command(Req.SET_FEATURES, encodeU64(this.features));
    this.command(Req.SET_MEM_TABLE, encodeMemTable([mem.region]), [mem.fd]);
    const eventIdx = (this.features & bit(VIRTIO_F.EVENT_IDX)) !== 0n;
    for (let q = 0; q < queues; q++) {
      const ring = new DriverRing(mem, q, size);
      ring.eventIdx = eventIdx;
      ring.reset(0);
      this.command(Req.SET_VRING_NUM, encodeVringState(q, size));
      this.command(Req.SET_VRING_BASE, encodeVringState(q, 0));
      this.command(Req.SET_VRING_ADDR, encodeVringAddr({
        index: q, desc: mem.uva(ring.descGpa), used: mem.uva(ring.usedGpa), avail: mem.uva(ring.availGpa),
      }));
      const kick = eventfd();
      const call = eventfd();
      this.command(Req.SET_VRING_KICK, encodeU64(q), [kick]);
      this.command(Req.SET_VRING_CALL, encodeU64(q), [call]);
      this.command(Req.SET_VRING_ENABLE, encodeVringState(q, 1));
      this.rings.push(ring);
      this.kickFds.push(kick);
      this.callFds.push(call);
    }
  }

  /** Stops every ring (the daemon finishes what is in flight) and hangs up. */
  stop(): void {
    try {
      for (let q = 0; q < this.rings.length; q++) this.query(Req.GET_VRING_BASE, encodeVringState(q, 0));
    } finally {
      for (const f of [...this.kickFds, ...this.callFds]) closeFd(f);
      closeFd(this.fd);
    }
  }

  /** Clears call fd counters; returns the signals they held. */
  drainCalls(): number {
    let n = 0;
    for (const f of this.callFds) { const v = readCounter(f); if (v > 0) n += v; }
    return n;
  }
}
