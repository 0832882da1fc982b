// What a host block device is, from sysfs (/sys/dev/block/MAJ:MIN/queue/*, the files QEMU's
// file-posix and libzbd read) and the zone ioctls. No decisions here beyond "this value is
// unusable": host-device-backend.ts decides what can be served.
import fs from 'node:fs';
import path from 'node:path';
import { ZbdError } from '../errors.js';
import { blkGetNrZones, blkGetZoneSize } from '../native/index.js';
import { decodeDeviceNumber } from './device-number.js';

export type HostZonedModel = 'host-managed' | 'host-aware' | 'none';

export interface HostDeviceFacts {
  /** The path given by the user. */
  path: string;
  /** Kernel name, e.g. nullb0, sda, dm-3. */
  name: string;
  major: number;
  minor: number;
  /** The device's sysfs directory (resolved). */
  sysfsDir: string;
  /** Its request queue directory (the parent disk's for a partition). */
  queueDir: string;
  model: HostZonedModel;
  capacitySectors: number;
  logicalBlockSize: number;
  physicalBlockSize: number;
  /** Buffer address alignment O_DIRECT needs, bytes (queue/dma_alignment + 1). */
  memAlign: number;
  /** The kernel marks the device read-only (sysfs ro). */
  readOnly: boolean;
  /** Zone size in sectors (chunk_sectors), 0 when not zoned. */
  zoneSectors: number;
  nrZones: number;
  /** 0 = no limit. */
  maxOpenZones: number;
  /** 0 = no limit. */
  maxActiveZones: number;
  /** Largest native zone append, bytes (0 = none). */
  zoneAppendMaxBytes: number;
  /** A stable identity of the medium (wwid or serial) when the kernel knows one. */
  identity: string | null;
}

function deviceError(dev: string, message: string, value?: unknown): ZbdError {
  return new ZbdError('EDEVICE', `${dev}: ${message}`, value ?? dev);
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function readNumber(dev: string, file: string, required: boolean, fallback = 0): number {
  const text = readText(file);
  if (text === null) {
    if (required) throw deviceError(dev, `cannot read ${file}`, file);
    return fallback;
  }
  const v = Number(text);
  if (!Number.isSafeInteger(v) || v < 0) throw deviceError(dev, `${file} holds '${text}', not a non-negative integer`, { file, text });
  return v;
}

const MODELS: Record<string, HostZonedModel> = { 'host-managed': 'host-managed', 'host-aware': 'host-aware', none: 'none' };

/** Facts about the block device open at fd (opened from `devPath`). */
export function probeHostDevice(devPath: string, fd: number): HostDeviceFacts {
  const st = fs.fstatSync(fd);
  if (!st.isBlockDevice()) {
    throw deviceError(devPath, 'is not a block device (serve an emulated image with --image instead)', devPath);
  }
  const { major, minor } = decodeDeviceNumber(st.rdev);
  const link = `/sys/dev/block/${major}:${minor}`;
  let sysfsDir: string;
  try {
    sysfsDir = fs.realpathSync(link);
  } catch (cause) {
    throw new ZbdError('EDEVICE', `${devPath}: no sysfs entry ${link} (is sysfs mounted?)`, link, { cause });
  }
  const isPartition = fs.existsSync(path.join(sysfsDir, 'partition'));
  const queueDir = path.join(isPartition ? path.dirname(sysfsDir) : sysfsDir, 'queue');
  const q = (f: string): string => path.join(queueDir, f);

  const zonedText = readText(q('zoned'));
  // Kernels built without CONFIG_BLK_DEV_ZONED have no queue/zoned: nothing there is zoned.
  const model = zonedText === null ? 'none' : MODELS[zonedText];
  if (!model) throw deviceError(devPath, `unknown zone model '${zonedText}' in ${q('zoned')}`, zonedText);

  const logicalBlockSize = readNumber(devPath, q('logical_block_size'), true);
  const physicalBlockSize = readNumber(devPath, q('physical_block_size'), false, logicalBlockSize);
  // dma_alignment is a mask (alignment - 1); kernels before 6.0 lack it: assume one block.
  const dmaMask = readNumber(devPath, q('dma_alignment'), false, logicalBlockSize - 1);
  const zoned = model !== 'none';
  const facts: HostDeviceFacts = {
    path: devPath,
    name: path.basename(sysfsDir),
    major, minor, sysfsDir, queueDir, model,
    capacitySectors: readNumber(devPath, path.join(sysfsDir, 'size'), true),
    logicalBlockSize,
    physicalBlockSize: Math.max(physicalBlockSize, logicalBlockSize),
    memAlign: dmaMask + 1,
    readOnly: readNumber(devPath, path.join(sysfsDir, 'ro'), false) !== 0,
    zoneSectors: zoned ? readNumber(devPath, q('chunk_sectors'), true) : 0,
    nrZones: zoned ? readNumber(devPath, q('nr_zones'), true) : 0,
    maxOpenZones: zoned ? readNumber(devPath, q('max_open_zones'), false) : 0,
    maxActiveZones: zoned ? readNumber(devPath, q('max_active_zones'), false) : 0,
    zoneAppendMaxBytes: zoned ? readNumber(devPath, q('zone_append_max_bytes'), false) : 0,
    identity: null,
  };
  for (const f of ['wwid', 'device/wwid', 'serial', 'device/serial']) {
    const v = readText(path.join(isPartition ? path.dirname(sysfsDir) : sysfsDir, f));
    if (v) { facts.identity = `${f}=${v}${isPartition ? `:part${minor}` : ''}`; break; }
  }
  if (model === 'host-managed') {
    // The ioctls and sysfs must agree, or one of them is not describing this device.
    const ioctlZone = blkGetZoneSize(fd);
    const ioctlNr = blkGetNrZones(fd);
    if (ioctlZone !== facts.zoneSectors) {
      throw deviceError(devPath, `BLKGETZONESZ says ${ioctlZone} sectors, queue/chunk_sectors ${facts.zoneSectors}`, { ioctlZone, chunk: facts.zoneSectors });
    }
    if (ioctlNr !== facts.nrZones) {
      throw deviceError(devPath, `BLKGETNRZONES says ${ioctlNr} zones, queue/nr_zones ${facts.nrZones}`, { ioctlNr, nr: facts.nrZones });
    }
  }
  return facts;
}
