// The back-end's state for one front-end session, behind the typed calls of BackendRequests:
// negotiated features, the queues (each its own Vring), the memory table's lifecycle, the
// back-end request channel, and the VirtioDevice those drive. Checks that need this state
// (queue index in range, feature bits offered, ring running) are made here.
import type { Logger } from 'pino';
import type { BusyPoll } from '../busy-poll.js';
import { ZbdError } from '../errors.js';
import { closeFd, sendMsg } from '../native/index.js';
import type { VirtioDevice } from '../virtio/device.js';
import { InflightRegion } from './inflight.js';
import { MemoryLifecycle } from './memory-lifecycle.js';
import type { MemoryTableOptions } from './memory-table.js';
import {
  BackendReq, encodeMessage, F_PROTOCOL_FEATURES, MAX_SPLIT_QUEUE_SIZE, ProtocolFeature, VERSION, VRING_ADDR_F_LOG,
  type InflightDesc, type MemRegionDesc, type VringAddr,
} from './messages.js';
import type { BackendRequests } from './request-handler.js';
import { Vring } from './vring.js';

const bit = (n: number): bigint => 1n << BigInt(n);

/** Exactly what this back-end implements (QEMU acks any offered bit, so never offer more). */
export const OFFERED_PROTOCOL_FEATURES =
  bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG) |
  bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  // QEMU's vhost-user-blk keeps the region across a back-end restart (inflight.ts).
  bit(ProtocolFeature.INFLIGHT_SHMFD) |
  // UML 6.12 allocates its device interrupt only when BACKEND_REQ is negotiated; without it
  // the vring call interrupt collides with the timer and virtio_blk fails to probe (-EBUSY).
  bit(ProtocolFeature.BACKEND_REQ);

const VIRTIO_RING_F_EVENT_IDX = 1n << 29n;

export interface DeviceHandlerOptions {
  device: VirtioDevice;
  log: Logger;
  memory?: MemoryTableOptions;
  maxChainBytes?: number;
  poll?: BusyPoll;
}

function protoErr(what: string, value: unknown): ZbdError {
  return new ZbdError('EPROTO', what, value);
}

export class DeviceHandler implements BackendRequests {
  readonly device: VirtioDevice;
  readonly vrings: readonly Vring[];
  readonly memory: MemoryLifecycle;
  private readonly log: Logger;
  private readonly offeredFeatures: bigint;
  private ackedFeatures = 0n;
  private protocolFeatures = 0n;
  /** Back-end request channel from SET_BACKEND_REQ_FD (-1 if none). */
  private backendReqFd = -1;
  private owner = false;
  private closing = false;
  /** Created by GET_INFLIGHT_FD, kept open until the front-end sends a region back. */
  private offeredInflight: InflightRegion | null = null;
  /** In use by the queues (SET_INFLIGHT_FD). */
  private inflight: InflightRegion | null = null;

  constructor(opts: DeviceHandlerOptions) {
    this.device = opts.device;
    this.log = opts.log;
    this.offeredFeatures = opts.device.deviceFeatures | F_PROTOCOL_FEATURES;
    this.memory = new MemoryLifecycle(this.log, opts.memory);
    const vrings: Vring[] = [];
    for (let q = 0; q < opts.device.numQueues; q++) {
      vrings.push(new Vring({ index: q, log: this.log.child({ queue: q }), device: opts.device, memory: this.memory.table,
        maxChainBytes: opts.maxChainBytes, poll: opts.poll }));
    }
    this.vrings = vrings;
    this.memory.setUsers(vrings);
  }

  get negotiatedFeatures(): bigint { return this.ackedFeatures; }
  get negotiatedProtocolFeatures(): bigint { return this.protocolFeatures; }

  hasProtocol(f: number): boolean { return (this.protocolFeatures & bit(f)) !== 0n; }

  private vring(index: number): Vring {
    const v = this.vrings[index];
    if (!v) throw protoErr(`queue index ${index} >= ${this.vrings.length} queues`, index);
    return v;
  }

  // --- negotiation -----------------------------------------------------------------------------

  getFeatures(): bigint { return this.offeredFeatures; }

  setFeatures(f: bigint): void {
    if ((f & ~this.offeredFeatures) !== 0n) {
      throw protoErr(`features 0x${f.toString(16)} include bits not offered (0x${(f & ~this.offeredFeatures).toString(16)})`, f);
    }
    this.ackedFeatures = f;
    for (const v of this.vrings) v.setEventIdx((f & VIRTIO_RING_F_EVENT_IDX) !== 0n);
    this.device.setDriverFeatures(f & ~F_PROTOCOL_FEATURES);
    // Without bit 30 there is no SET_VRING_ENABLE: rings are enabled from the start.
    if ((f & F_PROTOCOL_FEATURES) === 0n) for (const v of this.vrings) v.setEnabled(true);
  }

  getProtocolFeatures(): bigint { return OFFERED_PROTOCOL_FEATURES; }

  setProtocolFeatures(f: bigint): void {
    if ((f & ~OFFERED_PROTOCOL_FEATURES) !== 0n) {
      throw protoErr(`protocol features 0x${f.toString(16)} include bits not offered ` +
        `(offered 0x${OFFERED_PROTOCOL_FEATURES.toString(16)})`, f);
    }
    this.protocolFeatures = f;
  }

  setOwner(): void {
    if (this.owner) this.log.warn('SET_OWNER on a session that already has an owner');
    this.owner = true;
  }

  async resetOwner(): Promise<void> {
    await this.resetDevice();
    this.owner = false;
  }

