// `report --svg FILE` (and the live daemon's /zones.svg): the zone map of a backend, read with
// one zone report pass.
import fs from 'node:fs';
import type { Backend } from '../backends/backend.js';
import { ZbdError } from '../errors.js';
import { censusGeometry } from './zone-census.js';
import { ZoneMapBuilder, type ZoneMapOptions } from './zone-map-svg.js';

/** Renders the map of zones [firstZone, firstZone + zoneCount) of a zoned backend. */
export async function renderZoneMap(backend: Backend, o: ZoneMapOptions = {}): Promise<ZoneMapBuilder> {
  const geo = censusGeometry(backend.info);
  if (!geo) throw new ZbdError('EARG', 'a zone map needs a zoned disk; this one is regular', backend.info.serial);
  const b = new ZoneMapBuilder(geo, o);
  await backend.reportZones(b.firstZone * geo.zoneSectors, b.zoneCount, b.add);
  return b;
}

/** Writes the map to `file`; returns the line the CLI prints. */
export async function writeZoneMapFile(file: string, backend: Backend, o: ZoneMapOptions = {}): Promise<string> {
  const b = await renderZoneMap(backend, o);
  const svg = b.render();
  try {
    fs.writeFileSync(file, svg);
  } catch (err) {
    throw new ZbdError('EARG', `--svg ${file}: cannot write the zone map: ${(err as Error).message}`, file, { cause: err });
  }
  const agg = b.perCell > 1 ? ` (${b.nCells} cells of ${b.perCell} zones each)` : '';
  return `zone map of ${b.census.zones} zones written to ${file}${agg}`;
}
