import { afterEach, describe, expect, it } from 'vitest';
import { closeFd, memfdCreate, mmap, munmap, pageSize } from '../../src/native/index.js';
import { MemoryTable } from '../../src/vhost-user/memory-table.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

const PAGE = pageSize();
const GPA = 0x1_0000_0000;
const UVA = 0x7f55_0000_0000;

describe('memory table', () => {
  const images: GuestMemoryImage[] = [];
  const tables: MemoryTable[] = [];
  afterEach(() => {
    for (const t of tables.splice(0)) for (const r of t.clear()) r.unmap();
    for (const i of images.splice(0)) i.close();
  });

  function setup(specs: ConstructorParameters<typeof GuestMemoryImage>[0], opts = {}): { img: GuestMemoryImage; t: MemoryTable } {
    const img = new GuestMemoryImage(specs);
    images.push(img);
    const t = new MemoryTable(opts);
    tables.push(t);
    t.replaceAll(img.regions.map((r) => t.mapRegion(r, r.fd)));
    return { img, t };
  }

  it('translates guest-physical and user addresses to the same bytes', () => {
    const { img, t } = setup([{ guestPhysAddr: GPA, userAddr: UVA, size: 1 << 20 }]);
    img.write(GPA + 100, Uint8Array.of(1, 2, 3));
    expect(Array.from(t.gpaToView(GPA + 100, 3)!)).toEqual([1, 2, 3]);
    expect(Array.from(t.uvaToView(UVA + 100, 3)!)).toEqual([1, 2, 3]);
    // The other address space's numbers do not translate.
    expect(t.gpaToView(UVA + 100, 3)).toBeNull();
    expect(t.uvaToView(GPA + 100, 3)).toBeNull();
    // Writes through the back-end's view reach the front-end's mapping.
    t.gpaToView(GPA + 200, 1)![0] = 0xee;
    expect(img.read(GPA + 200, 1)[0]).toBe(0xee);
  });

  it('checks bounds at both ends without overflow', () => {
    const { t } = setup([{ guestPhysAddr: GPA, userAddr: UVA, size: 1 << 20 }]);
    expect(t.gpaToView(GPA - 1, 1)).toBeNull();
    expect(t.gpaToView(GPA + (1 << 20) - 4, 4)).not.toBeNull();
    expect(t.gpaToView(GPA + (1 << 20) - 4, 5)).toBeNull();
    expect(t.gpaToView(GPA + (1 << 20), 1)).toBeNull();
    expect(t.gpaToView(GPA, 0xffff_ffff)).toBeNull();
    expect(t.gpaToViews(GPA + 10, 2 ** 52, [])).toBe(false);
    expect(t.gpaToViews(Number.MAX_SAFE_INTEGER, 1, [])).toBe(false);
    expect(t.gpaToViews(2 ** 60, 1, [])).toBe(false);
    expect(t.gpaToViews(-1, 1, [])).toBe(false);
  });

  it('honours a page-unaligned mmap_offset', () => {
    const { img, t } = setup([{ guestPhysAddr: GPA, userAddr: UVA, size: 8 * PAGE, mmapOffset: PAGE + 512, guardAfter: PAGE }]);
    img.write(GPA, Uint8Array.of(9, 8, 7));
    expect(Array.from(t.gpaToView(GPA, 3)!)).toEqual([9, 8, 7]);
    expect(t.gpaToView(GPA + 8 * PAGE - 1, 1)![0]).toBe(0);
    expect(t.gpaToView(GPA + 8 * PAGE, 1)).toBeNull();
  });

  it('maps large regions in overlapping windows and splits ranges that exceed one window', () => {
    const size = 10 * PAGE;
    const { img, t } = setup([{ guestPhysAddr: GPA, userAddr: UVA, size }], { windowSize: 2 * PAGE, windowOverlap: 256 });
    expect(t.regions[0].windowCount).toBe(5);
    const pattern = new Uint8Array(size);
    for (let i = 0; i < size; i++) pattern[i] = (i * 31 + 7) & 0xff;
    img.write(GPA, pattern);
    // Within the overlap after a window boundary: still one contiguous view.
    expect(t.gpaToView(GPA + 2 * PAGE - 100, 300)).not.toBeNull();
    // Longer than the overlap allows: not contiguous, but gpaToViews splits it.
    expect(t.gpaToView(GPA + 2 * PAGE - 100, 400)).toBeNull();
    for (const [start, len] of [[0, size], [2 * PAGE - 100, 400], [1, 3 * PAGE], [PAGE, 6 * PAGE + 17], [size - 5, 5]]) {
      const views: Uint8Array[] = [];
      expect(t.gpaToViews(GPA + start, len, views)).toBe(true);
      const joined = new Uint8Array(len);
      let at = 0;
      for (const v of views) { joined.set(v, at); at += v.length; }
      expect(at).toBe(len);
      expect(joined).toEqual(pattern.subarray(start, start + len));
    }
    const all: Uint8Array[] = [];
    t.gpaToViews(GPA, size, all);
    expect(all.length).toBeGreaterThan(1);
    // Windows with a page-unaligned region offset map correctly too.
    expect(t.gpaToViews(GPA, size + 1, [])).toBe(false);
  });

  it('maps a region larger than 4 GiB with the default windows', () => {
    const GiB = 1024 ** 3;
    const size = 5 * GiB; // sparse memfd: only touched pages cost memory
    const fd = memfdCreate('big-guest', size);
    const t = new MemoryTable();
    try {
      const r = t.mapRegion({ guestPhysAddr: GPA, userAddr: UVA, size, mmapOffset: 0 }, fd);
      t.add(r);
      expect(r.windowCount).toBe(3);
      // The front-end writes markers through its own small mappings.
      const marks: Array<[number, number]> = [[0, 1], [2 * GiB - 1, 2], [4 * GiB + 5, 3], [size - 1, 4]];
      for (const [off, v] of marks) {
        const base = off - (off % PAGE);
        const ab = mmap(fd, base, PAGE);
        new Uint8Array(ab)[off - base] = v;
        munmap(ab);
      }
      for (const [off, v] of marks) {
        expect(t.gpaToView(GPA + off, 1)![0]).toBe(v);
        expect(t.uvaToView(UVA + off, 1)![0]).toBe(v);
      }
      // Within the 1 MiB overlap past a window start: contiguous.
      expect(t.gpaToView(GPA + 4 * GiB - 10, 20)).not.toBeNull();
      // Longer than the overlap: split into two views that hold the markers.
      const views: Uint8Array[] = [];
      const KiB = 1024;
      expect(t.gpaToViews(GPA + 4 * GiB - 512 * KiB, 2048 * KiB, views)).toBe(true);
      expect(views.map((v) => v.length)).toEqual([1536 * KiB, 512 * KiB]); // window 1 ends 1 MiB past 4 GiB
      expect(views[0][512 * KiB + 5]).toBe(3);
      expect(t.gpaToView(GPA + size - 1, 2)).toBeNull();
    } finally {
      for (const r of t.clear()) r.unmap();
      closeFd(fd);
    }
  });

  it('splits ranges across adjacent regions and refuses gaps', () => {
    const { img, t } = setup([
      { guestPhysAddr: GPA, userAddr: UVA, size: 4 * PAGE },
      { guestPhysAddr: GPA + 4 * PAGE, userAddr: UVA + 0x1000_0000, size: 4 * PAGE },
      { guestPhysAddr: GPA + 16 * PAGE, userAddr: UVA + 0x2000_0000, size: 4 * PAGE },
    ]);
    const data = new Uint8Array(2 * PAGE).map((_, i) => i & 0xff);
    img.write(GPA + 3 * PAGE, data);
    const views: Uint8Array[] = [];
    expect(t.gpaToViews(GPA + 3 * PAGE, 2 * PAGE, views)).toBe(true);
    expect(views.map((v) => v.length)).toEqual([PAGE, PAGE]);
    expect(views[0]).toEqual(data.subarray(0, PAGE));
    expect(views[1]).toEqual(data.subarray(PAGE));
    expect(t.gpaToView(GPA + 3 * PAGE, 2 * PAGE)).toBeNull(); // not contiguous for rings
    expect(t.gpaToViews(GPA + 7 * PAGE, 2 * PAGE, [])).toBe(false); // hole after region 2
  });

  it('adds and removes regions, and rejects overlaps', () => {
    const img = new GuestMemoryImage([
      { guestPhysAddr: GPA, userAddr: UVA, size: 4 * PAGE },
      { guestPhysAddr: GPA + 8 * PAGE, userAddr: UVA + 8 * PAGE, size: 4 * PAGE },
    ]);
    images.push(img);
    const t = new MemoryTable();
    tables.push(t);
    const [a, b] = img.regions;
    t.add(t.mapRegion(a, a.fd));
    expect(t.gpaToView(GPA + 8 * PAGE, 1)).toBeNull();
    const rb = t.mapRegion(b, b.fd);
    t.add(rb);
    expect(t.gpaToView(GPA + 8 * PAGE, 1)).not.toBeNull();
    const dup = t.mapRegion({ ...b, userAddr: UVA + 0x100_0000 }, b.fd);
    expect(() => t.add(dup)).toThrow(/overlaps/);
    dup.unmap();
    const uvaDup = t.mapRegion({ ...b, guestPhysAddr: GPA + 64 * PAGE }, b.fd);
    expect(() => t.add(uvaDup)).toThrow(/uva .* overlaps/);
    uvaDup.unmap();
    const view = t.gpaToView(GPA + 8 * PAGE, 16)!;
    expect(t.remove({ ...b, userAddr: 1 })).toBeNull();
    const removed = t.remove(b)!;
    expect(removed).toBe(rb);
    expect(t.gpaToView(GPA + 8 * PAGE, 1)).toBeNull();
    removed.unmap();
    // Unmapping detaches every view handed out: no access to freed memory is possible.
    expect(view.length).toBe(0);
    expect(t.regions).toHaveLength(1);
  });

  it('hands out a remembered view for a buffer seen before, and none of a region that left the table', () => {
    const { img, t } = setup([{ guestPhysAddr: GPA, userAddr: UVA, size: 1 << 20 }]);
    img.write(GPA + 4096, Uint8Array.of(1, 2, 3, 4));
    const a: Uint8Array[] = [];
    expect(t.gpaToViews(GPA + 4096, 4, a)).toBe(true);
    expect(t.gpaToViews(GPA + 4096, 4, a)).toBe(true);
    // The same object the second time (no new typed array), over the same guest bytes.
    expect(a[1]).toBe(a[0]);
    expect(Array.from(a[1])).toEqual([1, 2, 3, 4]);
    // Another length at the same address is another buffer.
    expect(t.gpaToViews(GPA + 4096, 2, a)).toBe(true);
    expect(a[2]).not.toBe(a[0]);
    expect(a[2].byteLength).toBe(2);
    // Many page-aligned buffers: each still translates to its own bytes.
    for (let i = 0; i < 200; i++) img.write(GPA + i * 4096 + 8, Uint8Array.of(i & 0xff));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 200; i++) {
        const out: Uint8Array[] = [];
        expect(t.gpaToViews(GPA + i * 4096 + 8, 1, out)).toBe(true);
        expect(out[0][0]).toBe(i & 0xff);
      }
    }
    // A new memory table at the same guest addresses: views come from the new mapping, and
    // the old region, once unmapped, is never reached through a remembered view.
    const img2 = new GuestMemoryImage([{ guestPhysAddr: GPA, userAddr: UVA, size: 1 << 20 }]);
    images.push(img2);
    img2.write(GPA + 4096, Uint8Array.of(9, 9, 9, 9));
    for (const r of t.replaceAll(img2.regions.map((r) => t.mapRegion(r, r.fd)))) r.unmap();
    expect(a[0].byteLength).toBe(0);
    const b: Uint8Array[] = [];
    expect(t.gpaToViews(GPA + 4096, 4, b)).toBe(true);
    expect(b[0] === a[0]).toBe(false);
    expect(Array.from(b[0])).toEqual([9, 9, 9, 9]);
    // And a removed region's addresses no longer translate at all.
    for (const r of t.clear()) r.unmap();
    expect(t.gpaToViews(GPA + 4096, 4, [])).toBe(false);
  });

  it('rejects windows that are not page multiples or exceed 4 GiB', () => {
    expect(() => new MemoryTable({ windowSize: PAGE + 1 })).toThrow(/multiple of the page size/);
    expect(() => new MemoryTable({ windowSize: 4 * 1024 ** 3 })).toThrow(/exceeds 4 GiB/);
  });

  it('reports a mapping the kernel refuses as a protocol error', () => {
    const img = new GuestMemoryImage([{ guestPhysAddr: GPA, userAddr: UVA, size: 4 * PAGE }]);
    images.push(img);
    const t = new MemoryTable();
    // fd that is not open: mmap fails with EBADF.
    expect(() => t.mapRegion(img.regions[0], 999_999)).toThrow(/EPROTO: cannot map region/);
  });
});
