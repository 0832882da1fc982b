// A real host zoned block device (SMR disk, ZNS namespace, null_blk, scsi_debug, a dm-linear
// slice of one) served to the guest: `serve --device /dev/X`.
//
// The device is the authority on zone state; this backend keeps a mirror of it in a zone
// table (zoned/zone-table.ts: read with BLKREPORTZONE at open, advanced by its own writes,
// re-read after every zone operation and every error) for three reasons:
// - Linux has no user-space zone append: an append becomes a write at the zone's write
//   pointer, with the zone's requests serialised so concurrent appends get distinct,
//   contiguous sectors (QEMU's file-posix does the same under a mutex);
// - the host kernel answers almost every zone-rule violation with EIO, which the guest
//   cannot tell from a media error: requests are checked against the mirror first with the
//   zone engine's own rules (zoned/zone-rules.ts), so the guest gets the emulation's status
//   codes;
// - a write crossing a zone boundary would be split by the host kernel and partly succeed:
//   it must be refused before it reaches the device.
// Resource limits (open/active zones) are left to the device, whose ETOOMANYREFS/EOVERFLOW
// become OPEN_RESOURCE/ACTIVE_RESOURCE. Zone faults (SET_READONLY, SET_OFFLINE, CLEAR_FAULT)
// are emulated in the mirror only: the drive itself is not touched, except that clearing an
// offline zone resets it on the drive (it comes back EMPTY, as in the emulation).
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ZbdError } from '../errors.js';
import { BLK_ZONE_OP, blkZoneMgmtAsync } from '../native/index.js';
import { DEFAULT_MAX_APPEND_SECTORS } from '../zoned/geometry.js';
import {
  SECTOR_SHIFT, SECTOR_SIZE, ZONE_RESULT_NAMES, ZoneCond, ZoneOp, ZoneResult, ZoneType, type ZoneSink,
} from '../zoned/types.js';
import {
  checkAppendAt, checkAppendShape, checkMgmtTarget, checkRead, checkWriteAt, checkWriteShape, condAfterWrite,
  mgmtStep, readableSectors, reportedWp,
} from '../zoned/zone-rules.js';
import { ZONE_FLAG_OFFLINE, ZoneTable, faultCond } from '../zoned/zone-table.js';
import type { AppendResult, Backend, BackendInfo, IoVec } from './backend.js';
import { DirectIo } from './direct-io.js';
import { ERRNO, classifyAfterResync, errnoOf, mapErrno, type HostOp } from './host-errno.js';
import { probeHostDevice, type HostDeviceFacts } from './host-device-probe.js';
import {
  BLK_ZONE_TYPE_CONVENTIONAL, BLK_ZONE_TYPE_SEQWRITE_PREF, BLK_ZONE_TYPE_SEQWRITE_REQ, reportHostZones, reportHostZonesSync,
  type HostZone,
} from './host-zone-report.js';
import { iovBytes, iovFill, iovSlice } from './iovec.js';
import { ZoneQueues } from './zone-queues.js';

export interface HostDeviceOptions {
  readOnly?: boolean;
  /**
   * 'hm' (default): a host-managed device served zoned; 'none': a regular device served as a
   * plain disk; 'any': whichever it is (the report command, which only looks).
   */
  model?: 'hm' | 'none' | 'any';
  /**
   * Claim the device exclusively (O_EXCL, default): a second daemon, a mount or mkfs cannot
   * use it meanwhile. Only a read-only user that never writes (the report command) opens shared.
   */
  exclusive?: boolean;
  logger?: Logger;
}

const HA_EXPLANATION =
  'is a host-aware zoned device. A Linux guest treats a host-aware virtio disk as a regular disk ' +
  '(virtio_blk ignores the zone model HA) and Linux hosts since 6.8 do too, so there is nothing zoned ' +
  'to pass through: serve it with --model none as a regular disk';

const MGMT_REQUEST: Record<number, number> = {
  [ZoneOp.OPEN]: BLK_ZONE_OP.OPEN, [ZoneOp.CLOSE]: BLK_ZONE_OP.CLOSE,
  [ZoneOp.FINISH]: BLK_ZONE_OP.FINISH, [ZoneOp.RESET]: BLK_ZONE_OP.RESET,
};
const MGMT_NAMES: Record<number, string> = {
  [ZoneOp.OPEN]: 'open', [ZoneOp.CLOSE]: 'close', [ZoneOp.FINISH]: 'finish', [ZoneOp.RESET]: 'reset',
  [ZoneOp.RESET_ALL]: 'reset-all', [ZoneOp.SET_READONLY]: 'set-readonly', [ZoneOp.SET_OFFLINE]: 'set-offline',
  [ZoneOp.CLEAR_FAULT]: 'clear-fault',
};

