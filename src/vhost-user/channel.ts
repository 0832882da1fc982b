// Framing of vhost-user messages on a nonblocking Unix stream socket (spec §5.1), shared by the
// back-end and the test front-end. fds travel as SCM_RIGHTS with the first byte of a header;
// reading exactly one header, then exactly its payload, keeps fds of the next message from
// being received with this one. A message may arrive over several reads.
import type { Logger } from 'pino';
import { closeFd, FdPoller, recvMsg, sendMsg } from '../native/index.js';
import { decodeHeader, HEADER_SIZE, MAX_FDS, MAX_PAYLOAD, requestName, type VhostUserMessage } from './messages.js';

export interface ChannelHandlers {
  onMessage(msg: VhostUserMessage): void;
  /** Called once when the peer hung up, the socket failed or framing was lost. */
  onClose(reason: string): void;
}

interface Pending { bytes: Uint8Array; fds: number[] | undefined }

export class MessageChannel {
  readonly fd: number;
  private readonly handlers: ChannelHandlers;
  private readonly log: Logger;
  private poller: FdPoller | null;
  private isClosed = false;
  private readonly header = new Uint8Array(HEADER_SIZE);
  private payload = new Uint8Array(0);
  private inPayload = false;
  private got = 0;
  private request = 0;
  private flags = 0;
  private readonly fdScratch = new Int32Array(MAX_FDS * 2);
  private fds: number[] = [];
  private backlog: Pending[] = [];

  constructor(fd: number, handlers: ChannelHandlers, log: Logger) {
    this.fd = fd;
    this.handlers = handlers;
    this.log = log;
    this.poller = new FdPoller(fd, 'r', (err, readable, writable) => {
      if (err) { this.fail(`socket poll error: ${String(err)}`); return; }
      if (writable) this.flushBacklog();
      if (readable) this.readAvailable();
    });
  }

  get closed(): boolean { return this.isClosed; }

  private readAvailable(): void {
    while (!this.isClosed) {
      const target = this.inPayload ? this.payload.subarray(this.got) : this.header.subarray(this.got);
      this.fdScratch.fill(-1);
      let n: number;
      try {
        n = recvMsg(this.fd, target, this.fdScratch);
      } catch (err) {
        this.fail(`recvmsg failed: ${(err as Error).message}`);
        return;
      }
      for (let i = 0; i < this.fdScratch.length; i++) {
        const f = this.fdScratch[i];
        if (f >= 0) this.fds.push(f);
      }
      if (n < 0) return; // EAGAIN
      if (n === 0) { this.fail('peer closed the connection'); return; }
      this.got += n;
      if (!this.inPayload) {
        if (this.got < HEADER_SIZE) continue;
        const h = decodeHeader(this.header);
        this.request = h.request;
        this.flags = h.flags;
        if (h.size > MAX_PAYLOAD) {
          // We cannot know where the next message starts without trusting this size.
          this.fail(`${requestName(h.request)} announces a ${h.size}-byte payload (max ${MAX_PAYLOAD})`);
          return;
        }
        this.got = 0;
        this.payload = new Uint8Array(h.size);
        this.inPayload = true;
        if (h.size > 0) continue;
      } else if (this.got < this.payload.length) {
        continue;
      }
      const msg: VhostUserMessage = { request: this.request, flags: this.flags, payload: this.payload, fds: this.fds };
      this.fds = [];
      this.inPayload = false;
      this.got = 0;
      this.handlers.onMessage(msg);
    }
  }

  /** Queues bytes (+ fds with the first byte) for sending; never blocks. */
  send(bytes: Uint8Array, fds?: number[]): void {
    if (this.isClosed) return;
    if (this.backlog.length > 0) { this.backlog.push({ bytes, fds }); return; }
    const rest = this.trySend(bytes, fds);
    if (rest !== null) {
      this.backlog.push(rest);
      this.poller?.setEvents('rw');
    }
  }

  /** Returns what could not be sent, or null when all went out. */
  private trySend(bytes: Uint8Array, fds: number[] | undefined): Pending | null {
    let n: number;
    try {
      n = sendMsg(this.fd, bytes, fds && fds.length > 0 ? fds : undefined);
    } catch (err) {
      this.fail(`sendmsg failed: ${(err as Error).message}`);
      return null;
    }
    if (n < 0) return { bytes, fds };
    if (n >= bytes.length) return null;
    // fds went with the first byte that was sent.
    return { bytes: bytes.subarray(n), fds: n > 0 ? undefined : fds };
  }

  private flushBacklog(): void {
    while (this.backlog.length > 0 && !this.isClosed) {
      const head = this.backlog[0];
      const rest = this.trySend(head.bytes, head.fds);
      if (rest !== null) { this.backlog[0] = rest; return; }
      this.backlog.shift();
    }
    if (!this.isClosed) this.poller?.setEvents('r');
  }

  private fail(reason: string): void {
    if (this.isClosed) return;
    this.log.debug({ reason }, 'channel closing');
    this.close();
    this.handlers.onClose(reason);
  }

  /** Stops polling and closes the socket and any fds of a half-read message. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.poller?.stop();
    this.poller = null;
    for (const f of this.fds) closeFd(f);
    this.fds = [];
    this.backlog = [];
    closeFd(this.fd);
  }

  /** Keep the event loop alive only while the caller wants (tests unref clients). */
  unref(): void { this.poller?.unref(); }
}
