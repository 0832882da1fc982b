// Guest RAM as a front-end (QEMU) holds it, for the tests and the benchmark: memfd-backed
// regions mapped here, each with a guest-physical base and a different "user address" (like
// QEMU's HVA), so back-end code that confuses the two address spaces fails loudly. A bump
// allocator hands out rings and buffers once; nothing is allocated per request.
import { closeFd, memfdCreate, mmap, munmap, pageSize } from '../native/index.js';
import type { MemRegionDesc } from '../vhost-user/messages.js';

export interface RegionSpec {
  guestPhysAddr: number;
  userAddr: number;
  size: number;
  /** Where the region starts in its memfd (bytes before it are a guard area). */
  mmapOffset?: number;
  /** Guard bytes after the region inside the memfd. */
  guardAfter?: number;
}

export interface ImageRegion extends MemRegionDesc {
  fd: number;
  /** Whole memfd mapping (guards included). */
  file: Uint8Array;
  /** The region bytes only. */
  bytes: Uint8Array;
  dv: DataView;
}

export const GUARD_BYTE = 0xa5;

export class GuestMemoryImage {
  readonly regions: ImageRegion[] = [];
  private readonly mappings: ArrayBuffer[] = [];
  private sharedFd = -1;
  private next: number;

  /**
   * With `shareFd`, all regions live in one memfd one after the other (mmapOffset of each is
   * its place in the file), the way QEMU splits one RAM backend below and above 4 GiB.
   */
  constructor(specs: RegionSpec[], opts: { shareFd?: boolean } = {}) {
    if (opts.shareFd) {
      let fileSize = 0;
      for (const s of specs) fileSize += s.size;
      const fd = memfdCreate('vuzbd-guest-shared', fileSize);
      const ab = mmap(fd, 0, fileSize, true);
      this.mappings.push(ab);
      this.sharedFd = fd;
      let off = 0;
      for (const s of specs) {
        this.regions.push({
          guestPhysAddr: s.guestPhysAddr, userAddr: s.userAddr, size: s.size, mmapOffset: off, fd,
          file: new Uint8Array(ab), bytes: new Uint8Array(ab, off, s.size), dv: new DataView(ab, off, s.size),
        });
        off += s.size;
      }
      this.regions.sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
      this.next = this.regions[0].guestPhysAddr;
      return;
    }
    for (const [i, s] of specs.entries()) {
      const off = s.mmapOffset ?? 0;
      const fileSize = off + s.size + (s.guardAfter ?? 0);
      const fd = memfdCreate(`vuzbd-guest-${i}`, fileSize);
      const ab = mmap(fd, 0, fileSize, true);
      this.mappings.push(ab);
      const file = new Uint8Array(ab);
      // Guards hold a pattern a test can check after hostile input.
      file.fill(GUARD_BYTE, 0, off);
      file.fill(GUARD_BYTE, off + s.size);
      this.regions.push({
        guestPhysAddr: s.guestPhysAddr, userAddr: s.userAddr, size: s.size, mmapOffset: off, fd, file,
        bytes: new Uint8Array(ab, off, s.size), dv: new DataView(ab, off, s.size),
      });
    }
    this.regions.sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
    this.next = this.regions[0].guestPhysAddr;
  }

  /**
   * Single-region image, user address elsewhere. The default gpa (4 GiB) catches 32-bit
   * truncation; the benchmark puts its RAM at gpa 0 so a gpa is an offset into `bytes`.
   */
  static simple(size = 16 * 1024 * 1024, guestPhysAddr = 0x1_0000_0000): GuestMemoryImage {
    const page = pageSize();
    return new GuestMemoryImage([{ guestPhysAddr, userAddr: 0x7f12_3400_0000, size: Math.ceil(size / page) * page }]);
  }

  get descs(): MemRegionDesc[] {
    return this.regions.map((r) => ({ guestPhysAddr: r.guestPhysAddr, size: r.size, userAddr: r.userAddr,
      mmapOffset: r.mmapOffset }));
  }

  get fds(): number[] { return this.regions.map((r) => r.fd); }

  region(gpa: number): ImageRegion {
    const r = this.regions.find((x) => gpa >= x.guestPhysAddr && gpa < x.guestPhysAddr + x.size);
    if (!r) throw new Error(`gpa 0x${gpa.toString(16)} not in guest memory`);
    return r;
  }

  gpaToUva(gpa: number): number {
    const r = this.region(gpa);
    return r.userAddr + (gpa - r.guestPhysAddr);
  }

  /** Allocates len bytes inside one region (moving to the next region if needed). */
  alloc(len: number, align = 16): number {
    for (;;) {
      let a = Math.ceil(this.next / align) * align;
      const r = this.regions.find((x) => a >= x.guestPhysAddr && a < x.guestPhysAddr + x.size);
      if (r && a + len <= r.guestPhysAddr + r.size) {
        this.next = a + len;
        return a;
      }
      const later = this.regions.find((x) => x.guestPhysAddr > a);
      if (!later) throw new Error(`guest memory exhausted (${len} bytes)`);
      a = later.guestPhysAddr;
      this.next = a;
    }
  }

  /** Writes bytes at gpa (may cross into an adjacent region). */
  write(gpa: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const r = this.region(gpa + done);
      const off = gpa + done - r.guestPhysAddr;
      const take = Math.min(data.length - done, r.size - off);
      r.bytes.set(data.subarray(done, done + take), off);
      done += take;
    }
  }

  read(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const r = this.region(gpa + done);
      const off = gpa + done - r.guestPhysAddr;
      const take = Math.min(len - done, r.size - off);
      out.set(r.bytes.subarray(off, off + take), done);
      done += take;
    }
    return out;
  }

  /** DataView positioned so that offset 0 is gpa (within one region). */
  at(gpa: number): { dv: DataView; off: number } {
    const r = this.region(gpa);
    return { dv: r.dv, off: gpa - r.guestPhysAddr };
  }

  /** True if every guard byte still holds the pattern. */
  guardsIntact(): boolean {
    if (this.sharedFd >= 0) return true; // no guard areas in a shared file
    for (const r of this.regions) {
      for (let i = 0; i < r.mmapOffset; i++) if (r.file[i] !== GUARD_BYTE) return false;
      for (let i = r.mmapOffset + r.size; i < r.file.length; i++) if (r.file[i] !== GUARD_BYTE) return false;
    }
    return true;
  }

  close(): void {
    for (const ab of this.mappings.splice(0)) munmap(ab);
    if (this.sharedFd >= 0) closeFd(this.sharedFd);
    else for (const r of this.regions) closeFd(r.fd);
  }
}