/** The virtio serial (20 bytes max): stable across restarts for the same medium. */
function serialFor(f: HostDeviceFacts): string {
  const identity = f.identity ?? `${path.resolve(f.path)}:${f.major}:${f.minor}:${f.capacitySectors}`;
  return 'vuzbd-' + createHash('sha1').update(identity).digest('hex').slice(0, 14);
}

function openDevice(devPath: string, readOnly: boolean, exclusive: boolean): number {
  const c = fs.constants;
  try {
    return fs.openSync(devPath, (readOnly ? c.O_RDONLY : c.O_RDWR) | c.O_DIRECT | (exclusive ? c.O_EXCL : 0));
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException;
    const why: Record<string, string> = {
      EBUSY: 'is in use: another process holds it exclusively (another vhost-user-zbd?) or it is mounted',
      ENOENT: 'does not exist',
      EACCES: 'permission denied (zone management needs write access to the device node)',
      EROFS: 'is read-only (use --read-only)',
      EINVAL: 'refuses O_DIRECT',
    };
    throw new ZbdError('EDEVICE', `${devPath} ${why[e.code ?? ''] ?? `cannot be opened: ${e.code ?? e.message}`}`, devPath, { cause });
  }
}

export class HostDeviceBackend implements Backend {
  readonly info: BackendInfo;
  readonly facts: HostDeviceFacts;
  readonly io: DirectIo;
  private readonly fd: number;
  private readonly log?: Logger;
  private readonly queues = new ZoneQueues();
  private closed = false;
  /** Reads, writes outside the zone queues and flushes in progress: close() waits for them. */
  private untracked = 0;
  private untrackedWaiters: (() => void)[] = [];

  private readonly blockSectors: number;
  /**
   * The mirror of the drive's zones (zoned devices only). Its write pointers are normalised
   * as the zone engine keeps them (FULL: capacity end), its data ends tell which sectors read
   * as zeroes without touching the device, and its fault flags are the emulated faults.
   */
  private readonly table: ZoneTable | null;
  /** The mirror of the zone may be wrong (a re-read failed): re-read before the next use. */
  private readonly stale: Uint8Array;

  private constructor(fd: number, facts: HostDeviceFacts, info: BackendInfo, io: DirectIo, log: Logger | undefined,
    lastZoneCapacitySectors?: number) {
    this.fd = fd;
    this.facts = facts;
    this.info = info;
    this.io = io;
    this.log = log?.child({ device: facts.path });
    this.blockSectors = info.blockSize / SECTOR_SIZE;
    const z = info.zoned;
    this.table = z ? new ZoneTable({
      capacitySectors: info.capacitySectors, zoneSectors: z.zoneSectors, zoneCapacitySectors: z.zoneCapacitySectors,
      nrZones: z.nrZones, conventionalZones: z.conventionalZones, blockSectors: this.blockSectors,
      maxAppendSectors: z.maxAppendSectors,
    }, lastZoneCapacitySectors) : null;
    this.stale = new Uint8Array(z ? z.nrZones : 0);
  }

