// Errors that carry a stable code and the offending value, so callers (CLI, logs, tests)
// can act on the code and a user can read the message.

export type ErrorCode =
  | 'EZONEGEOM'    // invalid zone geometry (field named in the message)
  | 'EIMAGE'       // image file header / table invalid
  | 'EIMAGELOCK'   // image already opened by another process
  | 'EIMAGEEXIST'  // create would overwrite an existing image
  | 'EARG'         // invalid command-line / API argument
  | 'ENATIVE'      // native addon failure
  | 'EPROTO'       // vhost-user protocol violation by the front-end
  | 'EGUEST'       // guest supplied invalid ring / descriptor data
  | 'EDEVICE'      // host block device unsuitable or failing
  | 'ESOCKET'      // socket path unusable
  | 'EHOST';       // a system call on a user's file failed (errno in the value; the message names the file)

export class ZbdError extends Error {
  readonly code: ErrorCode;
  readonly value: unknown;
  /** The message without the code, for lines that name the cause in words. */
  readonly reason: string;
  constructor(code: ErrorCode, message: string, value?: unknown, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'ZbdError';
    this.reason = message;
    this.code = code;
    this.value = value;
  }
}
