// Where an emulated zoned disk keeps its bytes and its zone table. The zone logic lives in
// EmulatedBackend; a Storage only moves bytes (memory chunks or an image file).
import type { IoVec } from '../iovec.js';
import type { PersistedZoneState } from '../zoned/zone-table.js';

/** How a read or write issued in the callback form ends. */
export type StorageCallback = (err: Error | null) => void;

export interface Storage {
  /**
   * Fill iov with the bytes at byteOffset (never-written bytes read as zero). No Promise:
   * this is the request path. The transfer may wait in a queue until flush(), and `done`
   * may run inside this call, inside flush(), or later.
   */
  read(byteOffset: number, iov: IoVec, done: StorageCallback): void;
  /** Write iov at byteOffset; `done` once the bytes survive a crash of this process. */
  write(byteOffset: number, iov: IoVec, done: StorageCallback): void;
  /** Start the transfers queued so far and run the callbacks of those already done. */
  flush(): void;
  /** Make everything written so far durable against power loss. */
  sync(): Promise<void>;
  /**
   * The range holds no data any more (zone reset): free its space. May run in the
   * background; the caller issues no write into the range until it settles.
   */
  discard(byteOffset: number, length: number): Promise<void>;
  /** Persist one zone's state; synchronous and atomic per zone. */
  persistZone(zone: number, state: PersistedZoneState): void;
  close(): Promise<void>;
}
