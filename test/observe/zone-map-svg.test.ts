// The zone map's structure: one cell per zone up to the cell limit, the colour of each
// condition, fill proportional to the write pointer within the capacity, the capacity gap,
// aggregation announced in the picture, and the CLI's report --svg.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONDITION_COLOURS, zoneMapSvg } from '../../src/observe/zone-map-svg.js';
import { CONDITIONS, type CensusGeometry } from '../../src/observe/zone-census.js';

const BIN = path.resolve(__dirname, '../../bin/vhost-user-zbd.js');
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

interface Zone { start: number; len: number; cap: number; wp: number; type: number; cond: number }
const Z = 2048, CAP = 1536;

function geometry(n: number, conv: number): CensusGeometry {
  return { capacitySectors: n * Z, blockSize: 4096, zoneSectors: Z, zoneCapacitySectors: CAP, nrZones: n,
    conventionalZones: conv, maxOpenZones: 8, maxActiveZones: 12 };
}

/** Zone i: conventional first, then a cycle over every sequential condition. */
function zones(n: number, conv: number): Zone[] {
  const seq = [1, 2, 3, 4, 14, 13, 15];
  return Array.from({ length: n }, (_, i) => {
    const start = i * Z;
    if (i < conv) return { start, len: Z, cap: Z, wp: -1, type: 1, cond: 0 };
    const cond = seq[(i - conv) % seq.length];
    const wp = cond === 1 || cond === 15 ? start : cond === 14 ? start + CAP : start + 512;
    return { start, len: Z, cap: CAP, wp, type: 2, cond };
  });
}

/** The cells of a map: data attributes and the fill colour/height of each. */
function cells(svg: string) {
  const out: Array<{ zone: number; count: number; cond: string; written: number; fill?: { colour: string; h: number } }> = [];
  for (const m of svg.matchAll(/<g class="cell" data-zone="(\d+)" data-count="(\d+)" data-cond="([a-z_]+)" data-written="([\d.]+)"[^>]*>([\s\S]*?)<\/g>/g)) {
    const f = /<rect class="fill"[^>]* height="([\d.]+)" fill="(#[0-9a-f]+)"/.exec(m[5]);
    out.push({ zone: +m[1], count: +m[2], cond: m[3], written: +m[4], fill: f ? { colour: f[2], h: +f[1] } : undefined });
  }
  return out;
}

const colourOf = (label: string): string => CONDITION_COLOURS[CONDITIONS.findIndex((c) => c.label === label)];

describe('zone map SVG', () => {
  it('draws 64 zones as 64 cells coloured by condition, fill = wp / capacity, gap hatched, legend counts', () => {
    const svg = zoneMapSvg(geometry(64, 4), zones(64, 4), { subject: 'test.img' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.endsWith('</svg>')).toBe(true);
    const cs = cells(svg);
    expect(cs.length).toBe(64);
    expect(cs.map((c) => c.zone)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(svg).not.toContain('Aggregated');
    const byCond = new Map<string, number>();
    for (const c of cs) byCond.set(c.cond, (byCond.get(c.cond) ?? 0) + 1);
    expect(Object.fromEntries(byCond)).toEqual({ conventional: 4, empty: 9, implicit_open: 9, explicit_open: 9, closed: 9, full: 8, read_only: 8, offline: 8 });
    // Every condition in its own colour; fills drawn in it.
    expect(new Set(CONDITION_COLOURS).size).toBe(8);
    for (const c of cs) {
      if (c.cond === 'empty' || c.cond === 'offline') { expect(c.fill).toBeUndefined(); continue; }
      expect(c.fill?.colour, `zone ${c.zone}`).toBe(colourOf(c.cond));
    }
    // Fill height: a full zone fills the capacity part (ch * cap/len); 512 of 1536 sectors is a third of it.
    const full = cs.find((c) => c.cond === 'full')!, open = cs.find((c) => c.cond === 'implicit_open')!;
    expect(open.fill!.h / full.fill!.h).toBeCloseTo(512 / CAP, 2);
    expect(open.written).toBe(512);
    // Capacity gap hatched in every sequential cell (capacity < zone size).
    expect(svg.match(/fill="url\(#gap\)"/g)!.length).toBe(60 + 1 /* legend */);
    // Offline: the whole cell in red; legend counts; title with the geometry.
    expect(svg).toMatch(new RegExp(`data-cond="offline"[^>]*><title>[^<]*</title>[\\s\\S]*?fill="${colourOf('offline')}"`));
    expect(svg).toContain('data-cond="full" data-zones="8"');
    expect(svg).toContain('Zone map of test.img: 64 zones of 1 MiB (capacity 768 KiB), 4 conventional');
    expect(svg).toMatch(/max open 8, max active 12 · now open 18, active 27/);
  });

  it('aggregates 100 000 zones into at most 4096 cells and says so in the picture', () => {
    const n = 100_000;
    const svg = zoneMapSvg(geometry(n, 100), zones(n, 100));
    const cs = cells(svg);
    expect(cs.length).toBe(4000);
    expect(cs.every((c) => c.count === 25)).toBe(true);
    expect(cs[cs.length - 1].zone).toBe(n - 25);
    expect(svg).toContain('Aggregated: each cell is 25 zones (100,000 zones in 4,000 cells).');
    expect(svg).toMatch(/data-zones="100000" data-cells="4000" data-zones-per-cell="25"/);
    // The first 4 cells are the 100 conventional zones.
    expect(cs.slice(0, 4).every((c) => c.cond === 'conventional')).toBe(true);
    // A cell holding an offline zone without being mostly offline gets the red corner mark.
    expect(svg).toMatch(/<path d="M\d+ \d+h\d+l-\d+ \d+z" fill="#d62728"\/>/);
    expect(svg.length).toBeLessThan(2_000_000);
  });

  it('report IMG --svg writes the map of the image (and of a zone range)', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-svg-'));
    dirs.push(d);
    const img = path.join(d, 'a.img');
    const cli = (...a: string[]): string => execFileSync(process.execPath, [BIN, ...a], { encoding: 'utf8' });
    cli('create', img, '--size', '1G', '--zone-size', '16M', '--conventional', '2');
    cli('zone', img, 'finish', '5');
    cli('zone', img, 'offline', '7');
    expect(cli('report', img, '--svg', path.join(d, 'm.svg')).trim()).toBe(`zone map of 64 zones written to ${path.join(d, 'm.svg')}`);
    const cs = cells(fs.readFileSync(path.join(d, 'm.svg'), 'utf8'));
    expect(cs.length).toBe(64);
    expect(cs[5].cond).toBe('full');
    expect(cs[7].cond).toBe('offline');
    expect(cs[0].cond).toBe('conventional');
    cli('report', img, '--svg', path.join(d, 'r.svg'), '--zone', '4', '--count', '8');
    const r = fs.readFileSync(path.join(d, 'r.svg'), 'utf8');
    expect(cells(r).map((c) => c.zone)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(r).toContain('zones 4..11 shown');
    // An unwritable path: a clear error, exit non-zero.
    expect(() => execFileSync(process.execPath, [BIN, 'report', img, '--svg', path.join(d, 'no/such/dir/x.svg')], { encoding: 'utf8', stdio: 'pipe' }))
      .toThrow(/cannot write the zone map/);
  });
});
