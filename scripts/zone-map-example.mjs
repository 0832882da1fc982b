// Draws the example zone maps of docs/: a 64-zone disk driven through the real zone engine
// (memory backend), and a synthetic 100 000-zone report (the aggregated view).
// Usage: node scripts/zone-map-example.mjs OUT_DIR   (after npm run build)
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createMemoryBackend } from '../dist/backends/memory-backend.js';
import { renderZoneMap } from '../dist/observe/zone-map-file.js';
import { zoneMapSvg } from '../dist/observe/zone-map-svg.js';

const out = process.argv[2] ?? 'docs';
const ZS = 2048; // 1 MiB zones
const b = createMemoryBackend({ capacitySectors: 64 * ZS, zoneSectors: ZS, zoneCapacitySectors: ZS - 512, conventionalZones: 4,
  blockSize: 4096, maxOpenZones: 16, maxActiveZones: 24 }, { logger: pino({ level: 'silent' }) });
const buf = new Uint8Array(128 * 1024);
const OPEN = 0, CLOSE = 1, FINISH = 2, SET_READONLY = 5, SET_OFFLINE = 6;
for (let z = 4; z < 46; z++) {
  const k = (z * 7919) % 13;
  if (k === 0) continue;
  if (k >= 11) { await b.zoneMgmt(FINISH, z * ZS); continue; }
  for (let i = 0; i < Math.min(k, 5); i++) await b.write(z * ZS + i * 256, [buf]);
  if (k === 5 || k === 7) await b.zoneMgmt(CLOSE, z * ZS);
  else if (k === 3) await b.zoneMgmt(OPEN, z * ZS);
}
await b.zoneMgmt(SET_OFFLINE, 52 * ZS);
await b.zoneMgmt(SET_READONLY, 54 * ZS);
fs.writeFileSync(path.join(out, 'zone-map-64.svg'), (await renderZoneMap(b, { subject: 'a 64-zone disk' })).render());
await b.close();

// 100 000 zones of 256 MiB: a filesystem that filled the first 40 % and is reclaiming.
const N = 100_000, Z = 524288, CAP = 524288 - 65536;
function* zones() {
  for (let z = 0; z < N; z++) {
    const start = z * Z;
    if (z < 100) { yield { start, len: Z, cap: Z, wp: -1, type: 1, cond: 0 }; continue; }
    const h = (z * 2654435761) >>> 0;
    let cond = 1, wp = start;
    if (z < 40_000) { cond = h % 9 === 0 ? 1 : 14; wp = cond === 14 ? start + CAP : start; }
    else if (z < 40_014) { cond = 2; wp = start + (h % 64) * 8192; }
    else if (z < 40_040) { cond = 4; wp = start + (h % 64) * 4096; }
    if (z === 71_234) cond = 15;
    if (z === 85_000) cond = 13;
    yield { start, len: Z, cap: CAP, wp, type: 2, cond };
  }
}
fs.writeFileSync(path.join(out, 'zone-map-100k.svg'), zoneMapSvg({ capacitySectors: N * Z, blockSize: 4096, zoneSectors: Z,
  zoneCapacitySectors: CAP, nrZones: N, conventionalZones: 100, maxOpenZones: 14, maxActiveZones: 28 }, zones(), { subject: 'a synthetic 24 TiB SMR-like report' }));