  /** Open, probe and validate a host block device. Throws EDEVICE with the reason. */
  static open(devPath: string, opts: HostDeviceOptions = {}): HostDeviceBackend {
    const model = opts.model ?? 'hm';
    const exclusive = opts.exclusive ?? true;
    if (!exclusive && !opts.readOnly) throw new ZbdError('EARG', 'a host device opened for writing must be opened exclusively', devPath);
    const readOnly = !!opts.readOnly;
    let fd = openDevice(devPath, readOnly, exclusive);
    try {
      const facts = probeHostDevice(devPath, fd);
      if (facts.readOnly && !readOnly) {
        // The kernel would refuse every write and zone operation: say so now, not per request.
        throw new ZbdError('EDEVICE', `${devPath} is read-only in the kernel (${facts.sysfsDir}/ro = 1): use --read-only`, devPath);
      }
      if (facts.model === 'host-aware') throw new ZbdError('EDEVICE', `${devPath} ${HA_EXPLANATION}`, devPath);
      if (model === 'hm' && facts.model === 'none') {
        throw new ZbdError('EDEVICE', `${devPath} is not a zoned block device (${facts.queueDir}/zoned = none): serve it with --model none ` +
          'as a regular disk (host-aware drives show as none since Linux 6.8: the host itself uses them as regular disks)', devPath);
      }
      if (model === 'none' && facts.model === 'host-managed') {
        throw new ZbdError('EDEVICE', `${devPath} is host-managed: as a regular disk (--model none) every write off a write pointer would fail; serve it zoned (--model hm)`, devPath);
      }
      const bs = facts.logicalBlockSize;
      if (bs !== 512 && bs !== 4096) {
        throw new ZbdError('EDEVICE', `${devPath}: logical block size ${bs} is not 512 or 4096 (virtio-blk guests expect one of them)`, bs);
      }
      if (facts.capacitySectors === 0 || facts.capacitySectors % (bs / SECTOR_SIZE) !== 0) {
        throw new ZbdError('EDEVICE', `${devPath}: capacity ${facts.capacitySectors} sectors is not a positive number of ${bs}-byte blocks`, facts.capacitySectors);
      }
      const info: BackendInfo = {
        capacitySectors: facts.capacitySectors,
        blockSize: bs,
        physicalBlockSize: facts.physicalBlockSize,
        readOnly,
        serial: serialFor(facts),
        zoned: null,
      };
      const io = new DirectIo(fd, { blockSize: bs, memAlign: facts.memAlign });
      let backend: HostDeviceBackend;
      if (facts.model === 'host-managed') {
        const table = readZoneTable(devPath, fd, facts);
        info.zoned = {
          zoneSectors: facts.zoneSectors,
          zoneCapacitySectors: table.seqCap,
          nrZones: facts.nrZones,
          conventionalZones: table.conventional,
          maxOpenZones: facts.maxOpenZones,
          maxActiveZones: facts.maxActiveZones,
          maxAppendSectors: appendLimit(facts, table.seqCap),
        };
        backend = new HostDeviceBackend(fd, facts, info, io, opts.logger, table.lastCap);
        table.zones.forEach((z, i) => backend.applyZone(i, z, null));
      } else {
        backend = new HostDeviceBackend(fd, facts, info, io, opts.logger);
      }
      backend.log?.info({
        name: facts.name, model: facts.model, capacitySectors: facts.capacitySectors, logicalBlockSize: bs,
        physicalBlockSize: facts.physicalBlockSize, dmaAlignment: facts.memAlign, zones: info.zoned?.nrZones,
        zoneSectors: info.zoned?.zoneSectors, zoneCapacitySectors: info.zoned?.zoneCapacitySectors,
        conventionalZones: info.zoned?.conventionalZones, maxOpenZones: facts.maxOpenZones, maxActiveZones: facts.maxActiveZones,
        maxAppendSectors: info.zoned?.maxAppendSectors, exclusive, readOnly,
      }, 'host block device opened');
      fd = -1; // owned by the backend now
      return backend;
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }

  // ---- the mirror -----------------------------------------------------------------------

  /** The zone table of a zoned device (every caller has checked info.zoned). */
  private get zones(): ZoneTable { return this.table as ZoneTable; }

  /**
   * Take one zone as the device reported it into the mirror. `finishedAt` is the data end to
   * keep when the zone was just finished (the rest of it reads as zeroes). An emulated fault
   * stays over whatever the device says.
   */
  private applyZone(z: number, hz: HostZone, finishedAt: number | null): void {
    const t = this.zones;
    const start = t.zoneStart(z);
    if (hz.start !== start || hz.len !== t.zoneLen(z)) {
      throw new ZbdError('EDEVICE', `${this.facts.path}: zone ${z} reported at sector ${hz.start} length ${hz.len}, expected ${start} length ${t.zoneLen(z)}`, hz);
    }
    this.stale[z] = 0;
    if (hz.type === BLK_ZONE_TYPE_CONVENTIONAL) { t.setConventional(z); return; }
    // A finished zone keeps its data end across re-reads (the mirror's wp is the capacity
    // end for FULL, read-only and offline zones, whose data end is the capacity end too).
    const wasFull = t.type[z] === ZoneType.SEQ_WRITE_REQUIRED && t.wpOff[z] === t.zoneCap(z);
    const oldDataOff = t.dataOff[z];
    t.type[z] = ZoneType.SEQ_WRITE_REQUIRED;
    const cap = t.zoneCap(z);
    if (hz.cap !== cap && hz.cond !== ZoneCond.READONLY && hz.cond !== ZoneCond.OFFLINE) {
      throw new ZbdError('EDEVICE', `${this.facts.path}: zone ${z} capacity ${hz.cap} differs from the ${cap} sectors served`, hz);
    }
    switch (hz.cond) {
      case ZoneCond.FULL:
        t.wpOff[z] = cap;
        // What was written before a finish stays readable; the finished rest reads as zeroes.
        t.dataOff[z] = finishedAt !== null ? finishedAt - start : wasFull ? oldDataOff : cap;
        break;
      case ZoneCond.READONLY:
      case ZoneCond.OFFLINE:
        // No write pointer; whatever the device returns for a read-only zone is its data.
        t.wpOff[z] = t.dataOff[z] = cap;
        break;
      default:
        if (!(hz.wp >= start && hz.wp <= start + cap)) {
          throw new ZbdError('EDEVICE', `${this.facts.path}: zone ${z} write pointer ${hz.wp} outside [${start}, ${start + cap}]`, hz);
        }
        t.wpOff[z] = t.dataOff[z] = hz.wp - start;
    }
    t.cond[z] = faultCond(t.flags[z]) || hz.cond;
  }

  /** Re-read zone z from the device (inside its queue). false when even that failed. */
  private async resync(z: number, finishedAt: number | null = null): Promise<boolean> {
    try {
      let got: HostZone | null = null;
      const start = this.zones.zoneStart(z);
      await reportHostZones(this.fd, start, 1, (hz) => { got = hz; return false; });
      if (!got) throw new ZbdError('EDEVICE', `no zone reported at sector ${start}`, z);
      this.applyZone(z, got, finishedAt);
      return true;
    } catch (err) {
      this.stale[z] = 1;
      this.log?.error({ err, zone: z }, 'cannot re-read the zone from the device: its requests fail until a re-read succeeds');
      return false;
    }
  }

  /** Re-read every zone (after a reset of all zones; inside the exclusive section). */
  private async resyncAll(): Promise<boolean> {
    try {
      const nrZones = this.zones.nrZones;
      let z = 0;
      await reportHostZones(this.fd, 0, nrZones, (hz) => { this.applyZone(z, hz, null); z++; });
      if (z !== nrZones) throw new ZbdError('EDEVICE', `re-read ${z} zones of ${nrZones}`, z);
      return true;
    } catch (err) {
      this.stale.fill(1);
      this.log?.error({ err }, 'cannot re-read the zones from the device');
      return false;
    }
  }

  private async fresh(z: number): Promise<boolean> {
    return this.stale[z] === 0 || this.resync(z);
  }

  // ---- data path -------------------------------------------------------------------------

  read(sector: number, iov: IoVec): Promise<ZoneResult> {
    return this.track(this.readNow(sector, iov));
  }

  private async readNow(sector: number, iov: IoVec): Promise<ZoneResult> {
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) return ZoneResult.INVALID;
    const n = bytes >>> SECTOR_SHIFT;
    const t = this.table;
    let dataSectors = n;
    if (t) {
      const r = checkRead(t, sector, n);
      if (r !== ZoneResult.OK) return r;
      // Unwritten sectors read as zeroes, like the file emulation (the spec lets a device
      // pick its fill pattern; null_blk would return 0xff, scsi_debug stale data).
      dataSectors = readableSectors(t, sector, n);
    } else if (!(sector >= 0 && n >= 0 && sector + n <= this.info.capacitySectors)) {
      return ZoneResult.OUT_OF_RANGE;
    }
    if (n === 0) return ZoneResult.OK;
    try {
      if (dataSectors < n) iovFill(iovSlice(iov, dataSectors << SECTOR_SHIFT, bytes), 0);
      if (dataSectors > 0) {
        await this.io.readv(sector * SECTOR_SIZE, dataSectors === n ? iov : iovSlice(iov, 0, dataSectors << SECTOR_SHIFT));
      }
      return ZoneResult.OK;
    } catch (err) {
      const r = mapErrno(errnoOf(err), 'read') ?? ZoneResult.IO_ERROR;
      this.logFailure('read', err, r, { sector, sectors: n });
      return r;
    }
  }

