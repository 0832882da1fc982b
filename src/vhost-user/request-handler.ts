// Front-end requests → typed calls (spec §5.2). Each arm decodes and validates its message with
// the wire types of messages.ts, hands over any fd it keeps through handOverFd(), makes one
// call on the back-end and encodes the reply. State and device-dependent checks live behind
// BackendRequests (device-handler.ts); the session decides how the reply is sent.
import { ZbdError } from '../errors.js';
import {
  decodeConfig, decodeInflightDesc, decodeMemRegionMsg, decodeMemTable, decodeU64, decodeVringAddr, decodeVringBase,
  decodeVringEnable, decodeVringFdMsg, decodeVringNum, decodeVringState, encodeConfig, encodeInflightDesc, encodeU64,
  encodeVringState, expectNoFds, expectOneFd, expectSize, handOverFd, requestName, Req,
  type InflightDesc, type MemRegionDesc, type VhostUserMessage, type VringAddr,
} from './messages.js';

/** The typed calls a front-end's requests turn into (one per request). */
export interface BackendRequests {
  getFeatures(): bigint;
  setFeatures(features: bigint): void;
  getProtocolFeatures(): bigint;
  setProtocolFeatures(features: bigint): void;
  setOwner(): void;
  resetOwner(): Promise<void>;
  resetDevice(): Promise<void>;
  /** fds[i] maps descs[i]; they stay the message's (a mapping outlives its fd). */
  setMemTable(descs: readonly MemRegionDesc[], fds: readonly number[]): void;
  addMemRegion(desc: MemRegionDesc, fd: number): void;
  removeMemRegion(desc: MemRegionDesc): void;
  getMaxMemSlots(): number;
  getQueueNum(): number;
  setVringNum(index: number, num: number): void;
  setVringAddr(addr: VringAddr): void;
  setVringBase(index: number, base: number): void;
  /** Stops the ring (waits for its in-flight requests) and returns where it stopped. */
  getVringBase(index: number): Promise<number>;
  /** Takes `fd` only by returning; throwing leaves it with the message. */
  setVringKick(index: number, fd: number): void;
  /** fd -1: NOFD. */
  setVringCall(index: number, fd: number): void;
  setVringErr(index: number, fd: number): void;
  setVringEnable(index: number, enable: boolean): void;
  getConfig(offset: number, size: number): Uint8Array;
  setConfig(offset: number, data: Uint8Array): void;
  setBackendReqFd(fd: number): void;
  /** Creates the inflight region; returns its description and fd (the back-end keeps its own). */
  getInflightFd(numQueues: number, queueSize: number): { desc: InflightDesc; fd: number };
  setInflightFd(desc: InflightDesc, fd: number): void;
}

/** A reply with fds attached (GET_INFLIGHT_FD); the fds stay the back-end's (sendmsg copies them). */
export interface ReplyWithFds { payload: Uint8Array; fds: number[] }
export type Reply = Uint8Array | ReplyWithFds;
export type HandlerResult = Reply | null | Promise<Reply | null>;

function noPayload(m: VhostUserMessage): void {
  expectSize(m, 0);
  expectNoFds(m);
}

function vringFd(m: VhostUserMessage, set: (index: number, fd: number) => void): null {
  const { index, hasFd } = decodeVringFdMsg(m);
  if (hasFd) handOverFd(m, 0, (fd) => set(index, fd)); else set(index, -1);
  return null;
}

/**
 * Handles one request. Returns the reply payload for requests that have their own reply,
 * null for the others, a Promise for the few that wait for in-flight I/O, and a payload with
 * fds for GET_INFLIGHT_FD.
 */
