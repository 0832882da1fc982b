// A popped descriptor chain. The queue keeps one object per head index and reuses it, so the
// hot path allocates only the guest-memory views themselves.
import { clearArray } from '../iovec.js';
import type { DescChain } from './device.js';

export class PooledChain implements DescChain {
  readonly head: number;
  readonly readable: Uint8Array[] = [];
  readonly writable: Uint8Array[] = [];
  readableBytes = 0;
  writableBytes = 0;
  error: string | null = null;
  /** Popped and not yet pushed. */
  inFlight = false;
  /** Generation of the ring that popped it: a push after a ring restart is ignored. */
  epoch = 0;

  /** The queue that pools it (push checks a chain comes back to its own queue). */
  readonly owner: object;

  constructor(owner: object, head: number) {
    this.owner = owner;
    this.head = head;
  }

  reset(): void {
    clearArray(this.readable);
    clearArray(this.writable);
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.error = null;
  }
}
