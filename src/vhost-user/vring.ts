// Per-queue vhost-user state (spec §5.4): what the front-end configured (size, addresses,
// base, kick/call/err fds) and the two independent switches started/stopped and
// enabled/disabled. The split ring itself lives in virtio/ and only sees memory and a call fd.
import type { Logger } from 'pino';
import { closeFd, FdPoller, readCounter } from '../native/index.js';
import { SplitRing, type SplitRingAddrs } from '../virtio/split-ring.js';

export class Vring {
  readonly index: number;
  readonly log: Logger;
  /** SET_VRING_NUM (0 = not set). */
  num = 0;
  addrs: SplitRingAddrs | null = null;
  /** Next avail index to use when the ring starts (SET_VRING_BASE, or where it stopped). */
  base = 0;
  kickFd = -1;
  callFd = -1;
  errFd = -1;
  /** Started by SET_VRING_KICK, stopped by GET_VRING_BASE / reset / disconnect. */
  started = false;
  /** SET_VRING_ENABLE, or all enabled by SET_FEATURES without bit 30. */
  enabled = false;
  ring: SplitRing | null = null;
  private kickPoller: FdPoller | null = null;

  constructor(index: number, log: Logger) {
    this.index = index;
    this.log = log;
  }

  /** Installs the kick fd and polls it; `onKick` runs after the eventfd counter is cleared. */
  setKickFd(fd: number, onKick: () => void): void {
    this.clearKick();
    this.kickFd = fd;
    this.kickPoller = new FdPoller(fd, 'r', (err) => {
      if (err) {
        this.log.error({ err: String(err) }, 'kick fd poll error; kicks ignored until a new SET_VRING_KICK');
        this.clearKick();
        return;
      }
      // Reading clears the eventfd counter (or consumes 8 bytes from a socket) so the
      // level-triggered poll does not fire again for the same kick.
      const v = readCounterSafe(fd);
      if (v < 0) {
        this.log.warn('kick fd reached EOF; kicks ignored until a new SET_VRING_KICK');
        this.clearKick();
        return;
      }
      onKick();
    });
  }

  clearKick(): void {
    this.kickPoller?.stop();
    this.kickPoller = null;
    if (this.kickFd >= 0) closeFd(this.kickFd);
    this.kickFd = -1;
  }

  setCallFd(fd: number): void {
    if (this.callFd >= 0) closeFd(this.callFd);
    this.callFd = fd;
    if (this.ring) this.ring.callFd = fd;
  }

  setErrFd(fd: number): void {
    if (this.errFd >= 0) closeFd(this.errFd);
    this.errFd = fd;
  }

  /** Ring may be popped: started, enabled and not broken. */
  updateActive(): boolean {
    const r = this.ring;
    if (!r) return false;
    r.active = this.started && this.enabled;
    return r.active && r.broken === null;
  }

  /** Closes every fd; the ring forgets its memory. */
  dispose(): void {
    this.clearKick();
    this.setCallFd(-1);
    this.setErrFd(-1);
    this.started = false;
    if (this.ring) {
      this.ring.active = false;
      this.ring.detach();
    }
  }
}

function readCounterSafe(fd: number): number {
  try {
    return readCounter(fd);
  } catch {
    return -1;
  }
}
