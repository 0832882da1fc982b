// What a virtqueue needs from guest memory. The vhost-user memory table implements it; the
// split ring only depends on this interface, so virtio/ does not import vhost-user/.

export interface GuestMemory {
  /**
   * Finds [addr, addr+len) in one contiguous mapping, addr being guest-physical (descriptor
   * addresses). On success returns true and sets hitView/hitOffset/hitBytes; false when any
   * byte is outside guest memory or the range is not contiguous in our mappings.
   * Allocation-free: hot-path descriptor and ring reads go through here.
   */
  locateGpa(addr: number, len: number): boolean;
  /** Same for front-end user virtual addresses (ring addresses from SET_VRING_ADDR). */
  locateUva(addr: number, len: number): boolean;
  /** DataView over the whole mapping found by the last successful locate*(). */
  readonly hitView: DataView;
  /** Byte offset of the located address inside hitView / hitBytes. */
  readonly hitOffset: number;
  /** Uint8Array over the same whole mapping as hitView. */
  readonly hitBytes: Uint8Array;
  /**
   * Appends views covering guest-physical [addr, addr+len) to `out` (several when the range
   * crosses regions or mapping windows). Returns false if any byte is outside guest memory
   * (views already appended stay; the caller discards them).
   */
  gpaToViews(addr: number, len: number, out: Uint8Array[]): boolean;
}
