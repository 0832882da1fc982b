// Where an emulated zoned disk keeps its bytes and its zone table. The zone logic lives in
// EmulatedBackend; a Storage only moves bytes (memory chunks or an image file).
import type { IoVec } from './backend.js';
import type { PersistedZoneState } from '../zoned/zone-table.js';

export interface Storage {
  /** Fill iov with the bytes at byteOffset (never-written bytes read as zero). */
  readv(byteOffset: number, iov: IoVec): Promise<void>;
  /** Write iov at byteOffset; resolves once the bytes survive a crash of this process. */
  writev(byteOffset: number, iov: IoVec): Promise<void>;
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
