// The split ring's three areas in guest memory (VIRTIO 1.x §2.7) and how both sides address
// them: the device (SplitRing) and the test driver (DriverQueue) use this one layout.
//
// The index and event words change under the other side's reads, so every access to them
// must be one aligned 16-bit load or store. Typed-array elements always are. DataView's
// getUint16/setUint16 are not: until V8 optimizes the calling function they are two byte
// accesses, and a reader catches an index moving 0x00FF -> 0x0100 as 0x01FF or 0x0000 (a
// used.idx 256 behind, an avail.idx "jumping" past the queue size). Hence the views below.
import { ZbdError } from '../errors.js';

export function descTableBytes(size: number): number { return 16 * size; }
export function availRingBytes(size: number): number { return 6 + 2 * size; }
export function usedRingBytes(size: number): number { return 6 + 8 * size; }

/** Alignment the spec requires of each area (§2.7, "Virtqueue Alignment"). */
export const DESC_ALIGN = 16;
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;

// The avail ring as 16-bit words: flags, idx, ring[size], used_event.
export const AVAIL_FLAGS = 0;
export const AVAIL_IDX = 1;
/** Word of avail ring entry 0; entry i is at AVAIL_RING + i. */
export const AVAIL_RING = 2;
export function usedEventWord(size: number): number { return AVAIL_RING + size; }

// The used ring as 16-bit words: flags, idx, then the elements, then avail_event.
export const USED_FLAGS = 0;
export const USED_IDX = 1;
export function availEventWord(size: number): number { return 2 + 4 * size; }
/** The used ring as 32-bit words: element i's id is at USED_ELEM + 2i, its len one after. */
export const USED_ELEM = 1;

/** The avail and used areas of one queue as typed arrays over the shared mapping. */
export interface RingWords {
  avail: Uint16Array;
  used: Uint16Array;
  usedElems: Uint32Array;
}

/** Where an area starts: a view of its mapping and the byte offset inside that view. */
export interface AreaAt {
  dv: DataView;
  off: number;
}

/**
 * Views over the avail and used areas of a queue of `size` entries. A misaligned area (a
 * front-end bug: the spec requires the alignment) is refused with EPROTO naming the area and
 * its address `addr` as the front-end gave it.
 */
export function ringWords(avail: AreaAt, used: AreaAt, size: number, addrs: { avail: number; used: number }): RingWords {
  // Typed arrays need the alignment in the buffer, which is what is checked.
  const a = avail.dv.byteOffset + avail.off, u = used.dv.byteOffset + used.off;
  if (a % AVAIL_ALIGN !== 0) {
    throw new ZbdError('EPROTO', `avail ring at 0x${addrs.avail.toString(16)} is not ${AVAIL_ALIGN}-byte aligned`, addrs.avail);
  }
  if (u % USED_ALIGN !== 0) {
    throw new ZbdError('EPROTO', `used ring at 0x${addrs.used.toString(16)} is not ${USED_ALIGN}-byte aligned`, addrs.used);
  }
  return {
    avail: new Uint16Array(avail.dv.buffer, a, availRingBytes(size) / 2),
    used: new Uint16Array(used.dv.buffer, u, usedRingBytes(size) / 2),
    usedElems: new Uint32Array(used.dv.buffer, u, (usedRingBytes(size) - 2) / 4),
  };
}
