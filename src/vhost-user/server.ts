// The vhost-user back-end's listening socket: one front-end at a time (a VM), the next one
// accepted when the previous session is fully torn down (VM reboot, new VM, QEMU reconnect).
import { EventEmitter } from 'node:events';
import { lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { BusyPoll } from '../busy-poll.js';
import { ZbdError } from '../errors.js';
import { acceptUnix, closeFd, connectUnix, FdPoller, listenUnix } from '../native/index.js';
import type { VirtioDevice } from '../virtio/device.js';
import { assertLittleEndian } from '../virtio/split-ring.js';
import { FrontendSession } from './session.js';
import type { MemoryTableOptions } from './memory-table.js';

export interface VhostUserServerOptions {
  socketPath: string;
  device: VirtioDevice;
  logger: Logger;
  backlog?: number;
  memory?: MemoryTableOptions;
  maxChainBytes?: number;
  /**
   * Longest busy-poll window after serving a queue, µs (default 32, as QEMU's poll-max-ns;
   * 0: queues are served from kicks only). The window adapts between 0 and this.
   */
  pollMaxUs?: number;
}

/** QEMU's default poll-max-ns for an iothread is 32768. */
export const DEFAULT_POLL_MAX_US = 32;

/**
 * Events: 'connect' (conn), 'disconnect' (conn, reason) after a session's teardown finished.
 */
export class VhostUserServer extends EventEmitter {
  readonly socketPath: string;
  private readonly opts: VhostUserServerOptions;
  private readonly log: Logger;
  private listenFd = -1;
  private poller: FdPoller | null = null;
  private conn: FrontendSession | null = null;
  private nextId = 1;
  private closing: Promise<void> | null = null;
  /** One poller for the thread: every session's queues. */
  readonly poll: BusyPoll;

  constructor(opts: VhostUserServerOptions) {
    super();
    assertLittleEndian();
    this.opts = opts;
    this.socketPath = opts.socketPath;
    this.log = opts.logger;
    this.poll = new BusyPoll(opts.pollMaxUs ?? DEFAULT_POLL_MAX_US);
  }

  get connection(): FrontendSession | null { return this.conn; }
  get listening(): boolean { return this.listenFd >= 0; }

  /**
   * Creates the socket. Refuses a path where a live daemon answers or that is not a socket;
   * removes a stale socket file left by a crashed daemon.
   */
  listen(): void {
    if (this.listenFd >= 0 || this.closing) throw new ZbdError('EARG', 'server already listening or closed', this.socketPath);
    prepareSocketPath(this.socketPath, this.log);
    try {
      this.listenFd = listenUnix(this.socketPath, this.opts.backlog ?? 4);
    } catch (err) {
      throw new ZbdError('ESOCKET', `cannot listen on ${this.socketPath}: ${(err as Error).message}`, this.socketPath,
        { cause: err });
    }
    this.log.info({ socket: this.socketPath }, 'listening for a vhost-user front-end');
    this.resumeAccept();
  }

  private resumeAccept(): void {
    if (this.listenFd < 0 || this.poller || this.conn) return;
    this.poller = new FdPoller(this.listenFd, 'r', (err) => {
      if (err) { this.log.error({ err: String(err) }, 'listen socket poll error'); return; }
      this.acceptOne();
    });
  }

  private acceptOne(): void {
    if (this.conn || this.listenFd < 0) return;
    let fd: number;
    try {
      fd = acceptUnix(this.listenFd);
    } catch (err) {
      this.log.error({ err: String(err) }, 'accept failed');
      return;
    }
    if (fd < 0) return;
    // While a session runs, further front-ends wait in the listen backlog: a reconnecting
    // QEMU gets through as soon as its old session is torn down.
    this.poller?.stop();
    this.poller = null;
    const id = this.nextId++;
    const log = this.log.child({ conn: id });
    log.info('front-end connected');
    const conn = new FrontendSession({
      fd, id, device: this.opts.device, log, memory: this.opts.memory, maxChainBytes: this.opts.maxChainBytes,
      poll: this.poll,
      onClosed: (c, reason) => {
        if (this.conn === c) this.conn = null;
        this.emit('disconnect', c, reason);
        if (!this.closing) this.resumeAccept();
      },
    });
    this.conn = conn;
    this.emit('connect', conn);
  }

  /** Config space changed: tell the current front-end, if it gave us a back-end channel. */
  notifyConfigChanged(): boolean {
    return this.conn?.notifyConfigChanged() ?? false;
  }

  /** Shutdown: stop accepting, end the session (draining in-flight requests), remove the socket. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      this.poller?.stop();
      this.poller = null;
      if (this.listenFd >= 0) {
        closeFd(this.listenFd);
        this.listenFd = -1;
        try { unlinkSync(this.socketPath); } catch { /* already gone */ }
      }
      if (this.conn) await this.conn.close('daemon shutting down');
      this.log.info({ socket: this.socketPath }, 'vhost-user server closed');
    })();
    return this.closing;
  }
}

function prepareSocketPath(path: string, log: Logger): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ZbdError('ESOCKET', `cannot inspect socket path ${path}: ${(err as Error).message}`, path, { cause: err });
  }
  if (!isSocket) throw new ZbdError('ESOCKET', `${path} exists and is not a socket; not replacing it`, path);
  let fd = -1;
  try {
    fd = connectUnix(path);
  } catch (err) {
    const name = (err as { errnoName?: string }).errnoName;
    if (name !== 'ECONNREFUSED') {
      throw new ZbdError('ESOCKET', `cannot probe existing socket ${path}: ${(err as Error).message}`, path, { cause: err });
    }
    // Nobody accepts there: a previous daemon died without removing it.
    unlinkSync(path);
    log.info({ socket: path }, 'removed stale socket file');
    return;
  }
  closeFd(fd);
  throw new ZbdError('ESOCKET', `another daemon is already listening on ${path}`, path);
}
