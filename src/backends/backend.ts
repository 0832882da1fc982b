// The one interface every backend (file emulation, host zoned device, memory) implements.
// blk/ calls it; it never sees descriptors, only byte views of guest memory (iovecs).
import type { ZoneCond, ZoneOp, ZoneResult, ZoneSink, ZoneType } from '../zoned/types.js';
import type { IoVec } from '../iovec.js';

/** Zone reports go to a ZoneSink (defined with the zone vocabulary; re-exported for the users of this interface). */
export type { ZoneSink };

export interface ZonedInfo {
  /** Zone size in 512-byte sectors (power of two). */
  zoneSectors: number;
  /** Writable capacity of each sequential zone, sectors (≤ zoneSectors). */
  zoneCapacitySectors: number;
  nrZones: number;
  conventionalZones: number;
  /** 0 = unlimited. */
  maxOpenZones: number;
  /** 0 = unlimited. */
  maxActiveZones: number;
  maxAppendSectors: number;
}

export interface BackendInfo {
  /** Device size in 512-byte sectors. */
  capacitySectors: number;
  /** Logical block size in bytes (512 or 4096); also the zoned write granularity. */
  blockSize: number;
  /** Physical block size in bytes (≥ blockSize). */
  physicalBlockSize: number;
  readOnly: boolean;
  /** Up to 20 ASCII bytes, stable for the same image/device (virtio GET_ID). */
  serial: string;
  /** null for a regular (non-zoned) disk. */
  zoned: ZonedInfo | null;
}

/** One zone as reported (all values in 512-byte sectors). */
export interface ZoneDescriptor {
  start: number;
  len: number;
  cap: number;
  wp: number;
  type: ZoneType;
  cond: ZoneCond;
}

export interface AppendResult {
  result: ZoneResult;
  /** Sector where the data landed; meaningful only when result is OK. */
  sector: number;
}

/** How a read or write issued in the callback form ends. */
export type ResultCallback = (r: ZoneResult) => void;
/** How a zone append issued in the callback form ends: where the data landed when OK. */
export type AppendCallback = (r: ZoneResult, sector: number) => void;

export interface Backend {
  readonly info: BackendInfo;
  /** Read nbytes = total iovec length at sector. Resolves a ZoneResult. */
  read(sector: number, iov: IoVec): Promise<ZoneResult>;
  /** Regular write (OUT). Zoned backends enforce the write pointer. */
  write(sector: number, iov: IoVec): Promise<ZoneResult>;
  /** ZONE_APPEND at the zone starting at zoneSector. */
  append(zoneSector: number, iov: IoVec): Promise<AppendResult>;
  /**
   * read/write without a Promise per request, for backends whose I/O is batched: the I/O may
   * wait in a queue until endBatch(), and `done` may run inside endBatch() (a cached read
   * completes in the submitting system call) or later. The device then completes a whole
   * kick's batch in one pass: submit, completions, one used-ring update and notification.
   */
  submitRead?(sector: number, iov: IoVec, done: ResultCallback): void;
  submitWrite?(sector: number, iov: IoVec, done: ResultCallback): void;
  submitAppend?(zoneSector: number, iov: IoVec, done: AppendCallback): void;
  /** The device popped a batch of requests: start what is queued, run what completed. */
  endBatch?(): void;
  /** Make every completed write durable (fdatasync for files). */
  flush(): Promise<ZoneResult>;
  /**
   * Report zones starting with the zone containing `sector`, at most maxZones, into sink.
   * Resolves the number of zones passed to the sink (sink returning false stops it).
   */
  reportZones(sector: number, maxZones: number, sink: ZoneSink): Promise<number>;
  /**
   * ZONE_OPEN/CLOSE/FINISH/RESET/RESET_ALL (sector = zone start; ignored for RESET_ALL), and
   * the fault operations SET_READONLY, SET_OFFLINE and CLEAR_FAULT of the emulation.
   */
  zoneMgmt(op: ZoneOp, sector: number): Promise<ZoneResult>;
  /**
   * Regular disks: the guest no longer needs [sector, sector + sectors); free its space if the
   * storage can (reads of it then return zeroes). A storage that cannot free space does
   * nothing and resolves OK, as a discard promises nothing. Absent: DISCARD is not offered.
   */
  discard?(sector: number, sectors: number): Promise<ZoneResult>;
  /**
   * Regular disks: [sector, sector + sectors) reads as zeroes afterwards; with unmap its space
   * may be freed, without it stays allocated. Absent: WRITE_ZEROES is not offered.
   */
  writeZeroes?(sector: number, sectors: number, unmap: boolean): Promise<ZoneResult>;
  /** Flush and release (files closed, locks dropped). Idempotent. */
  close(): Promise<void>;
  /**
   * Power-loss emulation (control API, --volatile-cache): once in-flight writes finish, each
   * listed sequential zone keeps only its data below the given sector, open zones close as
   * after a restart, and the result is made durable. Only emulated disks can do this.
   */
  powerLoss?(wpAfter: ReadonlyMap<number, number>): Promise<void>;
}
