// One front-end session: the ordered message queue, the replies, and teardown (spec §5.1-5.2).
// Messages are handled strictly in order; the few asynchronous ones (GET_VRING_BASE,
// RESET_DEVICE, RESET_OWNER wait for in-flight requests) hold the queue. What a message means
// is request-handler.ts; the state it changes is device-handler.ts. A bad message is logged
// once, answered with a failure if the front-end asked for a reply, and never ends the
// session: only a hang-up or lost framing does.
import type { Logger } from 'pino';
import type { BusyPoll } from '../busy-poll.js';
import { ZbdError } from '../errors.js';
import { closeFd } from '../native/index.js';
import type { VirtioDevice } from '../virtio/device.js';
import { MessageChannel } from './channel.js';
import { DeviceHandler } from './device-handler.js';
import type { MemoryTable, MemoryTableOptions } from './memory-table.js';
import {
  encodeMessage, encodeU64, FLAG_NEED_REPLY, hasOwnReply, ProtocolFeature, REPLY_FLAGS, requestName, VERSION,
  VERSION_MASK, type VhostUserMessage,
} from './messages.js';
import { handleRequest, type Reply } from './request-handler.js';
import type { Vring } from './vring.js';

const EMPTY = new Uint8Array(0);

export interface SessionOptions {
  fd: number;
  id: number;
  device: VirtioDevice;
  log: Logger;
  memory?: MemoryTableOptions;
  maxChainBytes?: number;
  /** Busy polling of the queues between kicks (shared by the server's sessions). */
  poll?: BusyPoll;
  /** Called once after teardown finished (rings drained, memory unmapped, device reset). */
  onClosed?: (session: FrontendSession, reason: string) => void;
}

export class FrontendSession {
  readonly id: number;
  readonly log: Logger;
  readonly handler: DeviceHandler;
  private readonly channel: MessageChannel;
  private readonly onClosed?: (session: FrontendSession, reason: string) => void;
  private readonly queue: VhostUserMessage[] = [];
  private pumping = false;
  private closing = false;
  private closedPromise: Promise<void> | null = null;
  /** Messages handled (for tests and debug logs). */
  messagesHandled = 0;

  constructor(opts: SessionOptions) {
    this.id = opts.id;
    this.log = opts.log;
    this.onClosed = opts.onClosed;
    this.handler = new DeviceHandler({ device: opts.device, log: opts.log, memory: opts.memory,
      maxChainBytes: opts.maxChainBytes, poll: opts.poll });
    this.channel = new MessageChannel(opts.fd, {
      onMessage: (m) => this.enqueue(m),
      onClose: (reason) => {
        this.close(reason).catch((err: unknown) => this.log.error({ err }, 'session teardown failed'));
      },
    }, this.log);
  }

  get closed(): boolean { return this.closing; }
  get device(): VirtioDevice { return this.handler.device; }
  get vrings(): readonly Vring[] { return this.handler.vrings; }
  get memory(): MemoryTable { return this.handler.memory.table; }
  get negotiatedFeatures(): bigint { return this.handler.negotiatedFeatures; }
  get negotiatedProtocolFeatures(): bigint { return this.handler.negotiatedProtocolFeatures; }

  /** Config space changed: tell the front-end if it gave us a back-end channel. */
  notifyConfigChanged(): boolean {
    return !this.closing && this.handler.notifyConfigChanged();
  }

  // --- message queue ---------------------------------------------------------------------------

  private enqueue(m: VhostUserMessage): void {
    if (this.closing) { closeFds(m); return; }
    this.queue.push(m);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.closing) {
        const m = this.queue.shift()!;
        try {
          const r = this.process(m);
          // Only asynchronous handlers cost a microtask turn; the rest stay synchronous.
          if (r !== undefined) await r;
        } catch (err) {
          // Only a bug can get here (handlers' errors become replies); keep serving.
          this.log.error({ err, req: requestName(m.request) }, 'internal error while handling a message');
        }
      }
    } finally {
      this.pumping = false;
      if (this.closing) for (const m of this.queue.splice(0)) closeFds(m);
    }
  }

  private process(m: VhostUserMessage): Promise<void> | undefined {
    this.messagesHandled++;
    this.log.debug({ req: requestName(m.request), size: m.payload.length, fds: m.fds.length, flags: m.flags }, 'message');
    let result: ReturnType<typeof handleRequest>;
    try {
      if ((m.flags & VERSION_MASK) !== VERSION) {
        throw new ZbdError('EPROTO', `${requestName(m.request)}: header version ${m.flags & VERSION_MASK} != 1`, m.flags);
      }
      result = handleRequest(m, this.handler);
    } catch (err) {
      this.finish(m, err);
      return undefined;
    }
    if (result instanceof Promise) {
      return result.then((r) => this.finish(m, null, r), (err) => this.finish(m, err));
    }
    this.finish(m, null, result);
    return undefined;
  }

  /** Sends the reply (own payload, REPLY_ACK, or failure) and closes fds nobody took. */
  private finish(m: VhostUserMessage, err: unknown, reply: Reply | null = null): void {
    closeFds(m);
    const own = hasOwnReply(m.request);
    const ack = (m.flags & FLAG_NEED_REPLY) !== 0 && this.handler.hasProtocol(ProtocolFeature.REPLY_ACK);
    if (err) {
      const e = err as Error & { code?: string };
      this.log.error({ req: requestName(m.request), code: e.code, size: m.payload.length, fds: m.fds.length },
        `message rejected: ${e.message}`);
      // A request that always has a reply gets an empty one so the front-end fails instead of waiting.
      if (own) this.reply(m.request, EMPTY);
      else if (ack) this.reply(m.request, encodeU64(1));
      return;
    }
    if (own) this.reply(m.request, reply ?? EMPTY);
    else if (ack) this.reply(m.request, encodeU64(0));
  }

  private reply(request: number, r: Reply): void {
    if (this.closing) return;
    if (r instanceof Uint8Array) this.channel.send(encodeMessage(request, REPLY_FLAGS, r));
    else this.channel.send(encodeMessage(request, REPLY_FLAGS, r.payload), r.fds);
  }

  // --- teardown ----------------------------------------------------------------------------

  /**
   * Ends the session (front-end hung up, or shutdown): stop every ring, wait for in-flight
   * requests, unmap memory, close fds, reset the device. Idempotent.
   */
  close(reason = 'closed by back-end'): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closing = true;
    this.log.info({ reason }, 'front-end session ending');
    this.channel.close();
    const step = (what: string, f: () => void): void => {
      try { f(); } catch (err) { this.log.error({ err }, `teardown: ${what} failed`); }
    };
    this.closedPromise = (async () => {
      await this.handler.shutdown(step);
      for (const m of this.queue.splice(0)) step('queued fds', () => closeFds(m));
      this.log.info('front-end session closed');
      step('close callback', () => this.onClosed?.(this, reason));
    })();
    return this.closedPromise;
  }
}

/** Closes the fds of a message that no handler took (handOverFd clears what it gives away). */
function closeFds(m: VhostUserMessage): void {
  for (let i = 0; i < m.fds.length; i++) {
    if (m.fds[i] >= 0) closeFd(m.fds[i]);
    m.fds[i] = -1;
  }
}