  /** RESET_DEVICE / RESET_OWNER: rings stopped and forgotten, device reset; memory stays. */
  async resetDevice(): Promise<void> {
    await Promise.all(this.vrings.map((v) => v.stop()));
    if (this.closing) return;
    for (const v of this.vrings) v.reset();
    // A reset device starts with a fresh region (QEMU asks for a new one after a reset).
    this.dropInflight();
    this.ackedFeatures = 0n;
    this.device.reset();
  }

  getQueueNum(): number { return this.device.numQueues; }

  // --- memory ----------------------------------------------------------------------------------

  setMemTable(descs: readonly MemRegionDesc[], fds: readonly number[]): void { this.memory.setTable(descs, fds); }
  addMemRegion(desc: MemRegionDesc, fd: number): void { this.memory.add(desc, fd); }
  removeMemRegion(desc: MemRegionDesc): void { this.memory.remove(desc); }
  getMaxMemSlots(): number { return this.memory.table.maxRegions; }

  // --- queues ----------------------------------------------------------------------------------

  setVringNum(index: number, num: number): void { this.vring(index).setNum(num); }

  setVringAddr(a: VringAddr): void {
    const v = this.vring(a.index);
    if ((a.flags & VRING_ADDR_F_LOG) !== 0) {
      throw protoErr(`queue ${a.index} asks for used-ring logging, which is not supported`, a.flags);
    }
    v.setAddrs({ desc: a.desc, used: a.used, avail: a.avail });
  }

  setVringBase(index: number, base: number): void { this.vring(index).setBase(base); }

  async getVringBase(index: number): Promise<number> {
    const v = this.vring(index);
    await v.stop();
    return v.base;
  }

  setVringKick(index: number, fd: number): void { this.vring(index).setKick(fd); }
  setVringCall(index: number, fd: number): void { this.vring(index).setCall(fd); }
  setVringErr(index: number, fd: number): void { this.vring(index).setErr(fd); }
  setVringEnable(index: number, enable: boolean): void { this.vring(index).setEnabled(enable); }

  // --- inflight tracking -----------------------------------------------------------------------

  getInflightFd(numQueues: number, queueSize: number): { desc: InflightDesc; fd: number } {
    if (!this.hasProtocol(ProtocolFeature.INFLIGHT_SHMFD)) throw protoErr('INFLIGHT_SHMFD not negotiated', numQueues);
    if (numQueues > this.vrings.length) throw protoErr(`num_queues ${numQueues} > ${this.vrings.length} queues`, numQueues);
    if (queueSize > MAX_SPLIT_QUEUE_SIZE) throw protoErr(`queue_size ${queueSize} > ${MAX_SPLIT_QUEUE_SIZE}`, queueSize);
    const region = InflightRegion.create(numQueues, queueSize, this.log);
    this.offeredInflight?.close();
    this.offeredInflight = region;
    this.log.debug({ ...region.desc }, 'inflight region created');
    return { desc: region.desc, fd: region.fd };
  }

  setInflightFd(desc: InflightDesc, fd: number): void {
    if (!this.hasProtocol(ProtocolFeature.INFLIGHT_SHMFD)) throw protoErr('INFLIGHT_SHMFD not negotiated', fd);
    if (desc.numQueues > this.vrings.length) {
      throw protoErr(`num_queues ${desc.numQueues} > ${this.vrings.length} queues`, desc.numQueues);
    }
    const running = this.vrings.find((v) => v.isStarted);
    if (running) throw protoErr(`queue ${running.index} is running`, running.index);
    const region = InflightRegion.adopt(desc, fd, this.log);
    this.dropInflight();
    this.inflight = region;
    this.vrings.forEach((v, i) => v.setInflight(region.queues[i] ?? null));
    this.log.debug({ ...desc }, 'inflight region set');
  }

  private dropInflight(): void {
    for (const v of this.vrings) v.setInflight(null);
    this.inflight?.close();
    this.inflight = null;
    this.offeredInflight?.close();
    this.offeredInflight = null;
  }

  // --- config and the back-end channel ---------------------------------------------------------

  getConfig(offset: number, size: number): Uint8Array {
    const data = this.device.readConfig(offset, size);
    if (data.length === size) return data;
    const out = new Uint8Array(size);
    out.set(data.subarray(0, size));
    return out;
  }

  setConfig(offset: number, data: Uint8Array): void { this.device.writeConfig(offset, data); }

  setBackendReqFd(fd: number): void {
    if (!this.hasProtocol(ProtocolFeature.BACKEND_REQ)) throw protoErr('BACKEND_REQ not negotiated', fd);
    // Kept for back-end initiated messages (config change); replaced if sent again.
    if (this.backendReqFd >= 0) closeFd(this.backendReqFd);
    this.backendReqFd = fd;
  }

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

  // --- teardown --------------------------------------------------------------------------------

  /**
   * Session ending: stop every ring (waiting for in-flight requests), close fds, unmap memory,
   * reset the device. Each step runs even if an earlier one failed: a half-torn-down session
   * would keep the next front-end out.
   */
  async shutdown(step: (what: string, f: () => void) => void): Promise<void> {
    this.closing = true;
    await Promise.all(this.vrings.map((v) => v.stop().catch((err: unknown) => {
      v.log.error({ err }, 'teardown: stopping the ring failed');
    })));
    for (const v of this.vrings) step(`queue ${v.index} fds`, () => v.dispose());
    this.memory.release((err) => this.log.error({ err }, 'teardown: unmap failed'));
    // The front-end keeps its copy of the inflight region for the next back-end.
    step('inflight region', () => this.dropInflight());
    step('back-end channel', () => {
      const fd = this.backendReqFd;
      this.backendReqFd = -1;
      if (fd >= 0) closeFd(fd);
    });
    step('device reset', () => this.device.reset());
  }
}
