// The front-end's memory regions, mapped into this process, and address translation for both
// address spaces vhost-user uses: guest-physical (descriptor addresses) and front-end user
// virtual (ring addresses from SET_VRING_ADDR) — spec §5.3.
//
// A single ArrayBuffer from the addon is limited to 4 GiB, so a region is mapped as a series of
// windows. Window k starts at region offset k*W and is W + overlap bytes long (clipped at the
// region end). The overlap means any range of at most `overlap` bytes is contiguous inside the
// window that holds its first byte: rings and typical I/O buffers never need splitting; longer
// ranges are split into several views by gpaToViews().
import { ZbdError } from '../errors.js';
import { mmap, munmap, pageSize } from '../native/index.js';
import type { GuestMemory } from '../virtio/guest-memory.js';
import type { MemRegionDesc } from './messages.js';

const GiB = 1024 * 1024 * 1024;
/** Largest single mapping the addon can return as an ArrayBuffer. */
export const MAX_MAPPING = 4 * GiB;
export const DEFAULT_WINDOW_SIZE = 2 * GiB;
export const DEFAULT_WINDOW_OVERLAP = 1024 * 1024;
/** Advertised in GET_MAX_MEM_SLOTS (libvhost-user's value; QEMU allows up to 512). */
export const DEFAULT_MAX_REGIONS = 509;

interface Window {
  /** Region offset of the first byte. */
  readonly start: number;
  readonly len: number;
  /** The whole mmap (page-aligned start), kept for munmap. */
  readonly mapping: ArrayBuffer;
  /** Views over [start, start+len) of the region. */
  readonly dv: DataView;
  readonly bytes: Uint8Array;
}

export class MappedRegion implements MemRegionDesc {
  readonly guestPhysAddr: number;
  readonly size: number;
  readonly userAddr: number;
  readonly mmapOffset: number;
  private windows: Window[];
  private readonly windowSize: number;
  private mapped = true;

  constructor(desc: MemRegionDesc, windows: Window[], windowSize: number) {
    this.guestPhysAddr = desc.guestPhysAddr;
    this.size = desc.size;
    this.userAddr = desc.userAddr;
    this.mmapOffset = desc.mmapOffset;
    this.windows = windows;
    this.windowSize = windowSize;
  }

  get windowCount(): number { return this.windows.length; }
  get isMapped(): boolean { return this.mapped; }

  /** Window holding region offset `off` (off < size). */
  windowAt(off: number): Window {
    return this.windows[Math.floor(off / this.windowSize)];
  }

  /** Releases every window. Views handed out before become detached (length 0). */
  unmap(): void {
    if (!this.mapped) return;
    this.mapped = false;
    for (const w of this.windows) munmap(w.mapping);
    this.windows = [];
  }

  toString(): string {
    return `gpa 0x${this.guestPhysAddr.toString(16)} size 0x${this.size.toString(16)} ` +
      `uva 0x${this.userAddr.toString(16)} offset 0x${this.mmapOffset.toString(16)}`;
  }
}

export interface MemoryTableOptions {
  /** Distance between window starts; multiple of the page size. Small values exercise the
   * window logic in tests. */
  windowSize?: number;
  /** Extra bytes each window maps past the next window's start. */
  windowOverlap?: number;
  maxRegions?: number;
}

function overlaps(aStart: number, aLen: number, bStart: number, bLen: number): boolean {
  // Ranges are < 2^53 each, so these comparisons are exact.
  return aStart < bStart + bLen && bStart < aStart + aLen;
}

const EMPTY = new ArrayBuffer(0);

/**
 * Views handed out for guest buffers are kept in a small direct-mapped cache by address and
 * length. A guest reuses its buffers (Linux keeps each tag's request header and status byte
 * in one place; fio's and most applications' data buffers recur too), and a hit saves
 * creating a typed array, the largest single cost of the ring walk. Cleared whenever the
 * regions change, so no view of a removed (later unmapped) region is handed out again.
 */
const VIEW_CACHE_BITS = 10;
const VIEW_CACHE_SIZE = 1 << VIEW_CACHE_BITS;

export class MemoryTable implements GuestMemory {
  readonly windowSize: number;
  readonly windowOverlap: number;
  readonly maxRegions: number;
  private readonly page: number;
  /** Sorted by guest-physical address. */
  private byGpa: MappedRegion[] = [];
  /** Sorted by user address. */
  private byUva: MappedRegion[] = [];
  private lastGpa: MappedRegion | null = null;
  private lastUva: MappedRegion | null = null;
  private readonly cacheAddr = new Float64Array(VIEW_CACHE_SIZE).fill(-1);
  private readonly cacheLen = new Float64Array(VIEW_CACHE_SIZE);
  private readonly cacheView: Uint8Array[] = new Array<Uint8Array>(VIEW_CACHE_SIZE).fill(new Uint8Array(EMPTY));

