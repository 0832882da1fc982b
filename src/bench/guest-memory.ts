// Guest RAM of the benchmark's front-end: one memfd mapped here and handed to the daemon in
// SET_MEM_TABLE as a single region, like a small VM's RAM. Rings, request headers and data
// buffers are carved out of it once with a bump allocator; nothing is allocated per request.
import { closeFd, memfdCreate, mmap, munmap, pageSize } from '../native/index.js';
import type { MemRegionDesc } from '../vhost-user/messages.js';

/**
 * Front-end "user addresses" (what QEMU would send as its own virtual addresses of the ring
 * areas). Any value works as long as it differs from the guest-physical one: daemons that
 * confuse the two address spaces then fail loudly instead of silently.
 */
const UVA_BASE = 0x7f00_0000_0000;

export class BenchMemory {
  readonly fd: number;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  private readonly mapping: ArrayBuffer;
  private next = 0;

  constructor(size: number) {
    const page = pageSize();
    this.size = Math.ceil(size / page) * page;
    this.fd = memfdCreate('vuzbd-bench-guest', this.size);
    this.mapping = mmap(this.fd, 0, this.size, true);
    this.bytes = new Uint8Array(this.mapping);
    this.dv = new DataView(this.mapping);
  }

  /** Guest-physical address of len fresh bytes aligned to align (gpa == offset in the memfd). */
  alloc(len: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + len > this.size) throw new Error(`bench guest memory exhausted: ${len} bytes at ${at} of ${this.size}`);
    this.next = at + len;
    return at;
  }

  uva(gpa: number): number { return UVA_BASE + gpa; }

  get region(): MemRegionDesc {
    return { guestPhysAddr: 0, size: this.size, userAddr: UVA_BASE, mmapOffset: 0 };
  }

  close(): void {
    munmap(this.mapping);
    closeFd(this.fd);
  }
}
