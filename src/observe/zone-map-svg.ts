// The zone map: one cell per zone (or per run of zones when there are more zones than cells
// fit on a page), in rows, coloured by condition, filled from the bottom as far as the write
// pointer has advanced into the zone capacity, with the capacity gap hatched at the top.
// Fed zone by zone (a ZoneSink), so a report of a million zones is never held in memory.
import { ZoneCond, ZoneType } from '../zoned/types.js';
import { CONDITIONS, COND_SLOT, ZoneCensus, writtenSectors, type CensusGeometry } from './zone-census.js';

/** Colour per CONDITIONS slot: chosen to stay distinct for the common colour-vision deficiencies. */
export const CONDITION_COLOURS: readonly string[] = [
  '#8c8c8c', // conventional: grey
  '#d9dee4', // empty: pale (only the outline shows)
  '#5cb85c', // implicitly open: green
  '#1e7b34', // explicitly open: dark green
  '#e69f00', // closed: amber
  '#3367d6', // full: blue
  '#8e44ad', // read-only: purple
  '#d62728', // offline: red
];

/** Cells above this are aggregated: ~4096 cells keep the picture under 1 MB and a page fluid. */
export const DEFAULT_MAX_CELLS = 4096;

export interface ZoneMapOptions {
  /** First zone fed (a partial report); default 0. */
  firstZone?: number;
  /** Zones that will be fed; default all from firstZone. */
  zoneCount?: number;
  maxCells?: number;
  /** What is shown (image path, device, "live"): goes into the title. */
  subject?: string;
}

