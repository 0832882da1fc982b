// Output gathered into chunks of 64 KiB for one write each, and handed on only as fast as
// the destination takes it: a report into a pipe read by `less` or `grep` waits for the
// reader instead of queueing the whole report in memory. Writers put bytes straight into
// the chunk (buf at pos) after ensure(), or add() text.
import type { Out } from './image-commands.js';

/** Bytes gathered before a write: one pipe buffer's worth. */
const CHUNK = 64 * 1024;

export class OutputBatch {
  /** The chunk being filled; write at `pos`, then advance `pos`. */
  buf: Buffer = Buffer.allocUnsafeSlow(CHUNK);
  pos = 0;
  private pending: Promise<void> | undefined;
  /** Chunks the destination is done with, for reuse: a fresh 64 KiB per chunk costs a GC every few hundred. */
  private readonly free: Buffer[] = [];

  constructor(private readonly out: Out) {}

  /** Make room for n more bytes at pos (n ≤ 64 KiB), handing the full chunk on if needed. */
  ensure(n: number): void {
    if (this.pos + n > CHUNK) this.writeOut();
  }

  add(text: string): void {
    const max = Buffer.byteLength(text);
    if (max > CHUNK) {
      this.writeOut();
      this.send(Buffer.from(text));
      return;
    }
    this.ensure(max);
    this.pos += this.buf.write(text, this.pos);
  }

  /** Hand on what is gathered; resolves when the destination takes more (at once unless it is full). */
  async flush(): Promise<void> {
    if (this.pos > 0) this.writeOut();
    while (this.pending) await this.pending;
    // A destination that never asks for a pause (a file: synchronous writes) still reports
    // its chunks written on a later tick: let it, so they come back for reuse instead of
    // piling up behind a report that never yields.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private writeOut(): void {
    if (this.pos === 0) return;
    const full = this.buf;
    // The destination may keep the chunk until written: fill another meanwhile.
    this.buf = this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    const n = this.pos;
    this.pos = 0;
    this.send(full.subarray(0, n), () => { if (this.free.length < 4) this.free.push(full); });
  }

  private send(chunk: Uint8Array, written?: () => void): void {
    const p = this.out.write(chunk, written);
    if (p) {
      const mine: Promise<void> = p.then(() => { if (this.pending === mine) this.pending = undefined; });
      this.pending = mine;
    }
  }
}
