// The virtio-blk request parser alone: every request type, and every refusal with the status
// the spec asks for, from chains made in memory (no socket, no backend).
import { describe, expect, it } from 'vitest';
import { BlkRequest, RequestKind, parseRequest, type ParseContext } from '../../src/blk/request.js';
import { refusalStatus } from '../../src/blk/status.js';
import { ZoneOp } from '../../src/zoned/types.js';
import { S, T, chain, segments, type ChainSpec } from './chains.js';

const LIMITS = { maxSectors: 1 << 21, maxSegments: 32 };
const CTX: ParseContext = { capacitySectors: 1 << 20, blockSectors: 8, readOnly: false, zoned: true, discard: LIMITS, writeZeroes: LIMITS };

function parse(spec: ChainSpec, ctx: Partial<ParseContext> = {}): BlkRequest {
  return parseRequest(chain(spec), { ...CTX, ...ctx });
}

/** The status a refused request is answered with, or 'ran' when the parser accepted it. */
function answer(spec: ChainSpec, ctx: Partial<ParseContext> = {}): number | 'ran' {
  const r = parse(spec, ctx);
  return r.kind === RequestKind.REFUSED ? refusalStatus(r.refusal) : 'ran';
}

describe('request parser: the request types', () => {
  it('read: the device-writable data before the status byte, in as many buffers as sent', () => {
    const r = parse({ type: T.IN, sector: 24, inLens: [4096, 512], splitHeader: true });
    expect(r.kind).toBe(RequestKind.READ);
    expect([r.sector, r.dataBytes, r.data.map((d) => d.byteLength)]).toEqual([24, 4608, [4096, 512]]);
  });

  it('write: the data after the header, even when header and data share a descriptor', () => {
    const r = parse({ type: T.OUT, sector: 8, out: [new Uint8Array(1024)] });
    expect([r.kind, r.sector, r.dataBytes]).toEqual([RequestKind.WRITE, 8, 1024]);
    // Header and 512 bytes of data in one 528-byte descriptor.
    const c = chain({ type: T.OUT, sector: 8 });
    const merged = new Uint8Array(16 + 512);
    merged.set(c.readable[0]);
    const one = { ...c, readable: [merged], readableBytes: merged.byteLength };
    const w = parseRequest(one, CTX);
    expect([w.kind, w.dataBytes, w.data[0].byteOffset]).toEqual([RequestKind.WRITE, 512, 16]);
  });

  it('flush, get-id, zone report, zone append (9- and 16-byte tails), the five zone operations', () => {
    expect(parse({ type: T.FLUSH }).kind).toBe(RequestKind.FLUSH);
    const id = parse({ type: T.GET_ID, inLens: [20] });
    expect([id.kind, id.dataBytes]).toEqual([RequestKind.GET_ID, 20]);
    const rep = parse({ type: T.REPORT, sector: 77, inLens: [4096] });
    expect([rep.kind, rep.sector, rep.dataBytes]).toEqual([RequestKind.REPORT, 77, 4096]);
    for (const tail of [9, 16]) {
      const a = parse({ type: T.APPEND, sector: 2048, out: [new Uint8Array(4096)], tail });
      expect([a.kind, a.sector, a.dataBytes, a.tailBytes]).toEqual([RequestKind.APPEND, 2048, 4096, tail]);
    }
    const ops: Array<[number, ZoneOp]> = [
      [T.OPEN, ZoneOp.OPEN], [T.CLOSE, ZoneOp.CLOSE], [T.FINISH, ZoneOp.FINISH], [T.RESET, ZoneOp.RESET], [T.RESET_ALL, ZoneOp.RESET_ALL],
    ];
    for (const [type, op] of ops) {
      const m = parse({ type, sector: 4096 });
      expect([m.kind, m.zoneOp, m.sector]).toEqual([RequestKind.MGMT, op, 4096]);
    }
  });

  it('discard and write zeroes: every segment, flags kept per segment', () => {
    const d = parse({ type: T.DISCARD, out: [segments([0, 8], [4096, 2048], [1 << 19, 0])] });
    expect([d.kind, d.segments]).toEqual([RequestKind.DISCARD, 3]);
    expect([...d.segSector.subarray(0, 3)]).toEqual([0, 4096, 1 << 19]);
    expect([...d.segSectors.subarray(0, 3)]).toEqual([8, 2048, 0]);
    // Segments split across descriptors are read all the same.
    const list = segments([16, 8, 1], [64, 16, 0]);
    const z = parse({ type: T.WRITE_ZEROES, out: [list.subarray(0, 5), list.subarray(5, 21), list.subarray(21)] });
    expect([z.kind, z.segments, [...z.segUnmap.subarray(0, 2)]]).toEqual([RequestKind.WRITE_ZEROES, 2, [1, 0]]);
    // The largest segment offered, ending exactly at the end of the disk.
    expect(answer({ type: T.DISCARD, out: [segments([(1 << 20) - (1 << 18), 1 << 18])] })).toBe('ran');
  });

  it('a reused request object carries nothing over from its last use', () => {
    const r = new BlkRequest();
    parseRequest(chain({ type: T.DISCARD, out: [segments([0, 8])] }), CTX, r);
    parseRequest(chain({ type: T.IN, sector: 8, inLens: [512] }), CTX, r);
    expect([r.kind, r.data.length, r.badSegment]).toEqual([RequestKind.READ, 1, -1]);
  });
});

