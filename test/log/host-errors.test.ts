// Error lines like a production daemon's: expected host errors as code and message without a
// stack, unexpected ones with it, repeats rate-limited and summarised (src/log.ts,
// src/rate-limiter.ts).
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { errorLineHook, errorLineLimiter, hostErrorFacts } from '../../src/log.js';
import { NativeError } from '../../src/native/index.js';
import { RateLimiter, type RateSummary } from '../../src/rate-limiter.js';

function fsError(code: string, errno: number, syscall = 'write'): NodeJS.ErrnoException {
  const e = new Error(`${code}: failure, ${syscall}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = syscall;
  return e;
}

function logger(): { log: pino.Logger; lines: Array<Record<string, unknown>>; clock: { t: number }; limiter: ReturnType<typeof errorLineLimiter> } {
  const lines: Array<Record<string, unknown>> = [];
  const clock = { t: 0 };
  const limiter = errorLineLimiter({ now: () => clock.t, timer: false });
  const sink = new Writable({ write(c: Buffer, _e, cb) { for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); cb(); } });
  return { log: pino({ level: 'debug', hooks: { logMethod: errorLineHook(limiter) } }, sink), lines, clock, limiter };
}

describe('rate limiter', () => {
  it('passes a burst per key, counts the rest, summarises per window while they repeat, starts over after a quiet window', () => {
    let t = 0;
    const sums: Array<RateSummary<string>> = [];
    const rl = new RateLimiter<string>({ windowMs: 5000, burst: 3, now: () => t, timer: false, onSummary: (s) => sums.push(s) });
    const passed = (n: number, key = 'a'): number => { let p = 0; for (let i = 0; i < n; i++) if (rl.admit(key, `ctx${i}`)) p++; return p; };
    expect(passed(1000)).toBe(3);
    expect(passed(2, 'b')).toBe(2);
    t = 5000;
    expect(passed(10)).toBe(0);          // the flood goes on: no more lines, only summaries
    expect(sums).toEqual([{ key: 'a', count: 1000, suppressed: 997, windowMs: 5000, elapsedMs: 5000, context: 'ctx0' }]);
    t = 10_000;
    rl.admit('c', 'x');
    expect(passed(0)).toBe(0);
    t = 16_000;                            // a 5 s window without 'a' ends its episode
    expect(passed(1)).toBe(1);
    expect(sums.map((s) => [s.key, s.count, s.suppressed])).toEqual([['a', 1000, 997], ['a', 10, 10]]);
    rl.flush();
    expect(sums).toHaveLength(2);          // nothing was held back since
  });
});

describe('error lines', () => {
  it('an expected host error: code and message with the request context, no stack', () => {
    const { log, lines } = logger();
    log.error({ err: fsError('ENOSPC', 28), sector: 4096, bytes: 8192, queue: 0 }, 'write failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, code: 'ENOSPC', errno: 28, sector: 4096, bytes: 8192, queue: 0, msg: 'write failed: ENOSPC (no space left on device)' });
    expect(JSON.stringify(lines[0])).not.toMatch(/stack|at /);
    // The addon's errors too.
    log.error({ err: new NativeError('pwritev', 5, 'io_uring tag=3'), sector: 8 }, 'read failed');
    expect(lines[1]).toMatchObject({ code: 'EIO', errno: 5, msg: 'read failed: EIO (i/o error)' });
    expect(lines[1].err).toBeUndefined();
  });

  it('an unexpected error keeps its stack', () => {
    const { log, lines } = logger();
    log.error({ err: new TypeError('cannot read x of undefined'), sector: 1 }, 'request failed unexpectedly');
    log.error({ err: fsError('EBADF', 9) }, 'flush failed');
    expect((lines[0].err as { stack: string }).stack).toMatch(/TypeError: cannot read x of undefined\n\s+at /);
    expect((lines[1].err as { stack: string }).stack).toMatch(/EBADF/);
  });

  it('60 000 identical ENOSPC failures in 4 s are 3 lines and one summary; other errors are counted apart', () => {
    const { log, lines, clock, limiter } = logger();
    for (let i = 0; i < 60_000; i++) {
      clock.t = Math.floor(i / 15);       // 4 s
      log.error({ err: fsError('ENOSPC', 28), sector: i * 8 }, 'write failed');
      if (i % 10_000 === 0) log.error({ err: fsError('EIO', 5, 'read'), sector: i }, 'read failed');
    }
    log.info('unrelated lines pass untouched');
    limiter.flush();
    expect(lines.map((l) => l.msg)).toEqual([
      'write failed: ENOSPC (no space left on device)', 'read failed: EIO (i/o error)',
      'write failed: ENOSPC (no space left on device)', 'write failed: ENOSPC (no space left on device)',
      'read failed: EIO (i/o error)', 'read failed: EIO (i/o error)',
      'unrelated lines pass untouched',
      'write failed: ENOSPC (no space left on device): 60000 times in the last 4 s',
      'read failed: EIO (i/o error): 6 times in the last 4 s',
    ]);
    expect(lines[7]).toMatchObject({ code: 'ENOSPC', occurrences: 60000, suppressed: 59997, sector: 0 });
  });

  it('knows errno facts from Node and addon errors only', () => {
    expect(hostErrorFacts(fsError('EDQUOT', 122))).toEqual({ code: 'EDQUOT', errno: 122, description: 'disk quota exceeded' });
    expect(hostErrorFacts(new Error('plain'))).toBeNull();
  });
});
