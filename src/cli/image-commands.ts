// Offline image tools: create, report, check [--repair], zone <op>.
import fs from 'node:fs';
import { ZbdError } from '../errors.js';
import { bytesToSectors, parseSize } from '../zoned/geometry.js';
import { ZoneEngine } from '../zoned/zone-engine.js';
import { reportedWp } from '../zoned/zone-rules.js';
import { persistedCond, type PersistedZoneState } from '../zoned/zone-table.js';
import { ZONE_COND_LONG_NAMES, ZoneCond, ZoneOp, ZoneResult, ZoneType } from '../zoned/types.js';
import {
  createImage, inspectImageFd, openImage, openImageHeader, openLocked, repairImageFd, zoneTableChunks, type ImageProfile,
} from '../backends/image-file.js';
import { decodeZoneEntry, ZONE_ENTRY_SIZE, type Preallocation } from '../backends/image-format.js';
import { imageSerial } from '../backends/serial.js';
import { formatBytes } from '../backends/host-file-error.js';
import { HostDeviceBackend } from '../backends/host-device-backend.js';
import { jsonReportHead, jsonReportTail, writeZoneJson, writeZoneLine, ZONE_LINE_MAX } from './report-format.js';
import { OutputBatch } from './output-batch.js';
import { writeZoneMapFile } from '../observe/zone-map-file.js';

/** Where command output goes; tests capture it. */
export interface Out {
  out(line: string): void;
  err(line: string): void;
  /**
   * Bulk output (a report of a million zones): returns a promise when the destination is
   * full (a pipe whose reader is slower), to be awaited before writing more. `written` is
   * called once the destination no longer needs `data` (the caller may reuse it).
   */
  write(data: string | Uint8Array, written?: () => void): Promise<void> | undefined;
}

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
  preallocation?: Preallocation;
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
    preallocation: a.preallocation,
  });
  const g = header.geometry;
  o.out(`created ${a.image}: ${g.capacitySectors * 512} bytes, ${g.nrZones} zones of ${g.zoneSectors * 512} bytes ` +
    `(capacity ${g.zoneCapacitySectors * 512}), ${g.conventionalZones} conventional, block size ${g.blockSize}, ` +
    `max open ${g.maxOpenZones || 'unlimited'}, max active ${g.maxActiveZones || 'unlimited'}, max append ${g.maxAppendSectors * 512} bytes, profile ${header.profile}, preallocation ${header.preallocation}`);
  return 0;
}

export interface ReportArgs { image?: string; device?: string; json?: boolean; zone?: number; count?: number; svg?: string }

/**
 * The zones of an image, streamed: the zone table is read a chunk at a time and each chunk
 * printed before the next is read, waiting for a slow reader (a pipe), so memory stays
 * bounded whatever the zone count, and a --zone/--count window reads only its own entries.
 */
export async function cmdReport(a: ReportArgs, o: Out): Promise<number> {
  if (!!a.image === !!a.device) throw new ZbdError('EARG', 'report needs exactly one of IMAGE or --device /dev/X', { image: a.image, device: a.device });
  if (a.device) return cmdReportDevice(a, a.device, o);
  const image = a.image as string;
  if (a.svg) return reportImageSvg(a, image, a.svg, o);
  const { fd, header } = openImageHeader(image, false);
  try {
    const g = header.geometry;
    const first = a.zone ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= g.nrZones) throw new ZbdError('EARG', `--zone ${first} is not a zone of this image (0..${g.nrZones - 1})`, first);
    const count = Math.min(a.count ?? g.nrZones, g.nrZones - first);
    // Geometry and entry validation only: it holds no zone state of this image.
    const probe = new ZoneEngine(g);
    const batch = new OutputBatch(o);
    const entry: PersistedZoneState = { wp: 0, dataEnd: 0, flags: 0 };
    if (a.json) {
      batch.add(jsonReportHead({
        image, serial: imageSerial(header.uuid), profile: header.profile, preallocation: header.preallocation,
        capacitySectors: g.capacitySectors, blockSize: g.blockSize, zoneSectors: g.zoneSectors,
        zoneCapacitySectors: g.zoneCapacitySectors, nrZones: g.nrZones, conventionalZones: g.conventionalZones,
        maxOpenZones: g.maxOpenZones, maxActiveZones: g.maxActiveZones, maxAppendSectors: g.maxAppendSectors,
      }));
    }
    for (const c of zoneTableChunks(fd, header, first, count)) {
      for (let i = 0; i < c.count; i++) {
        const z = c.first + i;
        const e = decodeZoneEntry(c.buf, i * ZONE_ENTRY_SIZE, entry);
        if (!e) throw new ZbdError('EIMAGE', `zone ${z}: zone entry checksum mismatch (run 'vhost-user-zbd check --repair')`, z);
        const start = probe.zoneStart(z), len = probe.zoneLen(z), cap = probe.zoneCap(z), type = probe.zoneType(z);
        let cond: ZoneCond;
        if (type === ZoneType.CONVENTIONAL) {
          cond = ZoneCond.NOT_WP;
        } else {
          const problem = probe.validatePersisted(z, e);
          if (problem) throw new ZbdError('EIMAGE', `zone ${z}: ${problem} (run 'vhost-user-zbd check --repair')`, { zone: z, ...e });
          cond = persistedCond(e, start, start + cap);
        }
        const wp = reportedWp(cond, start, len, e.wp);
        batch.ensure(ZONE_LINE_MAX);
        if (a.json) batch.pos = writeZoneJson(batch.buf, putJsonSeparator(batch, z === first), z, start, len, cap, wp, type, cond);
        else batch.pos = writeZoneLine(batch.buf, batch.pos, start, len, cap, wp, type, cond);
      }
      await batch.flush();
    }
    if (a.json) batch.add(jsonReportTail());
    await batch.flush();
    return 0;
  } finally {
    fs.closeSync(fd);
  }
}