export function handleRequest(m: VhostUserMessage, b: BackendRequests): HandlerResult {
  switch (m.request) {
    case Req.GET_FEATURES:
      noPayload(m);
      return encodeU64(b.getFeatures());
    case Req.SET_FEATURES:
      expectNoFds(m);
      b.setFeatures(decodeU64(m));
      return null;
    case Req.GET_PROTOCOL_FEATURES:
      noPayload(m);
      return encodeU64(b.getProtocolFeatures());
    case Req.SET_PROTOCOL_FEATURES:
      expectNoFds(m);
      b.setProtocolFeatures(decodeU64(m));
      return null;
    case Req.SET_OWNER:
      noPayload(m);
      b.setOwner();
      return null;
    case Req.RESET_OWNER:
      noPayload(m);
      return b.resetOwner().then(() => null);
    case Req.RESET_DEVICE:
      noPayload(m);
      return b.resetDevice().then(() => null);
    case Req.SET_MEM_TABLE:
      b.setMemTable(decodeMemTable(m), m.fds);
      return null;
    case Req.ADD_MEM_REG: {
      const desc = decodeMemRegionMsg(m);
      expectOneFd(m);
      // The mapping is all that is kept; the fd is closed with the message.
      b.addMemRegion(desc, m.fds[0]);
      return null;
    }
    case Req.REM_MEM_REG:
      // Any fd sent along is closed after handling (the spec says none SHOULD be sent).
      b.removeMemRegion(decodeMemRegionMsg(m));
      return null;
    case Req.GET_MAX_MEM_SLOTS:
      noPayload(m);
      return encodeU64(b.getMaxMemSlots());
    case Req.GET_QUEUE_NUM:
      noPayload(m);
      return encodeU64(b.getQueueNum());
    case Req.SET_VRING_NUM: {
      expectNoFds(m);
      const s = decodeVringNum(m);
      b.setVringNum(s.index, s.num);
      return null;
    }
    case Req.SET_VRING_ADDR:
      expectNoFds(m);
      b.setVringAddr(decodeVringAddr(m));
      return null;
    case Req.SET_VRING_BASE: {
      expectNoFds(m);
      const s = decodeVringBase(m);
      b.setVringBase(s.index, s.num);
      return null;
    }
    case Req.GET_VRING_BASE: {
      expectNoFds(m);
      const { index } = decodeVringState(m);
      return b.getVringBase(index).then((base) => encodeVringState(index, base));
    }
    case Req.SET_VRING_KICK: {
      const { index, hasFd } = decodeVringFdMsg(m);
      if (!hasFd) throw new ZbdError('EPROTO', `${requestName(m.request)}: NOFD kick (polling mode) is not supported`, index);
      handOverFd(m, 0, (fd) => b.setVringKick(index, fd));
      return null;
    }
    case Req.SET_VRING_CALL:
      return vringFd(m, (i, fd) => b.setVringCall(i, fd));
    case Req.SET_VRING_ERR:
      return vringFd(m, (i, fd) => b.setVringErr(i, fd));
    case Req.SET_VRING_ENABLE: {
      expectNoFds(m);
      const e = decodeVringEnable(m);
      b.setVringEnable(e.index, e.enable);
      return null;
    }
    case Req.GET_CONFIG: {
      expectNoFds(m);
      const c = decodeConfig(m);
      // The reply must carry exactly the requested size (QEMU and UML check it).
      return encodeConfig(c.offset, c.size, c.flags, b.getConfig(c.offset, c.size));
    }
    case Req.SET_CONFIG: {
      expectNoFds(m);
      const c = decodeConfig(m);
      b.setConfig(c.offset, c.data.slice());
      return null;
    }
    case Req.SET_BACKEND_REQ_FD:
      expectSize(m, 0);
      expectOneFd(m);
      handOverFd(m, 0, (fd) => b.setBackendReqFd(fd));
      return null;
    case Req.GET_INFLIGHT_FD: {
      expectNoFds(m);
      const want = decodeInflightDesc(m);
      const r = b.getInflightFd(want.numQueues, want.queueSize);
      return { payload: encodeInflightDesc(r.desc), fds: [r.fd] };
    }
    case Req.SET_INFLIGHT_FD: {
      const desc = decodeInflightDesc(m);
      expectOneFd(m);
      handOverFd(m, 0, (fd) => b.setInflightFd(desc, fd));
      return null;
    }
    default:
      if (requestName(m.request).startsWith('UNKNOWN')) {
        throw new ZbdError('EPROTO', `${requestName(m.request)}: unknown request`, m.request);
      }
      throw new ZbdError('EPROTO', `${requestName(m.request)}: not supported by this back-end (feature not offered)`,
        m.request);
  }
}
