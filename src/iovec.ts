// Scatter/gather lists over guest-memory views, shared by virtio/, blk/ and backends/.
// Views are sliced, never copied.

/** Scatter/gather list: views into mapped guest memory, never copies. */
export type IoVec = readonly Uint8Array[];

/**
 * Empties a reused array, keeping its storage. `a.length = 0` is a runtime call that also
 * frees the backing store, so the next push grows it again: twice per request on the ring.
 */
export function clearArray(a: unknown[]): void {
  while (a.length > 0) a.pop();
}

export function iovBytes(iov: IoVec): number {
  let n = 0;
  for (const b of iov) n += b.byteLength;
  return n;
}

/** Views covering bytes [from, to) of iov (to ≤ total). */
export function iovSlice(iov: IoVec, from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  for (const b of iov) {
    const end = pos + b.byteLength;
    if (end > from && pos < to) {
      out.push(b.subarray(Math.max(from - pos, 0), Math.min(to, end) - pos));
    }
    pos = end;
    if (pos >= to) break;
  }
  return out;
}

/**
 * iovSlice into a caller's array (emptied first), so a request reuses one array; buffers
 * wholly inside the range go in as they are, without a new view.
 */
export function iovSliceInto(out: Uint8Array[], iov: IoVec, from: number, to: number): Uint8Array[] {
  clearArray(out);
  let pos = 0;
  for (const b of iov) {
    const end = pos + b.byteLength;
    if (end > from && pos < to) {
      out.push(pos >= from && end <= to ? b : b.subarray(Math.max(from - pos, 0), Math.min(to, end) - pos));
    }
    pos = end;
    if (pos >= to) break;
  }
  return out;
}

export function iovFill(iov: IoVec, value: number): void {
  for (const b of iov) b.fill(value);
}

/** Copy `src` into iov starting at byte `offset` of the iov; returns bytes copied. */
export function iovWrite(iov: IoVec, offset: number, src: Uint8Array): number {
  return iovCopy(iov, offset, src, true);
}

/** Copy bytes [offset, offset+dst.length) of iov into dst; returns bytes copied. */
export function iovRead(iov: IoVec, offset: number, dst: Uint8Array): number {
  return iovCopy(iov, offset, dst, false);
}

/** Copies between `flat` and the iov bytes from `offset` on, in either direction. */
function iovCopy(iov: IoVec, offset: number, flat: Uint8Array, intoIov: boolean): number {
  let pos = 0, done = 0;
  for (const b of iov) {
    const end = pos + b.byteLength;
    if (end > offset && done < flat.byteLength) {
      const at = Math.max(offset - pos, 0);
      const n = Math.min(b.byteLength - at, flat.byteLength - done);
      if (intoIov) b.set(n === flat.byteLength ? flat : flat.subarray(done, done + n), at);
      else flat.set(n === b.byteLength ? b : b.subarray(at, at + n), done);
      done += n;
    }
    pos = end;
  }
  return done;
}
