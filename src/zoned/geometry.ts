// Zone geometry: validated once, then trusted by the engine and the backends.
import { ZbdError } from '../errors.js';
import { SECTOR_SIZE } from './types.js';

/** Upper bound on zones so a hostile image or flag cannot make us allocate unbounded tables. */
export const MAX_ZONES = 1 << 22;
/** Sector counts must stay exact in a double (2^53) with room for byte arithmetic. */
export const MAX_CAPACITY_SECTORS = 2 ** 44; // 8 PiB
/** Default zone-append limit when none is given: large enough for btrfs, bounded by seg_max. */
export const DEFAULT_MAX_APPEND_SECTORS = 2048; // 1 MiB

export interface GeometryInput {
  capacitySectors: number;
  zoneSectors: number;
  /** Defaults to zoneSectors. */
  zoneCapacitySectors?: number;
  conventionalZones?: number;
  /** 512 or 4096; also the write granularity. */
  blockSize?: number;
  maxOpenZones?: number;
  maxActiveZones?: number;
  maxAppendSectors?: number;
}

export interface ZoneGeometry {
  readonly capacitySectors: number;
  readonly zoneSectors: number;
  readonly zoneShift: number;
  readonly zoneCapacitySectors: number;
  readonly conventionalZones: number;
  readonly blockSize: number;
  /** Write granularity in sectors (blockSize / 512). */
  readonly blockSectors: number;
  readonly nrZones: number;
  readonly nrSeqZones: number;
  /** Normalised: 0 = unlimited. */
  readonly maxOpenZones: number;
  /** Normalised: 0 = unlimited. */
  readonly maxActiveZones: number;
  readonly maxAppendSectors: number;
}

function geomError(field: string, value: unknown, why: string): ZbdError {
  return new ZbdError('EZONEGEOM', `${field} ${String(value)} ${why}`, { field, value });
}

function requireInt(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw geomError(field, v, 'is not an integer');
  if (v < min) throw geomError(field, v, `is below the minimum ${min}`);
  if (v > max) throw geomError(field, v, `is above the maximum ${max}`);
  return v;
}

const isPow2 = (v: number): boolean => v > 0 && (v & (v - 1)) === 0;

/**
 * Validate and normalise a geometry. Limits are normalised as Linux null_blk does, so the
 * values we advertise are the ones the guest block layer will actually enforce.
 */
export function makeGeometry(input: GeometryInput): ZoneGeometry {
  const blockSize = input.blockSize ?? 512;
  if (blockSize !== 512 && blockSize !== 4096) throw geomError('block size', blockSize, 'must be 512 or 4096');
  const blockSectors = blockSize / SECTOR_SIZE;

  // zone_sectors is a le32 in virtio config and Linux requires a power of two.
  const zoneSectors = requireInt('zone size (sectors)', input.zoneSectors, 1, 2 ** 31);
  if (!isPow2(zoneSectors)) {
    throw geomError('zone size', `${zoneSectors * SECTOR_SIZE} bytes`, 'is not a power of two');
  }
  if (zoneSectors % blockSectors !== 0) {
    throw geomError('zone size', `${zoneSectors * SECTOR_SIZE} bytes`, `is not a multiple of the block size ${blockSize}`);
  }
  const zoneShift = Math.log2(zoneSectors);

  const capacitySectors = requireInt('capacity (sectors)', input.capacitySectors, 1, MAX_CAPACITY_SECTORS);
  if (capacitySectors % blockSectors !== 0) {
    throw geomError('capacity', `${capacitySectors * SECTOR_SIZE} bytes`, `is not a multiple of the block size ${blockSize}`);
  }
  // The Linux driver sizes report buffers with floor(capacity / zone size): less than one
  // zone would give it room for no descriptor at all.
  if (capacitySectors < zoneSectors) {
    throw geomError('capacity', `${capacitySectors * SECTOR_SIZE} bytes`, `is smaller than one zone (${zoneSectors * SECTOR_SIZE} bytes)`);
  }
  const nrZones = Math.ceil(capacitySectors / zoneSectors);
  if (nrZones > MAX_ZONES) throw geomError('zone count', nrZones, `exceeds the maximum ${MAX_ZONES}`);

  const zoneCapacitySectors = requireInt('zone capacity (sectors)', input.zoneCapacitySectors ?? zoneSectors, 1, zoneSectors);
  if (zoneCapacitySectors % blockSectors !== 0) {
    throw geomError('zone capacity', `${zoneCapacitySectors * SECTOR_SIZE} bytes`, `is not a multiple of the block size ${blockSize}`);
  }

  const conventionalZones = requireInt('conventional zones', input.conventionalZones ?? 0, 0, nrZones - 1);
  const nrSeqZones = nrZones - conventionalZones;

  let maxActiveZones = requireInt('max active zones', input.maxActiveZones ?? 0, 0, 2 ** 32 - 1);
  let maxOpenZones = requireInt('max open zones', input.maxOpenZones ?? 0, 0, 2 ** 32 - 1);
  if (maxActiveZones >= nrSeqZones) maxActiveZones = 0;
  if (maxActiveZones !== 0 && maxOpenZones > maxActiveZones) maxOpenZones = maxActiveZones;
  if (maxOpenZones >= nrSeqZones) maxOpenZones = 0;

  const defaultAppend = Math.min(zoneCapacitySectors, DEFAULT_MAX_APPEND_SECTORS);
  const maxAppendSectors = requireInt('max append (sectors)', input.maxAppendSectors ?? defaultAppend, blockSectors, zoneCapacitySectors);
  if (maxAppendSectors % blockSectors !== 0) {
    throw geomError('max append', `${maxAppendSectors * SECTOR_SIZE} bytes`, `is not a multiple of the block size ${blockSize}`);
  }

  return Object.freeze({
    capacitySectors, zoneSectors, zoneShift, zoneCapacitySectors, conventionalZones, blockSize,
    blockSectors, nrZones, nrSeqZones, maxOpenZones, maxActiveZones, maxAppendSectors,
  });
}

/** Parse "64M", "4G", "512K", "1T", "4096" (bytes) into bytes. */
export function parseSize(field: string, text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new ZbdError('EARG', `${field} ${text} is not a valid size`, text);
    return text;
  }
  const m = /^\s*(\d+)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new ZbdError('EARG', `${field} '${text}' is not a size (examples: 4096, 512K, 64M, 4G)`, text);
  const mult: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };
  const v = Number(m[1]) * mult[m[2].toLowerCase()];
  if (!Number.isSafeInteger(v)) throw new ZbdError('EARG', `${field} '${text}' is too large`, text);
  return v;
}

/** Bytes → sectors, refusing values that are not whole sectors. */
export function bytesToSectors(field: string, bytes: number): number {
  if (bytes % SECTOR_SIZE !== 0) {
    throw new ZbdError('EZONEGEOM', `${field} ${bytes} bytes is not a multiple of 512`, { field, value: bytes });
  }
  return bytes / SECTOR_SIZE;
}
