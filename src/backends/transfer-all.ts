// One rule for a read or write that moves fewer bytes than asked without an error, for every
// file and device the backends use: the rest is asked for again (preadv/pwritev may stop
// early at a signal, a page or IOV_MAX boundary, or a disk that just filled, whose next call
// then names ENOSPC); a call that moves nothing (end of file or device) fails with a
// ShortTransferError, an EIO with the position and counts.
import fs from 'node:fs';
import { ZbdError } from '../errors.js';
import { iovSlice, type IoVec } from '../iovec.js';
import type { FileIo } from './file-io.js';

export type TransferDir = 'read' | 'write';

/** What moves the bytes: a FileIo, or plain preadv/pwritev. */
export type Mover = Pick<FileIo, 'read' | 'write'>;

/** The file or device moved no bytes (or, for O_DIRECT, a part of a block) without an error: an EIO. */
export class ShortTransferError extends ZbdError {
  readonly errno = 5;
  readonly errnoName = 'EIO';
  constructor(dir: TransferDir, pos: number, n: number, wanted: number) {
    super('EDEVICE', `short ${dir} at byte ${pos}: ${n} of ${wanted} bytes`, { pos, n, wanted });
  }
}

/**
 * Move all `bytes` of iov at byte position pos, then cb(null), or cb(err) with the first error.
 * `unit`: a count that is not a multiple of it is an error too (O_DIRECT: the rest would be
 * misaligned). The whole transfer in one call, the usual case, costs no more than the call.
 */
export function transferAll(mover: Mover, dir: TransferDir, fd: number, iov: IoVec, pos: number, bytes: number,
  cb: (err: Error | null) => void, unit = 1): void {
  const done = (err: Error | null, n: number): void => {
    if (err) cb(err);
    else if (n === bytes) cb(null);
    else if (n <= 0 || n > bytes || n % unit !== 0) cb(new ShortTransferError(dir, pos, n, bytes));
    else transferAll(mover, dir, fd, iovSlice(iov, n, bytes), pos + n, bytes - n, cb, unit);
  };
  if (dir === 'read') mover.read(fd, iov, pos, done);
  else mover.write(fd, iov, pos, done);
}

/** transferAll as a promise. */
export function transferAllAsync(mover: Mover, dir: TransferDir, fd: number, iov: IoVec, pos: number, bytes: number, unit = 1): Promise<void> {
  return new Promise((resolve, reject) => transferAll(mover, dir, fd, iov, pos, bytes, (err) => (err ? reject(err) : resolve()), unit));
}

/** pread all of buf at pos, by the same rule. */
export function readAllSync(fd: number, buf: Uint8Array, pos: number): void {
  for (let done = 0; done < buf.byteLength;) {
    const n = fs.readSync(fd, buf, done, buf.byteLength - done, pos + done);
    if (n <= 0) throw new ShortTransferError('read', pos + done, n, buf.byteLength - done);
    done += n;
  }
}

/** pwrite all of buf at pos, by the same rule. */
export function writeAllSync(fd: number, buf: Uint8Array, pos: number): void {
  for (let done = 0; done < buf.byteLength;) {
    const n = fs.writeSync(fd, buf, done, buf.byteLength - done, pos + done);
    if (n <= 0) throw new ShortTransferError('write', pos + done, n, buf.byteLength - done);
    done += n;
  }
}
