// A failed system call on a file the user named, in words: which of the user's paths, what
// the host refused and why. The CLI adds what to do about it (cli/error-line.ts); the
// errno travels in the value so code can act on it.
import fs from 'node:fs';
import path from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { ZbdError } from '../errors.js';
import { filesystemOf } from './host-filesystem.js';

export interface HostFileErrorValue {
  /** The path as the user gave it (never a temporary name of ours). */
  file: string;
  /** Errno name, e.g. 'ENOENT'. */
  errno: string;
  syscall?: string;
}

/** Errno name of a failure from Node fs (err.code) or the addon (NativeError.errnoName); undefined for other errors. */
export function errnoNameOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; errnoName?: unknown; syscall?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.errnoName === 'string') return e.errnoName;
  if (typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.syscall === 'string') return e.code;
  return undefined;
}

/** The first component of `file`'s directory that is missing or not a directory, with what is wrong with it. */
function brokenDirectory(file: string): { dir: string; problem: 'missing' | 'not a directory' } | null {
  const parts = path.resolve(file).split(path.sep).slice(1, -1);
  let dir: string = path.sep;
  for (const p of parts) {
    dir = path.join(dir, p);
    let st: fs.Stats;
    try { st = fs.statSync(dir); } catch { return { dir, problem: 'missing' }; }
    if (!st.isDirectory()) return { dir, problem: 'not a directory' };
  }
  return null;
}

const fmtBytes = (n: number): string => {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
};
export { fmtBytes as formatBytes };

/**
 * Why `action` on `file` failed, as a sentence; `err` must carry an errno (see errnoNameOf).
 * `action` reads after "cannot": 'create', 'open', 'write', 'read'.
 */
export function describeHostError(errno: string, action: string, file: string): string {
  const dirOf = path.dirname(path.resolve(file));
  switch (errno) {
    case 'ENOENT': {
      const b = brokenDirectory(file);
      if (b?.problem === 'missing') return `directory ${b.dir} does not exist`;
      return 'no such file';
    }
    case 'ENOTDIR': {
      const b = brokenDirectory(file);
      return b ? `${b.dir} is not a directory` : 'a component of the path is not a directory';
    }
    case 'EACCES':
    case 'EPERM':
      return action === 'create' ? `permission denied (writing in directory ${dirOf})` : 'permission denied';
    case 'EROFS': return 'the filesystem is mounted read-only';
    case 'ENOSPC': {
      const fsf = filesystemOf(fs.existsSync(file) ? file : dirOf);
      return `no space left on the filesystem${fsf ? ` (${fsf.name}, ${fmtBytes(fsf.freeBytes)} free)` : ''}`;
    }
    case 'EDQUOT': return 'disk quota exceeded on the filesystem';
    case 'EFBIG': return 'file too large for the filesystem';
    case 'ELOOP': return 'too many levels of symbolic links (a symlink loop)';
    case 'EISDIR': return 'it is a directory, not an image file';
    case 'EIO': return 'I/O error from the host device';
    case 'ENAMETOOLONG': return 'file name too long';
    default: {
      const entry = [...getSystemErrorMap().values()].find(([name]) => name === errno);
      return entry ? entry[1] : errno;
    }
  }
}

/** A ZbdError('EHOST') for a failed system call `err` doing `action` on the user's `file`. */
export function hostFileError(err: unknown, action: string, file: string, detail?: string): ZbdError {
  const errno = errnoNameOf(err);
  if (!errno) return err instanceof ZbdError ? err : new ZbdError('EHOST', `cannot ${action} ${file}: ${(err as Error).message}`, { file, errno: 'unknown' }, { cause: err });
  const syscall = (err as { syscall?: string }).syscall;
  const value: HostFileErrorValue = { file, errno, syscall };
  return new ZbdError('EHOST', `cannot ${action} ${file}: ${detail ?? describeHostError(errno, action, file)} (${errno})`, value, { cause: err });
}

/** Rethrow anything from `fn` that carries an errno as hostFileError(action, file). */
export function onHostFile<T>(action: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ZbdError && !errnoNameOf(err)) throw err;
    throw hostFileError(err, action, file);
  }
}