  hitView: DataView = new DataView(EMPTY);
  hitOffset = 0;
  hitBytes: Uint8Array = new Uint8Array(EMPTY);

  constructor(opts: MemoryTableOptions = {}) {
    this.page = pageSize();
    this.windowSize = opts.windowSize ?? DEFAULT_WINDOW_SIZE;
    this.windowOverlap = opts.windowOverlap ?? DEFAULT_WINDOW_OVERLAP;
    this.maxRegions = opts.maxRegions ?? DEFAULT_MAX_REGIONS;
    if (!Number.isSafeInteger(this.windowSize) || this.windowSize <= 0 || this.windowSize % this.page !== 0) {
      throw new ZbdError('EARG', `window size ${this.windowSize} is not a positive multiple of the page size ${this.page}`,
        this.windowSize);
    }
    if (!Number.isSafeInteger(this.windowOverlap) || this.windowOverlap < 0) {
      throw new ZbdError('EARG', `window overlap ${this.windowOverlap} is invalid`, this.windowOverlap);
    }
    // A window mapping starts up to one page early (offset rounding).
    if (this.windowSize + this.windowOverlap + this.page > MAX_MAPPING) {
      throw new ZbdError('EARG', `window size ${this.windowSize} + overlap ${this.windowOverlap} exceeds 4 GiB`,
        this.windowSize);
    }
  }

  get regions(): readonly MappedRegion[] { return this.byGpa; }

  /**
   * Maps a region from `fd` (not closed here). Throws EPROTO if the kernel refuses (offset or
   * size beyond the file, bad fd): the values came from the front-end.
   */
  mapRegion(desc: MemRegionDesc, fd: number): MappedRegion {
    const windows: Window[] = [];
    try {
      for (let start = 0; start < desc.size; start += this.windowSize) {
        const len = Math.min(this.windowSize + this.windowOverlap, desc.size - start);
        const fileOff = desc.mmapOffset + start;
        // mmap needs a page-aligned offset; the window view skips the rounding.
        const lead = fileOff % this.page;
        const mapping = mmap(fd, fileOff - lead, lead + len, true);
        windows.push({
          start, len, mapping,
          dv: new DataView(mapping, lead, len),
          bytes: new Uint8Array(mapping, lead, len),
        });
      }
    } catch (err) {
      for (const w of windows) munmap(w.mapping);
      throw new ZbdError('EPROTO', `cannot map region gpa 0x${desc.guestPhysAddr.toString(16)} size ` +
        `0x${desc.size.toString(16)} offset 0x${desc.mmapOffset.toString(16)}: ${(err as Error).message}`,
      desc, { cause: err });
    }
    return new MappedRegion(desc, windows, this.windowSize);
  }

  private checkFree(r: MemRegionDesc, others: readonly MemRegionDesc[]): void {
    for (const o of others) {
      if (overlaps(r.guestPhysAddr, r.size, o.guestPhysAddr, o.size)) {
        throw new ZbdError('EPROTO', `region gpa 0x${r.guestPhysAddr.toString(16)} size 0x${r.size.toString(16)} ` +
          `overlaps region at gpa 0x${o.guestPhysAddr.toString(16)}`, r.guestPhysAddr);
      }
      if (overlaps(r.userAddr, r.size, o.userAddr, o.size)) {
        throw new ZbdError('EPROTO', `region uva 0x${r.userAddr.toString(16)} size 0x${r.size.toString(16)} ` +
          `overlaps region at uva 0x${o.userAddr.toString(16)}`, r.userAddr);
      }
    }
  }

  private rebuild(list: MappedRegion[]): void {
    this.byGpa = [...list].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
    this.byUva = [...list].sort((a, b) => a.userAddr - b.userAddr);
    this.lastGpa = null;
    this.lastUva = null;
    this.cacheAddr.fill(-1);
    this.cacheView.fill(new Uint8Array(EMPTY));
  }

  /** Validates that the given regions do not overlap each other (before mapping them). */
  checkDisjoint(descs: readonly MemRegionDesc[]): void {
    for (let i = 1; i < descs.length; i++) this.checkFree(descs[i], descs.slice(0, i));
  }

  /** SET_MEM_TABLE: installs `regions`, returns the previous ones (caller unmaps when safe). */
  replaceAll(regions: MappedRegion[]): MappedRegion[] {
    this.checkDisjoint(regions);
    const old = this.byGpa;
    this.rebuild(regions);
    return old;
  }

  /** ADD_MEM_REG. */
  add(region: MappedRegion): void {
    if (this.byGpa.length >= this.maxRegions) {
      throw new ZbdError('EPROTO', `ADD_MEM_REG: already ${this.byGpa.length} regions (max ${this.maxRegions})`,
        this.byGpa.length);
    }
    this.checkFree(region, this.byGpa);
    this.rebuild([...this.byGpa, region]);
  }

