import { describe, expect, it } from 'vitest';
import { ZbdError } from '../../src/errors.js';
import {
  decodeConfig, decodeHeader, decodeMemRegionMsg, decodeMemTable, decodeU64, decodeVringAddr, decodeVringBase,
  decodeVringEnable, decodeVringFdMsg, decodeVringNum, decodeVringState, encodeConfig, handOverFd, hasOwnReply, VRING_NOFD,
  encodeMemRegionMsg, encodeMemTable, encodeMessage, encodeU64, encodeVringAddr, encodeVringState,
  FLAG_NEED_REPLY, REPLY_FLAGS, Req, requestName, type VhostUserMessage,
} from '../../src/vhost-user/messages.js';

const msg = (request: number, payload: Uint8Array, fds: number[] = []): VhostUserMessage =>
  ({ request, flags: 1, payload, fds });

function eproto(f: () => unknown, re: RegExp): void {
  let caught: unknown;
  try { f(); } catch (e) { caught = e; }
  expect(caught).toBeInstanceOf(ZbdError);
  expect((caught as ZbdError).code).toBe('EPROTO');
  expect((caught as ZbdError).message).toMatch(re);
}

describe('vhost-user messages', () => {
  it('has the request numbers and reply flags of the spec', () => {
    expect(Req.GET_FEATURES).toBe(1);
    expect(Req.SET_MEM_TABLE).toBe(5);
    expect(Req.GET_VRING_BASE).toBe(11);
    expect(Req.GET_CONFIG).toBe(24);
    expect(Req.RESET_DEVICE).toBe(34);
    expect(Req.ADD_MEM_REG).toBe(37);
    expect(Req.REM_MEM_REG).toBe(38);
    expect(REPLY_FLAGS).toBe(0x5);
    expect(FLAG_NEED_REPLY).toBe(0x8);
    expect(requestName(24)).toBe('GET_CONFIG');
    expect(requestName(999)).toBe('UNKNOWN(999)');
  });

  it('encodes a 12-byte little-endian header', () => {
    const m = encodeMessage(Req.GET_CONFIG, REPLY_FLAGS, new Uint8Array(5));
    expect(m.length).toBe(17);
    expect(Array.from(m.subarray(0, 12))).toEqual([24, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0]);
    expect(decodeHeader(m)).toEqual({ request: 24, flags: 5, size: 5 });
  });

  it('round-trips u64, vring state and vring address (desc, used, avail, log order)', () => {
    expect(decodeU64(msg(2, encodeU64(0x1_0000_0030n)))).toBe(0x1_0000_0030n);
    expect(decodeVringState(msg(8, encodeVringState(3, 256)))).toEqual({ index: 3, num: 256 });
    const a = encodeVringAddr({ index: 1, desc: 0x1000, used: 0x2000, avail: 0x3000 });
    const dv = new DataView(a.buffer);
    expect(dv.getBigUint64(8, true)).toBe(0x1000n);
    expect(dv.getBigUint64(16, true)).toBe(0x2000n);
    expect(dv.getBigUint64(24, true)).toBe(0x3000n);
    expect(decodeVringAddr(msg(9, a))).toEqual({ index: 1, flags: 0, desc: 0x1000, used: 0x2000, avail: 0x3000,
      log: 0xffff_ffff_ffff_ffffn });
  });

  it('rejects wrong payload sizes naming the message', () => {
    eproto(() => decodeU64(msg(Req.SET_FEATURES, new Uint8Array(4))), /SET_FEATURES: payload size 4, expected 8/);
    eproto(() => decodeVringState(msg(Req.SET_VRING_NUM, new Uint8Array(12))), /SET_VRING_NUM: payload size 12/);
    eproto(() => decodeVringAddr(msg(Req.SET_VRING_ADDR, new Uint8Array(32))), /SET_VRING_ADDR: payload size 32, expected 40/);
    eproto(() => decodeMemRegionMsg(msg(Req.ADD_MEM_REG, new Uint8Array(32))), /ADD_MEM_REG: payload size 32/);
  });

  it('rejects ring addresses at or above 2^53', () => {
    const a = encodeVringAddr({ index: 0, desc: 1n << 53n, used: 0, avail: 0 });
    eproto(() => decodeVringAddr(msg(9, a)), /desc_user_addr 0x20000000000000 exceeds 2\^53/);
  });

  const region = { guestPhysAddr: 0x1_0000_0000, size: 0x100_0000, userAddr: 0x7f00_0000_0000, mmapOffset: 0 };

  it('decodes a QEMU-sized and a UML fixed-72-byte memory table', () => {
    const q = encodeMemTable([region, { ...region, guestPhysAddr: 0, userAddr: 0x7e00_0000_0000 }]);
    expect(q.length).toBe(8 + 64);
    expect(decodeMemTable(msg(5, q, [10, 11]))).toHaveLength(2);
    const u = encodeMemTable([region], 72);
    expect(u.length).toBe(72);
    expect(decodeMemTable(msg(5, u, [10]))).toEqual([region]);
  });

  it('rejects memory tables with bad nregions, short payloads, fd mismatch or overflowing regions', () => {
    const t9 = encodeMemTable(Array.from({ length: 9 }, (_, i) => ({ ...region, guestPhysAddr: i * 0x200_0000 })));
    eproto(() => decodeMemTable(msg(5, t9, [1, 2, 3, 4, 5, 6, 7, 8, 9])), /nregions 9 not in 1\.\.8/);
    const t0 = new Uint8Array(8);
    eproto(() => decodeMemTable(msg(5, t0, [])), /nregions 0/);
    const t2 = encodeMemTable([region, region]).subarray(0, 8 + 40);
    eproto(() => decodeMemTable(msg(5, t2, [1, 2])), /payload size 48 < 72 for 2 regions/);
    eproto(() => decodeMemTable(msg(5, encodeMemTable([region]), [])), /0 fds for 1 regions/);
    eproto(() => decodeMemTable(msg(5, encodeMemTable([region]), [3, 4])), /2 fds for 1 regions/);
    eproto(() => decodeMemTable(msg(5, new Uint8Array(4), [])), /payload size 4 < 8/);
    const big = encodeMemTable([{ ...region, guestPhysAddr: 2 ** 53 - 0x1000 }]);
    eproto(() => decodeMemTable(msg(5, big, [1])), /guest_phys_addr .* overflows/);
    const zero = encodeMemTable([{ ...region, size: 0 }]);
    eproto(() => decodeMemTable(msg(5, zero, [1])), /size 0/);
  });

  it('round-trips ADD/REM_MEM_REG', () => {
    const p = encodeMemRegionMsg(region);
    expect(p.length).toBe(40);
    expect(decodeMemRegionMsg(msg(Req.ADD_MEM_REG, p, [3]))).toEqual(region);
  });

  it('validates config payloads: size ≤ 256, offset + size ≤ 256, exact length', () => {
    const c = decodeConfig(msg(Req.GET_CONFIG, encodeConfig(0, 93, 0)));
    expect(c).toMatchObject({ offset: 0, size: 93, flags: 0 });
    expect(c.data.length).toBe(93);
    eproto(() => decodeConfig(msg(Req.GET_CONFIG, encodeConfig(0, 257, 0))), /config size 257 > 256/);
    eproto(() => decodeConfig(msg(Req.GET_CONFIG, encodeConfig(200, 57, 0))), /offset 200 \+ size 57 > 256/);
    eproto(() => decodeConfig(msg(Req.GET_CONFIG, encodeConfig(0, 8, 0).subarray(0, 16))),
      /payload size 16, expected 20/);
    eproto(() => decodeConfig(msg(Req.SET_CONFIG, new Uint8Array(8))), /SET_CONFIG: payload size 8 < 12/);
  });

  it('validates ring size, base, enable and kick/call/err payloads with the wire types', () => {
    expect(decodeVringNum(msg(Req.SET_VRING_NUM, encodeVringState(1, 32768)))).toEqual({ index: 1, num: 32768 });
    eproto(() => decodeVringNum(msg(Req.SET_VRING_NUM, encodeVringState(0, 96))), /queue 0 size 96 is not a power of two in 1\.\.32768/);
    eproto(() => decodeVringNum(msg(Req.SET_VRING_NUM, encodeVringState(0, 0))), /size 0/);
    eproto(() => decodeVringNum(msg(Req.SET_VRING_NUM, encodeVringState(0, 65536))), /size 65536/);
    expect(decodeVringBase(msg(Req.SET_VRING_BASE, encodeVringState(0, 0xffff)))).toEqual({ index: 0, num: 0xffff });
    eproto(() => decodeVringBase(msg(Req.SET_VRING_BASE, encodeVringState(2, 0x10000))), /queue 2 base 65536 > 0xffff/);
    expect(decodeVringEnable(msg(Req.SET_VRING_ENABLE, encodeVringState(3, 1)))).toEqual({ index: 3, enable: true });
    eproto(() => decodeVringEnable(msg(Req.SET_VRING_ENABLE, encodeVringState(0, 2))), /enable value 2 is not 0 or 1/);
    expect(decodeVringFdMsg(msg(Req.SET_VRING_CALL, encodeU64(5), [9]))).toEqual({ index: 5, hasFd: true });
    expect(decodeVringFdMsg(msg(Req.SET_VRING_CALL, encodeU64(5 | VRING_NOFD)))).toEqual({ index: 5, hasFd: false });
    eproto(() => decodeVringFdMsg(msg(Req.SET_VRING_CALL, encodeU64(0x200))), /reserved bits set in 0x200/);
    eproto(() => decodeVringFdMsg(msg(Req.SET_VRING_KICK, encodeU64(VRING_NOFD), [9])), /NOFD set but 1 fd/);
    eproto(() => decodeVringFdMsg(msg(Req.SET_VRING_ERR, encodeU64(0))), /expected 1 fd, got 0/);
  });

  it('hands an fd over only when the taker returns; a throwing taker leaves it with the message', () => {
    const m = msg(Req.SET_VRING_KICK, encodeU64(0), [42]);
    expect(() => handOverFd(m, 0, () => { throw new Error('refused'); })).toThrow('refused');
    expect(m.fds).toEqual([42]);
    let got = -1;
    handOverFd(m, 0, (fd) => { got = fd; });
    expect(got).toBe(42);
    expect(m.fds).toEqual([-1]);
    eproto(() => handOverFd(m, 0, () => undefined), /has no fd #0/);
    expect(hasOwnReply(Req.GET_VRING_BASE)).toBe(true);
    expect(hasOwnReply(Req.SET_VRING_BASE)).toBe(false);
  });
});