  async write(sector: number, iov: IoVec): Promise<ZoneResult> {
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) return ZoneResult.INVALID;
    const n = bytes >>> SECTOR_SHIFT;
    const bs = this.blockSectors;
    const t = this.table;
    if (!t) {
      if (!(sector >= 0 && n >= 0 && sector + n <= this.info.capacitySectors)) return ZoneResult.OUT_OF_RANGE;
      if (n === 0) return ZoneResult.OK;
      if (sector % bs !== 0 || n % bs !== 0) return ZoneResult.UNALIGNED_WP;
      return this.plainWrite(sector, n, iov, -1);
    }
    const r = checkWriteShape(t, sector, n);
    if (r !== ZoneResult.OK || n === 0) return r;
    const z = t.zoneOf(sector);
    if (t.isConventional(z)) {
      // No read-modify-write for sub-block writes: two racing ones would lose data.
      if (sector % bs !== 0 || n % bs !== 0) return ZoneResult.UNALIGNED_WP;
      return this.plainWrite(sector, n, iov, z);
    }
    return this.queues.run(z, () => this.seqWrite(z, sector, n, iov, 'write'));
  }

  private plainWrite(sector: number, n: number, iov: IoVec, zone: number): Promise<ZoneResult> {
    return this.track(this.plainWriteNow(sector, n, iov, zone));
  }

  private async plainWriteNow(sector: number, n: number, iov: IoVec, zone: number): Promise<ZoneResult> {
    try {
      await this.io.writev(sector * SECTOR_SIZE, iov);
      return ZoneResult.OK;
    } catch (err) {
      const r = mapErrno(errnoOf(err), 'write') ?? ZoneResult.IO_ERROR;
      this.logFailure('write', err, r, { zone, sector, sectors: n });
      return r;
    }
  }

  /** The zone rules on the mirror, then the write at the write pointer (queued per zone). */
  private async seqWrite(z: number, sector: number, n: number, iov: IoVec, op: HostOp): Promise<ZoneResult> {
    if (!(await this.fresh(z))) return ZoneResult.IO_ERROR;
    const t = this.zones;
    const r = checkWriteAt(t, z, sector, n, false);
    if (r !== ZoneResult.OK) {
      this.log?.debug({ op, zone: z, sector, sectors: n, wp: t.wp(z), cond: t.cond[z], result: ZONE_RESULT_NAMES[r] }, 'refused by the zone rules');
      return r;
    }
    try {
      await this.io.writev(sector * SECTOR_SIZE, iov);
    } catch (err) {
      const errno = errnoOf(err);
      const mapped = mapErrno(errno, op);
      // The device may have taken part of the data, and the host kernel refuses further
      // writes to the zone until its write pointer is re-read (zone write plugging).
      const synced = await this.resync(z);
      const result = mapped ?? (synced ? classifyAfterResync(errno, op, t.cond[z] as ZoneCond, t.wp(z), sector, sector + n) : ZoneResult.IO_ERROR);
      this.logFailure(op, err, result, { zone: z, sector, sectors: n, wpAfter: t.wp(z), condAfter: t.cond[z] });
      return result;
    }
    const endOff = sector + n - t.zoneStart(z);
    t.cond[z] = condAfterWrite(t, z, endOff);
    t.wpOff[z] = t.dataOff[z] = endOff;
    return ZoneResult.OK;
  }

  async append(zoneSector: number, iov: IoVec): Promise<AppendResult> {
    if (this.info.readOnly) return { result: ZoneResult.READ_ONLY, sector: 0 };
    if (!this.info.zoned) return { result: ZoneResult.UNSUPPORTED, sector: 0 };
    const bytes = iovBytes(iov);
    if (bytes % SECTOR_SIZE !== 0) return { result: ZoneResult.INVALID, sector: 0 };
    const n = bytes >>> SECTOR_SHIFT;
    const t = this.zones;
    const r = checkAppendShape(t, zoneSector, n);
    if (r !== ZoneResult.OK) return { result: r, sector: 0 };
    const z = t.zoneOf(zoneSector);
    return this.queues.run(z, async () => {
      if (!(await this.fresh(z))) return { result: ZoneResult.IO_ERROR, sector: 0 };
      let target = t.wp(z);
      if (n === 0) return { result: checkAppendAt(t, z, n, false), sector: target };
      let result = await this.seqWrite(z, target, n, iov, 'append');
      const wpNow = t.wp(z);
      const landed = wpNow > target && wpNow <= target + n;
      if (result === ZoneResult.IO_ERROR && this.stale[z] === 0 && wpNow !== target && !landed) {
        // The device's write pointer was not where the mirror had it (the zone was changed
        // behind our back) and nothing landed. An append names no sector, so it is not the
        // guest's mistake: try once more at the write pointer just re-read.
        this.log?.warn({ zone: z, staleWp: target, wp: wpNow }, 'append retried at the re-read write pointer');
        target = wpNow;
        result = await this.seqWrite(z, target, n, iov, 'append');
      }
      return { result, sector: target };
    });
  }

  flush(): Promise<ZoneResult> {
    return this.track(new Promise((resolve) => fs.fdatasync(this.fd, (err) => {
      if (!err) { resolve(ZoneResult.OK); return; }
      const r = mapErrno(errnoOf(err), 'flush') ?? ZoneResult.IO_ERROR;
      this.logFailure('flush', err, r, {});
      resolve(r);
    })));
  }

  /** Count an operation that does not go through the zone queues until it settles. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.untracked++;
    const done = (): void => {
      if (--this.untracked === 0) for (const w of this.untrackedWaiters.splice(0)) w();
    };
    p.then(done, done);
    return p;
  }

  // ---- zone reports and management -------------------------------------------------------

  /**
   * Reports come from the device itself (BLKREPORTZONE), so the guest sees the device's own
   * conditions (with the emulated faults over them), normalised as the zone engine reports
   * them: FULL and conventional zones with the write pointer at the zone end, read-only and
   * offline zones without one.
   */
  async reportZones(sector: number, maxZones: number, sink: ZoneSink): Promise<number> {
    const t = this.table;
    if (!t || !(sector >= 0 && sector < this.info.capacitySectors) || maxZones <= 0) return 0;
    let n = 0;
    try {
      await reportHostZones(this.fd, sector, maxZones, (hz) => {
        if (hz.type === BLK_ZONE_TYPE_SEQWRITE_PREF) {
          throw new ZbdError('EDEVICE', `zone at sector ${hz.start} became sequential-write-preferred`, hz);
        }
        const cond = faultCond(t.flags[t.zoneOf(hz.start)]) || hz.cond;
        if (!sink(hz.start, hz.len, hz.cap, reportedWp(cond, hz.start, hz.len, hz.wp), hz.type as ZoneType, cond as ZoneCond)) return false;
        n++;
        return true;
      });
    } catch (err) {
      this.logFailure('report', err, ZoneResult.IO_ERROR, { sector, maxZones });
      throw err;
    }
    return n;
  }

  async zoneMgmt(op: ZoneOp, sector: number): Promise<ZoneResult> {
    if (this.info.readOnly) return ZoneResult.READ_ONLY;
    const t = this.table;
    if (!t) return ZoneResult.UNSUPPORTED;
    if (op === ZoneOp.RESET_ALL) return this.queues.runExclusive(() => this.resetAll());
    const r = checkMgmtTarget(t, sector);
    if (r !== ZoneResult.OK) return r;
    const z = t.zoneOf(sector);
    // Queued behind the zone's writes: they finish first, in order, as on a drive's queue.
    return this.queues.run(z, () => this.mgmtOne(op, z));
  }

  /**
   * Whether the operation is possible is decided on the mirror by the zone rules (the device
   * would answer an impossible one with a bare EIO, or not at all: scsi_debug closes an
   * empty zone silently). The mirror can only lag the device by implicit closes the device
   * made on its own (IMP_OPEN shown where the device has CLOSED), and every operation treats
   * those two conditions alike, so the decision is the device's own. The new state is the
   * device's: the zone is re-read after the operation.
   */
  private async mgmtOne(op: ZoneOp, z: number): Promise<ZoneResult> {
    if (!(await this.fresh(z))) return ZoneResult.IO_ERROR;
    const t = this.zones;
    const c = t.cond[z];
    const step = mgmtStep(op, t, z);
    if (step.result !== ZoneResult.OK) {
      this.log?.debug({ op: MGMT_NAMES[op], zone: z, cond: c, result: ZONE_RESULT_NAMES[step.result] }, 'zone operation refused by the zone rules');
      return step.result;
    }
    if (!step.changed) return ZoneResult.OK;
    if (op === ZoneOp.SET_READONLY || op === ZoneOp.SET_OFFLINE) {
      // Emulated in the mirror; the device's own state stays underneath for CLEAR_FAULT.
      t.flags[z] = step.flags;
      t.cond[z] = step.cond;
      this.log?.info({ op: MGMT_NAMES[op], zone: z, condBefore: c }, 'zone fault set (emulated; the device is not touched)');
      return ZoneResult.OK;
    }
    const start = t.zoneStart(z);
    const dataEndBefore = t.dataEnd(z);
    let request = MGMT_REQUEST[op];
    if (op === ZoneOp.CLEAR_FAULT) {
      // A read-only zone is back as the device has it; an offline one comes back EMPTY, its
      // data gone: reset on the device.
      const wasOffline = (t.flags[z] & ZONE_FLAG_OFFLINE) !== 0;
      t.flags[z] = 0;
      if (!wasOffline) {
        this.log?.info({ op: MGMT_NAMES[op], zone: z, condBefore: c }, 'zone fault cleared');
        return (await this.resync(z)) ? ZoneResult.OK : ZoneResult.IO_ERROR;
      }
      request = BLK_ZONE_OP.RESET;
    }
    try {
      await blkZoneMgmtAsync(this.fd, request, start, t.zoneLen(z));
    } catch (err) {
      const errno = errnoOf(err);
      const mapped = mapErrno(errno, 'mgmt');
      const synced = await this.resync(z);
      const result = mapped ?? (synced ? classifyAfterResync(errno, 'mgmt', t.cond[z] as ZoneCond, t.wp(z), start, start) : ZoneResult.IO_ERROR);
      this.logFailure(MGMT_NAMES[op], err, result, { zone: z, sector: start, condBefore: c, condAfter: t.cond[z] });
      return result;
    }
    if (op === ZoneOp.CLEAR_FAULT) this.log?.info({ op: MGMT_NAMES[op], zone: z, condBefore: c }, 'zone fault cleared: zone reset on the device');
    // The device decides the new condition (close of an empty zone → EMPTY, which zone it
    // closed implicitly...): take it from the device.
    if (!(await this.resync(z, op === ZoneOp.FINISH ? dataEndBefore : null))) return ZoneResult.IO_ERROR;
    return ZoneResult.OK;
  }

  /**
   * Reset of every zone: one ranged BLKRESETZONE over the whole device, which the kernel
   * issues as REQ_OP_ZONE_RESET_ALL. With emulated faults, zone by zone instead, leaving the
   * faulted zones (and their data) alone as the emulation does.
   */
  private async resetAll(): Promise<ZoneResult> {
    const t = this.zones;
    if (t.flags.some((f) => f !== 0)) return this.resetEach();
    try {
      await blkZoneMgmtAsync(this.fd, BLK_ZONE_OP.RESET, 0, this.info.capacitySectors);
    } catch (err) {
      const errno = errnoOf(err);
      const result = mapErrno(errno, 'mgmt') ?? (errno === ERRNO.EINVAL || errno === ERRNO.EREMOTEIO ? ZoneResult.INVALID : ZoneResult.IO_ERROR);
      await this.resyncAll();
      this.logFailure('reset-all', err, result, {});
      return result;
    }
    return (await this.resyncAll()) ? ZoneResult.OK : ZoneResult.IO_ERROR;
  }

  private async resetEach(): Promise<ZoneResult> {
    const t = this.zones;
    let result = ZoneResult.OK;
    for (let z = 0; z < t.nrZones; z++) {
      if (t.isConventional(z) || t.flags[z] !== 0) continue;
      if (!(await this.fresh(z))) { result = ZoneResult.IO_ERROR; continue; }
      if (!mgmtStep(ZoneOp.RESET_ALL, t, z).changed) continue;
      try {
        await blkZoneMgmtAsync(this.fd, BLK_ZONE_OP.RESET, t.zoneStart(z), t.zoneLen(z));
      } catch (err) {
        const r = mapErrno(errnoOf(err), 'mgmt') ?? ZoneResult.IO_ERROR;
        this.logFailure('reset-all', err, r, { zone: z });
        if (result === ZoneResult.OK) result = r;
      }
    }
    return (await this.resyncAll()) ? result : ZoneResult.IO_ERROR;
  }

  private logFailure(op: string, err: unknown, result: ZoneResult, ctx: Record<string, unknown>): void {
    const errno = errnoOf(err);
    const level = result === ZoneResult.IO_ERROR ? 'error' : 'warn';
    this.log?.[level]({ op, err, errno, result: ZONE_RESULT_NAMES[result], ...ctx }, `${op} failed on the device`);
  }

  /** The mirror of one zone (tests and diagnostics): condition, write pointer, data end; absolute sectors. */
  zoneState(z: number): { type: number; cond: number; wp: number; cap: number; dataEnd: number; flags: number } {
    const t = this.zones;
    return { type: t.type[z], cond: t.cond[z], wp: t.wp(z), cap: t.zoneCap(z), dataEnd: t.dataEnd(z), flags: t.flags[z] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Everything in flight finishes first (the fd must not be closed under a transfer, nor
    // reused by a later open); then the device's cache is flushed once more.
    await this.queues.runExclusive(() => Promise.resolve());
    while (this.untracked > 0) await new Promise<void>((resolve) => this.untrackedWaiters.push(resolve));
    if (!this.info.readOnly) {
      const r = await this.flush();
      if (r !== ZoneResult.OK) this.log?.error('final flush failed');
    }
    this.io.close();
    await new Promise<void>((resolve, reject) => fs.close(this.fd, (e) => (e ? reject(e) : resolve())));
  }
}

interface HostZoneList { zones: HostZone[]; conventional: number; seqCap: number; lastCap: number }

/**
 * Read and validate all zones at open: the guest block layer refuses (and the host kernel
 * itself would have refused) anything else, so a device that breaks these rules is refused
 * here with the zone that breaks them.
 */
function readZoneTable(devPath: string, fd: number, f: HostDeviceFacts): HostZoneList {
  const fail = (message: string, value?: unknown): ZbdError => new ZbdError('EDEVICE', `${devPath}: ${message}`, value);
  const zs = f.zoneSectors;
  if (!(zs > 0 && (zs & (zs - 1)) === 0 && zs <= 2 ** 31)) throw fail(`zone size ${zs} sectors is not a power of two up to 2^31 (virtio zone_sectors)`, zs);
  if (f.nrZones !== Math.ceil(f.capacitySectors / zs)) throw fail(`${f.nrZones} zones of ${zs} sectors do not cover ${f.capacitySectors} sectors`, f.nrZones);
  const zones: HostZone[] = [];
  reportHostZonesSync(fd, 0, f.nrZones, (hz) => { zones.push(hz); });
  if (zones.length !== f.nrZones) throw fail(`the zone report returned ${zones.length} zones, expected ${f.nrZones}`, zones.length);
  let conventional = 0;
  let seqCap = -1;
  const blockSectors = f.logicalBlockSize / SECTOR_SIZE;
  zones.forEach((z, i) => {
    const start = i * zs;
    const len = i === zones.length - 1 ? f.capacitySectors - start : zs;
    if (z.start !== start || z.len !== len) throw fail(`zone ${i} is at sector ${z.start} with length ${z.len}, expected ${start} and ${len}`, z);
    if (z.type === BLK_ZONE_TYPE_SEQWRITE_PREF) throw fail(`zone ${i} is sequential-write-preferred: the device ${HA_EXPLANATION}`, z);
    if (z.type === BLK_ZONE_TYPE_CONVENTIONAL) {
      if (z.cap !== z.len) throw fail(`conventional zone ${i} has capacity ${z.cap} below its length ${z.len}`, z);
      conventional++;
      return;
    }
    if (z.type !== BLK_ZONE_TYPE_SEQWRITE_REQ) throw fail(`zone ${i} has unknown type ${z.type}`, z);
    if (!(z.cap > 0 && z.cap <= z.len) || z.cap % blockSectors !== 0) throw fail(`zone ${i} capacity ${z.cap} is not a positive multiple of the block within its length ${z.len}`, z);
    // Linux guests (6.10+) refuse sequential zones of different capacities, the last one aside.
    if (seqCap < 0) seqCap = z.cap;
    else if (z.cap !== seqCap && i !== zones.length - 1) throw fail(`zone ${i} capacity ${z.cap} differs from the other sequential zones (${seqCap})`, z);
  });
  if (seqCap < 0) throw fail('has only conventional zones: nothing zoned to serve', conventional);
  return { zones, conventional, seqCap, lastCap: zones[zones.length - 1].cap };
}

/**
 * ZONE_APPEND limit advertised to the guest. Appends become regular writes here, so the
 * device's own native limit is not binding, but it is what the device and QEMU advertise;
 * kept (rounded down to whole blocks) unless the device has none.
 */
function appendLimit(f: HostDeviceFacts, zoneCap: number): number {
  const blockSectors = f.logicalBlockSize / SECTOR_SIZE;
  let sectors = Math.floor(f.zoneAppendMaxBytes / SECTOR_SIZE);
  if (sectors === 0) sectors = DEFAULT_MAX_APPEND_SECTORS;
  sectors = Math.min(sectors, zoneCap);
  return Math.max(blockSectors, sectors - (sectors % blockSectors));
}