  /** REM_MEM_REG: the region with the same guest address, user address and size. */
  remove(desc: MemRegionDesc): MappedRegion | null {
    const r = this.byGpa.find((x) => x.guestPhysAddr === desc.guestPhysAddr && x.size === desc.size &&
      x.userAddr === desc.userAddr);
    if (!r) return null;
    this.rebuild(this.byGpa.filter((x) => x !== r));
    return r;
  }

  /** Forgets every region and returns them (caller unmaps). */
  clear(): MappedRegion[] {
    const old = this.byGpa;
    this.rebuild([]);
    return old;
  }

  private static find(list: MappedRegion[], addr: number, uva: boolean): MappedRegion | null {
    // Last region whose start ≤ addr.
    let lo = 0;
    let hi = list.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const start = uva ? list[mid].userAddr : list[mid].guestPhysAddr;
      if (start <= addr) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (best < 0) return null;
    const r = list[best];
    const start = uva ? r.userAddr : r.guestPhysAddr;
    return addr - start < r.size ? r : null;
  }

  private findGpa(addr: number): MappedRegion | null {
    const c = this.lastGpa;
    if (c !== null && addr >= c.guestPhysAddr && addr - c.guestPhysAddr < c.size) return c;
    const r = MemoryTable.find(this.byGpa, addr, false);
    if (r) this.lastGpa = r;
    return r;
  }

  private findUva(addr: number): MappedRegion | null {
    const c = this.lastUva;
    if (c !== null && addr >= c.userAddr && addr - c.userAddr < c.size) return c;
    const r = MemoryTable.find(this.byUva, addr, true);
    if (r) this.lastUva = r;
    return r;
  }

  private locateIn(r: MappedRegion | null, off: number, len: number): boolean {
    if (r === null || len > r.size - off) return false;
    const w = r.windowAt(off);
    const wo = off - w.start;
    if (len > w.len - wo) return false;
    this.hitView = w.dv;
    this.hitBytes = w.bytes;
    this.hitOffset = wo;
    return true;
  }

  locateGpa(addr: number, len: number): boolean {
    if (!(addr >= 0 && addr <= Number.MAX_SAFE_INTEGER)) return false;
    const r = this.findGpa(addr);
    return this.locateIn(r, r === null ? 0 : addr - r.guestPhysAddr, len);
  }

  locateUva(addr: number, len: number): boolean {
    if (!(addr >= 0 && addr <= Number.MAX_SAFE_INTEGER)) return false;
    const r = this.findUva(addr);
    return this.locateIn(r, r === null ? 0 : addr - r.userAddr, len);
  }

  gpaToViews(addr: number, len: number, out: Uint8Array[]): boolean {
    if (!(addr >= 0 && addr <= Number.MAX_SAFE_INTEGER)) return false;
    // Fibonacci hashing of the address (bits above 4 GiB folded in): page-aligned buffers spread too.
    const slot = Math.imul((addr >>> 0) ^ (addr / 0x1_0000_0000), 0x9e3779b1) >>> (32 - VIEW_CACHE_BITS);
    if (this.cacheAddr[slot] === addr && this.cacheLen[slot] === len) {
      out.push(this.cacheView[slot]);
      return true;
    }
    if (this.locateGpa(addr, len)) {
      // One mapping holds it all (the usual case): one view, remembered.
      const v = this.hitBytes.subarray(this.hitOffset, this.hitOffset + len);
      this.cacheAddr[slot] = addr;
      this.cacheLen[slot] = len;
      this.cacheView[slot] = v;
      out.push(v);
      return true;
    }
    while (len > 0) {
      const r = this.findGpa(addr);
      if (r === null) return false;
      const off = addr - r.guestPhysAddr;
      const inRegion = Math.min(len, r.size - off);
      let done = 0;
      while (done < inRegion) {
        const w = r.windowAt(off + done);
        const wo = off + done - w.start;
        const take = Math.min(inRegion - done, w.len - wo);
        out.push(w.bytes.subarray(wo, wo + take));
        done += take;
      }
      len -= inRegion;
      // addr + inRegion ≤ region end < 2^53: exact.
      addr += inRegion;
    }
    return true;
  }

  /** Contiguous view of guest-physical [addr, addr+len), or null. */
  gpaToView(addr: number, len: number): Uint8Array | null {
    if (!this.locateGpa(addr, len)) return null;
    return this.hitBytes.subarray(this.hitOffset, this.hitOffset + len);
  }

  /** Contiguous view of front-end virtual [addr, addr+len), or null. */
  uvaToView(addr: number, len: number): Uint8Array | null {
    if (!this.locateUva(addr, len)) return null;
    return this.hitBytes.subarray(this.hitOffset, this.hitOffset + len);
  }
}