const MIB = 1024 * 1024;
function size(bytes: number): string {
  if (bytes >= 1024 * 1024 * MIB) return `${+(bytes / (1024 * 1024 * MIB)).toFixed(2)} TiB`;
  if (bytes >= 1024 * MIB && bytes % (1024 * MIB) === 0) return `${bytes / (1024 * MIB)} GiB`;
  if (bytes >= MIB) return `${+(bytes / MIB).toFixed(2)} MiB`;
  return `${+(bytes / 1024).toFixed(2)} KiB`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Builds the map from a zone stream; render() when the stream ends. */
export class ZoneMapBuilder {
  readonly geo: CensusGeometry;
  readonly firstZone: number;
  readonly zoneCount: number;
  /** Zones per cell (1 unless aggregated). */
  readonly perCell: number;
  readonly nCells: number;
  readonly census = new ZoneCensus();
  private readonly subject: string | undefined;
  // Per cell: zones of each condition, sectors written, capacity, zone length sum.
  private readonly condCounts: Uint32Array;
  private readonly written: Float64Array;
  private readonly capacity: Float64Array;
  private readonly length: Float64Array;
  private fed = 0;

  constructor(geo: CensusGeometry, o: ZoneMapOptions = {}) {
    this.geo = geo;
    this.firstZone = o.firstZone ?? 0;
    this.zoneCount = o.zoneCount ?? geo.nrZones - this.firstZone;
    const maxCells = Math.max(1, o.maxCells ?? DEFAULT_MAX_CELLS);
    this.perCell = Math.max(1, Math.ceil(this.zoneCount / maxCells));
    this.nCells = Math.ceil(this.zoneCount / this.perCell);
    this.subject = o.subject;
    this.condCounts = new Uint32Array(this.nCells * CONDITIONS.length);
    this.written = new Float64Array(this.nCells);
    this.capacity = new Float64Array(this.nCells);
    this.length = new Float64Array(this.nCells);
  }

  /** A ZoneSink: feed zones in order, starting with firstZone. */
  readonly add = (start: number, len: number, cap: number, wp: number, type: ZoneType, cond: ZoneCond): boolean => {
    if (this.fed >= this.zoneCount) return false;
    const cell = Math.floor(this.fed / this.perCell);
    this.fed++;
    this.census.add(start, len, cap, wp, type, cond);
    const slot = COND_SLOT[cond] ?? -1;
    if (slot >= 0) this.condCounts[cell * CONDITIONS.length + slot]++;
    this.written[cell] += writtenSectors(start, len, cap, wp, type, cond);
    this.capacity[cell] += type === ZoneType.CONVENTIONAL ? len : cap;
    this.length[cell] += len;
    return true;
  };

  /** The condition slot a cell is coloured with: the most common one (ties: the later slot, the more notable). */
  private cellSlot(cell: number): number {
    let best = 0, bestN = -1;
    for (let s = 0; s < CONDITIONS.length; s++) {
      const n = this.condCounts[cell * CONDITIONS.length + s];
      if (n > 0 && n >= bestN) { best = s; bestN = n; }
    }
    return best;
  }

  render(): string {
    const g = this.geo;
    const cells = this.nCells;
    // Column count: a power of two near sqrt(2·cells), 8..64, so rows start at round zone numbers.
    const cols = Math.min(64, Math.max(Math.min(8, cells), 2 ** Math.ceil(Math.log2(Math.sqrt(2 * cells)))));
    const rows = Math.ceil(cells / cols);
    const gridW = 960;
    const pitch = Math.floor(gridW / cols);
    const cw = Math.max(3, pitch - (pitch >= 12 ? 2 : 1));
    const ch = Math.max(8, Math.min(64, Math.round(pitch * 1.25)));
    const rowPitch = ch + (pitch >= 12 ? 4 : 2);
    const left = 90, top = this.perCell > 1 ? 110 : 74;
    const legendH = 86; // room for a legend on two lines
    const width = left + gridW + 20;
    const height = top + rows * rowPitch + legendH;
    const capFrac = g.zoneSectors > 0 ? g.zoneCapacitySectors / g.zoneSectors : 1;

    const o: string[] = [];
    const c = this.census;
    o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `class="zone-map" data-zones="${this.fed}" data-cells="${cells}" data-zones-per-cell="${this.perCell}" ` +
      `data-written-sectors="${c.writtenSectors}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="12">`);
    o.push('<defs><pattern id="gap" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="4" height="4" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="4" stroke="#555" stroke-width="1.5"/></pattern></defs>');
    o.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
    const title = `Zone map${this.subject ? ` of ${this.subject}` : ''}: ${fmt(g.nrZones)} zones of ${size(g.zoneSectors * 512)}` +
      `${g.zoneCapacitySectors !== g.zoneSectors ? ` (capacity ${size(g.zoneCapacitySectors * 512)})` : ''}, ${fmt(g.conventionalZones)} conventional`;
    const sub = `${size(g.capacitySectors * 512)}, block ${g.blockSize} B, max open ${g.maxOpenZones || 'unlimited'}, ` +
      `max active ${g.maxActiveZones || 'unlimited'} · now open ${c.open}, active ${c.active}, ` +
      `written ${c.capacitySectors ? (100 * c.writtenSectors / c.capacitySectors).toFixed(1) : '0'} %` +
      `${this.firstZone || this.fed < g.nrZones ? ` · zones ${fmt(this.firstZone)}..${fmt(this.firstZone + this.fed - 1)} shown` : ''}`;
    o.push(`<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`);
    o.push(`<text x="10" y="42">${esc(sub)}</text>`);
    const howTo = 'Fill: write pointer / zone capacity (bottom up); hatched top: zone size beyond capacity.';
    o.push(`<text x="10" y="60" fill="#444">${esc(howTo)}</text>`);
    if (this.perCell > 1) {
      o.push(`<text x="10" y="78" fill="#a00" font-weight="bold" class="aggregated">${esc(
        `Aggregated: each cell is ${fmt(this.perCell)} zones (${fmt(this.fed)} zones in ${fmt(cells)} cells).`)}</text>`);
      o.push(`<text x="10" y="96" fill="#a00">${esc(
        'Colour = most common condition of its zones, fill = share of their capacity written, red corner = holds offline or read-only zones.')}</text>`);
    }

    for (let cell = 0; cell < cells; cell++) {
      const r = Math.floor(cell / cols), col = cell % cols;
      const x = left + col * pitch, y = top + r * rowPitch;
      if (col === 0) {
        o.push(`<text x="${left - 6}" y="${y + ch / 2 + 4}" text-anchor="end" fill="#444">${fmt(this.firstZone + cell * this.perCell)}</text>`);
      }
      const slot = this.cellSlot(cell);
      const cond = CONDITIONS[slot];
      const colour = CONDITION_COLOURS[slot];
      const first = this.firstZone + cell * this.perCell;
      const n = Math.min(this.perCell, this.fed - cell * this.perCell);
      const cap = this.capacity[cell], len = this.length[cell], wr = this.written[cell];
      const frac = cap > 0 ? wr / cap : 0;
      const capH = ch * (len > 0 ? cap / len : capFrac);
      const fillH = capH * frac;
      const label = n === 1 ? `zone ${first}: ${cond.title}` : `zones ${first}..${first + n - 1}: mostly ${cond.title}`;
      o.push(`<g class="cell" data-zone="${first}" data-count="${n}" data-cond="${cond.label}" data-written="${wr}" data-capacity="${cap}">` +
        `<title>${esc(`${label}, ${(100 * frac).toFixed(1)} % written`)}</title>`);
      // Empty cells stay pale; any other condition tints the whole cell, so it reads even with little data.
      o.push(`<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${slot === 1 ? '#f6f7f9' : colour}"${slot === 1 ? '' : ' fill-opacity="0.22"'} ` +
        `stroke="${slot === 1 ? '#a9b1bb' : colour}" stroke-width="1"/>`);
      if (capH < ch) o.push(`<rect x="${x}" y="${y}" width="${cw}" height="${(ch - capH).toFixed(2)}" fill="url(#gap)"/>`);
      if (cond.cond === ZoneCond.OFFLINE) {
        o.push(`<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${colour}"/>`);
      } else if (fillH > 0) {
        o.push(`<rect class="fill" x="${x}" y="${(y + ch - fillH).toFixed(2)}" width="${cw}" height="${fillH.toFixed(2)}" fill="${colour}"/>`);
      }
      if (n > 1) {
        const faulted = this.condCounts[cell * CONDITIONS.length + COND_SLOT[ZoneCond.OFFLINE]] +
          this.condCounts[cell * CONDITIONS.length + COND_SLOT[ZoneCond.READONLY]];
        if (faulted > 0 && slot !== COND_SLOT[ZoneCond.OFFLINE]) {
          o.push(`<path d="M${x} ${y}h${Math.min(cw, 6)}l-${Math.min(cw, 6)} ${Math.min(cw, 6)}z" fill="${CONDITION_COLOURS[COND_SLOT[ZoneCond.OFFLINE]]}"/>`);
        }
      }
      o.push('</g>');
    }

    // Legend: swatch, name, how many zones; wrapped to the picture's width.
    const items = CONDITIONS.map((cd, s) => ({ label: `${cd.title} ${fmt(c.counts[s])}`, fill: CONDITION_COLOURS[s], cond: cd.label, n: c.counts[s] }));
    let lx = 10, ly = top + rows * rowPitch + 20;
    o.push('<g class="legend">');
    for (const it of [...items, { label: 'beyond capacity', fill: 'url(#gap)', cond: '', n: -1 }]) {
      const w = 36 + it.label.length * 6.6; // ~6.4 px per character at 12 px, with a margin
      if (lx + w > width - 10) { lx = 10; ly += 22; }
      o.push(`<g class="legend-item"${it.cond ? ` data-cond="${it.cond}" data-zones="${it.n}"` : ''}>` +
        `<rect x="${lx}" y="${ly}" width="14" height="14" fill="${it.fill}" stroke="#777"/>` +
        `<text x="${lx + 19}" y="${ly + 12}">${esc(it.label)}</text></g>`);
      lx += w;
    }
    o.push('</g></svg>');
    return o.join('\n');
  }
}

/** The map of a finished zone list (tests, small disks). */
export function zoneMapSvg(
  geo: CensusGeometry, zones: Iterable<{ start: number; len: number; cap: number; wp: number; type: ZoneType; cond: ZoneCond }>, o: ZoneMapOptions = {},
): string {
  const b = new ZoneMapBuilder(geo, o);
  for (const z of zones) if (!b.add(z.start, z.len, z.cap, z.wp, z.type, z.cond)) break;
  return b.render();
}
