// Any error a command ends with, as the one line a user reads, and its exit status: what
// failed (command, path, reason) and, where there is one, what to do. 2 = usage error, 1 =
// the operation failed. Only an error we did not expect keeps its stack: that is a bug.
import path from 'node:path';
import { ZbdError } from '../errors.js';
import { describeHostError, errnoNameOf, formatBytes, type HostFileErrorValue } from '../backends/host-file-error.js';
import { flagForError } from './image-commands.js';

export interface ErrorLine { line: string; code: number }

/** Commands that write the image they are given (so permission and read-only advice differ). */
const WRITERS = new Set(['create', 'zone', 'serve']);

/** A size as --size takes it: the largest unit that divides it exactly. */
function sizeFlag(bytes: number): string {
  for (const [u, m] of [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (bytes >= m && bytes % m === 0) return `${bytes / m}${u}`;
  }
  return String(bytes);
}

/** What the user can do about errno `errno` met by `command` on `file`; undefined when nothing useful can be said. */
export function hostErrorAdvice(
  errno: string, command: string, file: string, value: Partial<HostFileErrorValue> & Record<string, unknown> = {},
): string | undefined {
  const writes = WRITERS.has(command) || value.syscall === 'write';
  switch (errno) {
    case 'ENOENT':
      if (command === 'create') return 'create the directory first, or give a path in an existing one';
      return /\.img$|image/.test(file) || command !== 'serve'
        ? "check the path; an image is made with 'vhost-user-zbd create IMG --size S --zone-size Z'"
        : 'check the path';
    case 'ENOTDIR': return 'fix the path: a file stands where a directory is needed';
    case 'EACCES':
    case 'EPERM':
      if (command === 'create') return 'choose a directory you may write in, or change its permissions';
      return `check its permissions (ls -l ${file}): ${writes ? 'this command reads and writes it' : 'this command only reads it'}`;
    case 'EROFS':
      if (command === 'create') return 'choose a directory on a writable filesystem';
      if (command === 'serve') return 'serve it with --read-only, or move the image to a writable filesystem';
      return 'copy the image to a writable filesystem (or remount this one read-write)';
    case 'ENOSPC':
      if (command === 'create' && typeof value.neededBytes === 'number') {
        return 'free space, choose a smaller --size, or use --preallocation off (sparse: space is taken as zones are written)';
      }
      return 'free space on that filesystem, or use another one';
    case 'EDQUOT': return 'free space within your quota, or ask for a larger one';
    case 'EFBIG': {
      const max = typeof value.maxSizeBytes === 'number' ? value.maxSizeBytes : undefined;
      if (value.limitBy === 'ulimit') return `raise the limit (ulimit -f unlimited)${max ? `, or choose --size ${sizeFlag(max)} or less` : ''}`;
      return `${max ? `choose --size ${sizeFlag(max)} (${formatBytes(max)}) or less, ` : 'choose a smaller --size, '}or put the image on XFS or btrfs (files up to 8 EiB); see "Image size and filesystems" in the README`;
    }
    case 'ELOOP': return `find the loop with: namei -l ${file}`;
    case 'EISDIR': return `name an image file, e.g. ${path.join(file, 'disk.img')}`;
    case 'EOPNOTSUPP':
      return value.preallocation ? 'use --preallocation full (writes zeroes) or off (sparse)' : undefined;
    default: return undefined;
  }
}

/** What to do when the host refuses the --socket path. */
function socketAdvice(errno: string): string | undefined {
  switch (errno) {
    case 'ENOENT': case 'ENOTDIR': return "create the socket's directory first, or choose another --socket path";
    case 'EACCES': case 'EPERM': case 'EROFS': return 'choose a --socket path in a directory you may write in';
    case 'ENAMETOOLONG': return 'choose a shorter --socket path (a Unix socket path holds at most 107 bytes)';
    default: return undefined;
  }
}

/** What to do when the host refuses a --device. */
function deviceAdvice(errno: string): string | undefined {
  switch (errno) {
    case 'ENOENT': case 'ENXIO': case 'ENODEV': return 'check the device path (lsblk lists the block devices)';
    case 'EACCES': case 'EPERM': return 'run as root, or as a user allowed to open the device (the disk group)';
    case 'EBUSY': return 'the device is in use (mounted, or opened exclusively by another process): release it first';
    case 'EROFS': return 'serve it with --read-only';
    default: return undefined;
  }
}

function withAdvice(prefix: string, reason: string, advice: string | undefined): string {
  return `${prefix}: ${reason}${advice ? `; ${advice}` : ''}`;
}

/**
 * The line for `err`, which ended `command`. `userPath` is the path the command was given
 * (image, socket, device), named when a host error does not carry one.
 */
export function errorLine(command: string | undefined, err: unknown, userPath?: string): ErrorLine {
  const prefix = `vhost-user-zbd${command ? ` ${command}` : ''}`;
  if (err instanceof ZbdError) {
    if (err.code === 'EHOST') {
      const v = (err.value ?? {}) as HostFileErrorValue & Record<string, unknown>;
      return { line: withAdvice(prefix, err.reason, hostErrorAdvice(v.errno, command ?? '', v.file ?? userPath ?? '', v)), code: 1 };
    }
    if (err.code === 'EIMAGELOCK') {
      return { line: withAdvice(prefix, err.reason, `stop that process first (a served image cannot be ${command === 'report' || command === 'check' ? 'read' : 'opened'} by another command meanwhile)`), code: 1 };
    }
    // A socket or device the host refused: the cause carries the errno.
    const causeErrno = errnoNameOf(err.cause) ?? errnoNameOf(err);
    if (err.code === 'ESOCKET' && causeErrno) return { line: withAdvice(prefix, err.message, socketAdvice(causeErrno)), code: 1 };
    if ((err.code === 'ENATIVE' || err.code === 'EDEVICE') && causeErrno) return { line: withAdvice(prefix, err.message, deviceAdvice(causeErrno)), code: 1 };
    const flag = flagForError(err);
    return { line: `${prefix}: ${flag ? `${flag}: ` : ''}${err.message}`, code: err.code === 'EARG' || err.code === 'EZONEGEOM' ? 2 : 1 };
  }
  // yargs wraps errors thrown by option coercion (our EARG checks) in a YError: usage errors.
  if (err instanceof Error && err.name === 'YError') return { line: `${prefix}: ${err.message}`, code: 2 };
  // A host error that reached us unexplained: still one line, naming the path.
  const errno = errnoNameOf(err);
  if (errno) {
    const file = (err as NodeJS.ErrnoException).path ?? userPath ?? '';
    const syscall = (err as NodeJS.ErrnoException).syscall;
    const reason = `${syscall ? `${syscall} ` : ''}${file}: ${describeHostError(errno, 'open', file)} (${errno})`;
    return { line: withAdvice(prefix, reason, hostErrorAdvice(errno, command ?? '', file)), code: 1 };
  }
  const stack = err instanceof Error ? err.stack ?? err.message : String(err);
  return { line: `${prefix}: internal error (a bug: please report it with this output): ${stack}`, code: 1 };
}
