// Contract between the transport (vhost-user/ + virtio/ split rings) and a device model (blk/).
// The transport owns rings and memory; the device only sees descriptor chains as byte views.

/** One popped descriptor chain. Objects are pooled by the queue: do not keep a reference
 * after push(). */
export interface DescChain {
  /** Head descriptor index (the id pushed to the used ring). */
  readonly head: number;
  /** Device-readable buffers in chain order (views into guest memory). */
  readonly readable: Uint8Array[];
  /** Device-writable buffers in chain order (views into guest memory). */
  readonly writable: Uint8Array[];
  readonly readableBytes: number;
  readonly writableBytes: number;
  /**
   * Non-null when the chain is malformed (loop, bad address, readable after writable, too
   * long...). The buffers then hold only what was validated before the fault; the device
   * completes it with an error status if it can and pushes it.
   */
  readonly error: string | null;
}

export interface VirtQueueHandle {
  readonly index: number;
  readonly size: number;
  /**
   * Next available chain or null when the ring is empty, stopped, disabled or stopped by a
   * guest bug. Pop until null on every queueKicked(): the null-returning call re-arms guest
   * kicks (EVENT_IDX avail_event) and re-checks for a request added meanwhile.
   */
  pop(): DescChain | null;
  /**
   * Return a chain to the guest with the number of bytes written to its writable part
   * (clamped to writableBytes). Every popped chain must be pushed exactly once, malformed
   * ones included; the chain's views are cleared here. Throws on a double push (device bug).
   */
  push(chain: DescChain, writtenBytes: number): void;
  /**
   * Publish pushed entries (used.idx) and signal the guest if it wants it (EVENT_IDX /
   * NO_INTERRUPT aware). Call after a batch of push: nothing is visible to the guest before.
   */
  notify(): void;
}

export interface VirtioDevice {
  /** Virtio device id (2 = block). */
  readonly deviceId: number;
  /** Device feature bits offered (transport bits VERSION_1, INDIRECT_DESC, EVENT_IDX included). */
  readonly deviceFeatures: bigint;
  readonly numQueues: number;
  /** Max queue size the device accepts. */
  readonly maxQueueSize: number;
  /** Config space bytes [offset, offset+length) (length ≤ config size; short read zero-padded). */
  readConfig(offset: number, length: number): Uint8Array;
  /** Driver write to config space (only writable fields take effect). */
  writeConfig(offset: number, data: Uint8Array): void;
  /** Features the driver acknowledged (SET_FEATURES). */
  setDriverFeatures(features: bigint): void;
  /** Queue q became runnable (started + enabled) or was kicked: drain it. */
  queueKicked(queue: VirtQueueHandle): void;
  /** Wait until every request popped from queue q has been pushed. */
  drainQueue(q: number): Promise<void>;
  /** Device reset (RESET_DEVICE, front-end disconnect): forget negotiated state, keep data. */
  reset(): void;
}
