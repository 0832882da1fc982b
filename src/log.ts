// Structured logging (pino). Library code takes a Logger; only the CLI creates one.
//
// Lines that carry an error (`{ err }`) at warn level or above get the treatment a storage
// daemon's operator expects, in this one place for every layer:
// - an expected host error (ENOSPC, EIO, EDQUOT, EROFS: the disk or file system said no) is
//   logged as its code and message with the line's request context, without a stack;
// - any other error keeps its stack (a bug or a surprise worth reading);
// - identical ones repeating are rate-limited: a few lines, then one summary per 5 s window
//   ("write failed: ENOSPC (No space left on device): 60207 times in the last 5 s").
import { getSystemErrorMap } from 'node:util';
import { pino, type LevelWithSilent, type LogFn, type Logger } from 'pino';
import { RateLimiter, type RateSummary } from './rate-limiter.js';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Host errors that are the environment's answer, not a bug: no stack for them. */
export const EXPECTED_HOST_ERRORS: ReadonlySet<string> = new Set(['ENOSPC', 'EIO', 'EDQUOT', 'EROFS']);

export interface HostErrorFacts {
  /** Errno name, e.g. 'ENOSPC'. */
  code: string;
  errno: number;
  /** The system's description, e.g. 'No space left on device'. */
  description: string;
}

/** Errno facts of a failed system call (Node fs errors and the addon's NativeError alike), or null. */
export function hostErrorFacts(err: unknown): HostErrorFacts | null {
  const e = err as { errno?: unknown; code?: unknown; errnoName?: unknown } | null;
  if (e === null || typeof e !== 'object' || typeof e.errno !== 'number' || e.errno === 0) return null;
  // Node fs: errno negative, code the name; NativeError: errno positive, errnoName the name.
  const errno = Math.abs(e.errno);
  const known = systemErrors.get(-errno);
  const code = typeof e.errnoName === 'string' ? e.errnoName : typeof e.code === 'string' && e.code.startsWith('E') ? e.code : known?.[0];
  if (code === undefined) return null;
  return { code, errno, description: known?.[1] ?? EXTRA_DESCRIPTIONS[code] ?? code };
}

/** libuv's errno names and descriptions (built once: getSystemErrorMap() makes a new map per call). */
const systemErrors = getSystemErrorMap();
/** Errnos libuv does not describe. */
const EXTRA_DESCRIPTIONS: Readonly<Record<string, string>> = { EDQUOT: 'disk quota exceeded' };

/** What a suppressed line needs to be summarised later. */
interface LineContext { logger: Logger; method: LogFn; fields: Record<string, unknown>; msg: string }

const WARN = 40;

/** The summary line of a window: the first line's context, and how many there were. */
function summarise(s: RateSummary<LineContext>): void {
  const { logger, method, fields, msg } = s.context;
  const seconds = Math.max(0.1, Math.round(s.elapsedMs / 100) / 10);
  method.call(logger, { ...fields, occurrences: s.count, suppressed: s.suppressed, windowMs: s.elapsedMs }, `${msg}: ${s.count} times in the last ${seconds} s`);
}

/**
 * pino's logMethod hook doing the above; one limiter per logger tree. Exported for tests
 * (createLogger installs it).
 */
export function errorLineHook(limiter: RateLimiter<LineContext>) {
  return function logMethod(this: Logger, args: Parameters<LogFn>, method: LogFn, level: number): void {
    const obj = args[0] as unknown;
    if (level < WARN || obj === null || typeof obj !== 'object' || !('err' in obj)) { method.apply(this, args); return; }
    const { err, ...rest } = obj as Record<string, unknown> & { err: unknown };
    const text = typeof args[1] === 'string' ? args[1] : '';
    const host = hostErrorFacts(err);
    if (host !== null && EXPECTED_HOST_ERRORS.has(host.code)) {
      const fields = { ...rest, code: host.code, errno: host.errno };
      const msg = `${text}: ${host.code} (${host.description})`;
      if (limiter.admit(`${level} ${msg}`, { logger: this, method, fields, msg })) method.call(this, fields, msg);
      return;
    }
    const why = err instanceof Error ? err.message : String(err);
    // The summary names the error; the lines that pass carry it whole, stack included.
    if (limiter.admit(`${level} ${text} ${why}`, { logger: this, method, fields: rest, msg: `${text} (${why})` })) method.apply(this, args);
  };
}

/** A limiter for error lines: 3 lines of a kind, then one summary per 5 s while they repeat. */
export function errorLineLimiter(opts: { windowMs?: number; burst?: number; now?: () => number; timer?: boolean } = {}): RateLimiter<LineContext> {
  return new RateLimiter<LineContext>({ ...opts, onSummary: summarise });
}

/** JSON lines on stderr (stdout stays free for command output); pretty when a person watches. */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stderr.isTTY): Logger {
  const limiter = errorLineLimiter();
  const hooks = { logMethod: errorLineHook(limiter) };
  const log = pretty
    ? pino({ level, base: { name: 'vhost-user-zbd' }, hooks }, pino.transport({
      target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' },
    }))
    : pino({ level, base: { name: 'vhost-user-zbd', pid: process.pid }, hooks }, pino.destination({ dest: 2, sync: true }));
  // Whoever flushes the log before exiting also gets the summaries still counting.
  const flush = log.flush.bind(log);
  log.flush = ((cb?: (err?: Error) => void) => { limiter.flush(); flush(cb); }) as typeof log.flush;
  return log;
}
