// Offline image tools: create, report, check [--repair], zone <op>.
import fs from 'node:fs';
import { ZbdError } from '../errors.js';
import { bytesToSectors, parseSize } from '../zoned/geometry.js';
import { ZONE_COND_LONG_NAMES, ZoneOp, ZoneResult } from '../zoned/types.js';
import {
  createImage, inspectImageFd, openImage, openLocked, repairImageFd, type ImageProfile,
} from '../backends/file-backend.js';
import { HostDeviceBackend } from '../backends/host-device-backend.js';
import { formatZoneLine, zoneJson, type ZoneJson } from './report-format.js';
import { writeZoneMapFile } from '../observe/zone-map-file.js';

/** Where command output goes; tests capture it. */
export interface Out { out(line: string): void; err(line: string): void }

/** Which CLI flag a geometry field comes from, so errors name what the user typed. */
const FIELD_FLAGS: Record<string, string> = {
  'capacity': '--size', 'capacity (sectors)': '--size', 'zone size': '--zone-size', 'zone size (sectors)': '--zone-size',
  'zone capacity': '--zone-capacity', 'zone capacity (sectors)': '--zone-capacity', 'conventional zones': '--conventional',
  'block size': '--block-size', 'max open zones': '--max-open', 'max active zones': '--max-active',
  'max append': '--max-append', 'max append (sectors)': '--max-append', 'zone count': '--size/--zone-size',
};

export function flagForError(err: ZbdError): string | undefined {
  const v = err.value as { field?: string } | undefined;
  return v && typeof v === 'object' && v.field ? FIELD_FLAGS[v.field] : undefined;
}

export interface CreateArgs {
  image: string; size: string; zoneSize: string; zoneCapacity?: string; conventional?: number;
  maxOpen?: number; maxActive?: number; maxAppend?: string; blockSize?: number; profile?: ImageProfile; force?: boolean;
}

export function cmdCreate(a: CreateArgs, o: Out): number {
  const sectors = (flag: string, v: string): number => {
    try { return bytesToSectors(flag, parseSize(flag, v)); } catch (err) {
      throw new ZbdError('EARG', `${flag} ${v}: ${(err as Error).message}`, v);
    }
  };
  const header = createImage(a.image, {
    capacitySectors: sectors('--size', a.size),
    zoneSectors: sectors('--zone-size', a.zoneSize),
    zoneCapacitySectors: a.zoneCapacity !== undefined ? sectors('--zone-capacity', a.zoneCapacity) : undefined,
    conventionalZones: a.conventional,
    maxOpenZones: a.maxOpen,
    maxActiveZones: a.maxActive,
    maxAppendSectors: a.maxAppend !== undefined ? sectors('--max-append', a.maxAppend) : undefined,
    blockSize: a.blockSize,
    profile: a.profile,
    force: a.force,
  });
  const g = header.geometry;
  o.out(`created ${a.image}: ${g.capacitySectors * 512} bytes, ${g.nrZones} zones of ${g.zoneSectors * 512} bytes ` +
    `(capacity ${g.zoneCapacitySectors * 512}), ${g.conventionalZones} conventional, block size ${g.blockSize}, ` +
    `max open ${g.maxOpenZones || 'unlimited'}, max active ${g.maxActiveZones || 'unlimited'}, max append ${g.maxAppendSectors * 512} bytes, profile ${header.profile}`);
  return 0;
}

export interface ReportArgs { image?: string; device?: string; json?: boolean; zone?: number; count?: number; svg?: string }

export async function cmdReport(a: ReportArgs, o: Out): Promise<number> {
  if (!!a.image === !!a.device) throw new ZbdError('EARG', 'report needs exactly one of IMAGE or --device /dev/X', { image: a.image, device: a.device });
  if (a.device) return cmdReportDevice(a, a.device, o);
  const image = a.image as string;
  const { backend, header } = openImage(image, { readOnly: true });
  try {
    const g = header.geometry;
    const first = a.zone ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= g.nrZones) throw new ZbdError('EARG', `--zone ${first} is not a zone of this image (0..${g.nrZones - 1})`, first);
    const count = a.count ?? g.nrZones;
    if (a.svg) { o.out(await writeZoneMapFile(a.svg, backend, { firstZone: first, zoneCount: Math.min(count, g.nrZones - first), subject: image })); return 0; }
    const zones: ZoneJson[] = [];
    let z = first;
    await backend.reportZones(first * g.zoneSectors, count, (start, len, cap, wp, type, cond) => {
      if (a.json) zones.push(zoneJson(z, start, len, cap, wp, type, cond));
      else o.out(formatZoneLine(start, len, cap, wp, type, cond));
      z++;
      return true;
    });
    if (a.json) {
      o.out(JSON.stringify({
        image, serial: backend.info.serial, profile: header.profile,
        capacitySectors: g.capacitySectors, blockSize: g.blockSize, zoneSectors: g.zoneSectors,
        zoneCapacitySectors: g.zoneCapacitySectors, nrZones: g.nrZones, conventionalZones: g.conventionalZones,
        maxOpenZones: g.maxOpenZones, maxActiveZones: g.maxActiveZones, maxAppendSectors: g.maxAppendSectors,
        zones,
      }, null, 2));
    }
    return 0;
  } finally {
    await backend.close();
  }
}

/**
 * The zones of a host zoned device as the daemon serves them (FULL zones with the write
 * pointer at the zone end, as the guest sees them). Opened read-only and shared, so it can
 * look at a device a daemon is serving.
 */