describe('request parser: refusals and their status', () => {
  it('malformed framing is IOERR', () => {
    expect(answer({ type: T.IN, error: 'descriptor loop' })).toBe(S.IOERR);
    expect(answer({ type: T.IN, tail: 0 })).toBe(S.IOERR);
    const short = chain({ type: T.FLUSH });
    expect(refusalStatus(parseRequest({ ...short, readable: [short.readable[0].subarray(0, 12)], readableBytes: 12 }, CTX).refusal)).toBe(S.IOERR);
    expect(answer({ type: T.IN, inLens: [1000] })).toBe(S.IOERR);
    expect(answer({ type: T.IN, out: [new Uint8Array(512)], inLens: [512] })).toBe(S.IOERR);
    expect(answer({ type: T.OUT, out: [new Uint8Array(1000)] })).toBe(S.IOERR);
    expect(answer({ type: T.OUT, out: [new Uint8Array(512)], inLens: [512] })).toBe(S.IOERR);
    expect(answer({ type: T.APPEND, out: [new Uint8Array(512)], tail: 8 })).toBe(S.IOERR);
    expect(answer({ type: T.APPEND, out: [new Uint8Array(512)], tail: 17 })).toBe(S.IOERR);
    expect(answer({ type: T.RESET, out: [new Uint8Array(512)] })).toBe(S.IOERR);
  });

  it('zone commands without ZONED and unknown types are UNSUPP; a report buffer under 64 bytes is ZONE_INVALID_CMD', () => {
    for (const type of [T.APPEND, T.REPORT, T.OPEN, T.CLOSE, T.FINISH, T.RESET, T.RESET_ALL]) {
      const out = type === T.APPEND ? [new Uint8Array(512)] : [];
      expect(answer({ type, out, inLens: type === T.REPORT ? [4096] : [], tail: type === T.APPEND ? 9 : 1 }, { zoned: false })).toBe(S.UNSUPP);
    }
    expect(answer({ type: 99 })).toBe(S.UNSUPP);
    expect(answer({ type: 10 /* GET_LIFETIME */, inLens: [12] })).toBe(S.UNSUPP);
    expect(answer({ type: T.REPORT, inLens: [63] })).toBe(S.INVALID);
  });

  it('writes of any kind to a read-only disk are IOERR', () => {
    const ro = { readOnly: true };
    expect(answer({ type: T.OUT, out: [new Uint8Array(512)] }, ro)).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: [segments([0, 8])] }, ro)).toBe(S.IOERR);
    expect(answer({ type: T.WRITE_ZEROES, out: [segments([0, 8])] }, ro)).toBe(S.IOERR);
    expect(answer({ type: T.IN, inLens: [512] }, ro)).toBe('ran');
  });

  it('discard / write zeroes: UNSUPP for what is not offered, IOERR for bad ranges and framing', () => {
    const seg = [segments([0, 8])];
    expect(answer({ type: T.DISCARD, out: seg }, { discard: null })).toBe(S.UNSUPP);
    expect(answer({ type: T.WRITE_ZEROES, out: seg }, { writeZeroes: null })).toBe(S.UNSUPP);
    // Reserved flag bits (any of bits 1..31), and unmap on a discard: UNSUPP (spec, device requirements).
    for (const flags of [2, 0x80000000, 3]) expect(answer({ type: T.WRITE_ZEROES, out: [segments([0, 8, flags])] }), `flags ${flags}`).toBe(S.UNSUPP);
    expect(answer({ type: T.DISCARD, out: [segments([0, 8, 1])] })).toBe(S.UNSUPP);
    expect(answer({ type: T.WRITE_ZEROES, out: [segments([0, 8, 1])] })).toBe('ran');
    // More segments than offered: UNSUPP (as QEMU answers); exactly as many: fine.
    const many = (n: number): Uint8Array => segments(...Array.from({ length: n }, (_, i): [number, number] => [i * 8, 8]));
    expect(answer({ type: T.DISCARD, out: [many(33)] })).toBe(S.UNSUPP);
    expect(answer({ type: T.DISCARD, out: [many(32)] })).toBe('ran');
    // Framing: no segment, a partial one, data in the writable part.
    expect(answer({ type: T.DISCARD })).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: [new Uint8Array(24)] })).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: seg, inLens: [16] })).toBe(S.IOERR);
    // Ranges: larger than offered, past the end, sector or length off the 4096-byte block.
    expect(answer({ type: T.DISCARD, out: [segments([0, (1 << 21) + 8])] })).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: [segments([(1 << 20) - 8, 16])] })).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: [segments([2 ** 52, 8])] })).toBe(S.IOERR);
    expect(answer({ type: T.DISCARD, out: [segments([4, 8])] })).toBe(S.IOERR);
    expect(answer({ type: T.WRITE_ZEROES, out: [segments([8, 4])] })).toBe(S.IOERR);
  });

  it('one bad segment refuses the whole request and names the segment', () => {
    const r = parse({ type: T.DISCARD, out: [segments([0, 8], [16, 8], [1 << 20, 8])] });
    expect([r.kind, refusalStatus(r.refusal), r.badSegment]).toEqual([RequestKind.REFUSED, S.IOERR, 2]);
    expect(r.reason).toMatch(/beyond the end/);
  });
});
