// The one coercion of integer command-line flags (yargs `coerce`), for every command.
import { ZbdError } from '../errors.js';

/** A flag whose value must be a non-negative integer: EARG naming the flag and the value otherwise. */
export function nonNegativeIntOption(name: string): (v: unknown) => number | undefined {
  return (v: unknown): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new ZbdError('EARG', `${name} ${String(v)} is not a non-negative integer`, v);
    return n;
  };
}