async function cmdReportDevice(a: ReportArgs, device: string, o: Out): Promise<number> {
  const backend = HostDeviceBackend.open(device, { readOnly: true, exclusive: false, model: 'any' });
  try {
    const zi = backend.info.zoned;
    if (!zi) throw new ZbdError('EDEVICE', `${device} is not zoned: no zones to report`, device);
    const first = a.zone ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= zi.nrZones) throw new ZbdError('EARG', `--zone ${first} is not a zone of ${device} (0..${zi.nrZones - 1})`, first);
    const count = a.count ?? zi.nrZones;
    if (a.svg) { o.out(await writeZoneMapFile(a.svg, backend, { firstZone: first, zoneCount: Math.min(count, zi.nrZones - first), subject: device })); return 0; }
    const zones: ZoneJson[] = [];
    let z = first;
    await backend.reportZones(first * zi.zoneSectors, count, (start, len, cap, wp, type, cond) => {
      if (a.json) zones.push(zoneJson(z, start, len, cap, wp, type, cond));
      else o.out(formatZoneLine(start, len, cap, wp, type, cond));
      z++;
      return true;
    });
    if (a.json) {
      const f = backend.facts;
      o.out(JSON.stringify({
        device, name: f.name, serial: backend.info.serial, model: f.model,
        capacitySectors: backend.info.capacitySectors, blockSize: backend.info.blockSize, physicalBlockSize: backend.info.physicalBlockSize,
        zoneSectors: zi.zoneSectors, zoneCapacitySectors: zi.zoneCapacitySectors, nrZones: zi.nrZones, conventionalZones: zi.conventionalZones,
        maxOpenZones: zi.maxOpenZones, maxActiveZones: zi.maxActiveZones, maxAppendSectors: zi.maxAppendSectors,
        zones,
      }, null, 2));
    }
    return 0;
  } finally {
    await backend.close();
  }
}

export function cmdCheck(a: { image: string; repair?: boolean }, o: Out): number {
  const fd = openLocked(a.image, !!a.repair);
  try {
    const ins = inspectImageFd(fd);
    const g = ins.header.geometry;
    if (ins.problems.length === 0) {
      o.out(`${a.image}: clean (${g.nrZones} zones, ${g.conventionalZones} conventional)`);
      return 0;
    }
    for (const p of ins.problems) {
      o.out(`${p.zone < 0 ? 'image' : `zone ${p.zone}`}: ${p.message}${a.repair ? '' : ` [repair: ${p.repair}]`}`);
    }
    if (!a.repair) {
      o.out(`${a.image}: ${ins.problems.length} problem(s); run with --repair to fix`);
      return 1;
    }
    for (const line of repairImageFd(fd, ins)) o.out(`repaired ${line}`);
    const after = inspectImageFd(fd);
    if (after.problems.length) {
      for (const p of after.problems) o.err(`still wrong: ${p.zone < 0 ? 'image' : `zone ${p.zone}`}: ${p.message}`);
      return 1;
    }
    o.out(`${a.image}: repaired, now clean`);
    return 0;
  } finally {
    fs.closeSync(fd);
  }
}

const ZONE_OPS: Record<string, ZoneOp> = {
  reset: ZoneOp.RESET, open: ZoneOp.OPEN, close: ZoneOp.CLOSE, finish: ZoneOp.FINISH,
  offline: ZoneOp.SET_OFFLINE, readonly: ZoneOp.SET_READONLY,
};

const RESULT_TEXT: Record<number, string> = {
  [ZoneResult.INVALID]: 'the zone condition does not allow it',
  [ZoneResult.OPEN_RESOURCE]: 'too many open zones',
  [ZoneResult.ACTIVE_RESOURCE]: 'too many active zones',
  [ZoneResult.READ_ONLY]: 'the image is read-only',
  [ZoneResult.IO_ERROR]: 'I/O error',
};

export async function cmdZone(a: { image: string; op: string; zone: string }, o: Out): Promise<number> {
  const op = ZONE_OPS[a.op];
  if (op === undefined) throw new ZbdError('EARG', `zone operation '${a.op}' is not one of ${Object.keys(ZONE_OPS).join(', ')}`, a.op);
  const { backend, header } = openImage(a.image);
  try {
    const g = header.geometry;
    const all = a.zone === 'all';
    if (all && op !== ZoneOp.RESET) throw new ZbdError('EARG', `'all' is only valid with reset`, a.zone);
    const z = all ? 0 : Number(a.zone);
    if (!all && (!Number.isInteger(z) || z < 0 || z >= g.nrZones)) {
      throw new ZbdError('EARG', `zone ${a.zone} is not a zone index of this image (0..${g.nrZones - 1})`, a.zone);
    }
    const r = await backend.zoneMgmt(all ? ZoneOp.RESET_ALL : op, z * g.zoneSectors);
    if (r !== ZoneResult.OK) {
      o.err(`zone ${a.zone}: ${a.op} refused: ${RESULT_TEXT[r] ?? `result ${r}`} (condition ${ZONE_COND_LONG_NAMES[backend.engine.zoneCond(z)]})`);
      return 1;
    }
    if (all) { o.out('all sequential zones reset'); return 0; }
    const cond = backend.engine.zoneCond(z);
    let note = '';
    if (op === ZoneOp.OPEN) note = ' (open conditions are not persistent: the zone is EMPTY or CLOSED when the image is next opened)';
    o.out(`zone ${z}: ${a.op} done, now ${ZONE_COND_LONG_NAMES[cond]}${note}`);
    return 0;
  } finally {
    await backend.close();
  }
}