/** `report IMG --svg FILE`: the zone map of the image (or of its --zone/--count window) as a picture. */
async function reportImageSvg(a: ReportArgs, image: string, file: string, o: Out): Promise<number> {
  const { backend, header } = openImage(image, { readOnly: true });
  try {
    const g = header.geometry;
    const first = a.zone ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= g.nrZones) throw new ZbdError('EARG', `--zone ${first} is not a zone of this image (0..${g.nrZones - 1})`, first);
    const count = Math.min(a.count ?? g.nrZones, g.nrZones - first);
    o.out(await writeZoneMapFile(file, backend, { firstZone: first, zoneCount: count, subject: image }));
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
    const count = Math.min(a.count ?? zi.nrZones, zi.nrZones - first);
    if (a.svg) { o.out(await writeZoneMapFile(a.svg, backend, { firstZone: first, zoneCount: count, subject: device })); return 0; }
    const batch = new OutputBatch(o);
    if (a.json) {
      const f = backend.facts;
      batch.add(jsonReportHead({
        device, name: f.name, serial: backend.info.serial, model: f.model,
        capacitySectors: backend.info.capacitySectors, blockSize: backend.info.blockSize, physicalBlockSize: backend.info.physicalBlockSize,
        zoneSectors: zi.zoneSectors, zoneCapacitySectors: zi.zoneCapacitySectors, nrZones: zi.nrZones, conventionalZones: zi.conventionalZones,
        maxOpenZones: zi.maxOpenZones, maxActiveZones: zi.maxActiveZones, maxAppendSectors: zi.maxAppendSectors,
      }));
    }
    // A window of zones per report call, printed before the next is asked for.
    for (let z = first; z < first + count;) {
      const n = await backend.reportZones(z * zi.zoneSectors, Math.min(DEVICE_REPORT_WINDOW, first + count - z), (start, len, cap, wp, type, cond) => {
        batch.ensure(ZONE_LINE_MAX);
        if (a.json) batch.pos = writeZoneJson(batch.buf, putJsonSeparator(batch, z === first), z, start, len, cap, wp, type, cond);
        else batch.pos = writeZoneLine(batch.buf, batch.pos, start, len, cap, wp, type, cond);
        z++;
        return true;
      });
      if (n === 0) break;
      await batch.flush();
    }
    if (a.json) batch.add(jsonReportTail());
    await batch.flush();
    return 0;
  } finally {
    await backend.close();
  }
}

/** Before a zone of the JSON report: ",\n" after the previous one, and the indent. Returns the position after. */
function putJsonSeparator(batch: OutputBatch, firstZone: boolean): number {
  const b = batch.buf;
  let pos = batch.pos;
  if (!firstZone) { b[pos++] = 0x2c; b[pos++] = 0x0a; }
  b[pos++] = 0x20; b[pos++] = 0x20; b[pos++] = 0x20; b[pos++] = 0x20;
  return pos;
}

/** Zones asked of a host device per report call. */
const DEVICE_REPORT_WINDOW = 4096;

/** "allocated 1.2 GiB of 64.0 GiB (1.9%), preallocation off": how much of the image holds real blocks. */
function allocationText(alloc: { allocatedBytes: number; fileBytes: number; capacityBytes: number }, preallocation: Preallocation): string {
  const pct = alloc.fileBytes > 0 ? (100 * alloc.allocatedBytes) / alloc.fileBytes : 0;
  return `allocated ${alloc.allocatedBytes} of ${alloc.fileBytes} bytes (${formatBytes(alloc.allocatedBytes)} of ${formatBytes(alloc.fileBytes)}, ` +
    `${pct.toFixed(pct < 10 ? 1 : 0)}%; data capacity ${formatBytes(alloc.capacityBytes)}), preallocation ${preallocation}`;
}

export async function cmdCheck(a: { image: string; repair?: boolean }, o: Out): Promise<number> {
  const fd = openLocked(a.image, !!a.repair);
  try {
    const ins = inspectImageFd(fd);
    const g = ins.header.geometry;
    const batch = new OutputBatch(o);
    batch.add(`${a.image}: ${allocationText(ins.allocation, ins.header.preallocation)}\n`);
    if (ins.problems.length === 0) {
      batch.add(`${a.image}: clean (${g.nrZones} zones, ${g.conventionalZones} conventional)\n`);
      await batch.flush();
      return 0;
    }
    for (const p of ins.problems) {
      batch.add(`${p.zone < 0 ? 'image' : `zone ${p.zone}`}: ${p.message}${a.repair ? '' : ` [repair: ${p.repair}]`}\n`);
    }
    if (!a.repair) {
      batch.add(`${a.image}: ${ins.problems.length} problem(s); run with --repair to fix\n`);
      await batch.flush();
      return 1;
    }
    for (const line of repairImageFd(fd, ins)) batch.add(`repaired ${line}\n`);
    await batch.flush();
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
