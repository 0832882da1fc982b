#!/usr/bin/env node
// How long a 4K read of one zone waits while another, full zone is reset (its space freed).
// Usage: node scripts/bench-reset-stall.mjs [CHECKOUT_ROOT] [ZONE_MIB]
// CHECKOUT_ROOT defaults to this repository (built with `npm run build`); pass another
// checkout to compare builds. The image lives in a private directory in /dev/shm.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const zoneMiB = Number(process.argv[3] ?? 1024);
const { createImage, openImage } = await import(path.join(root, 'dist/backends/file-backend.js'));
const RESET = 3; // ZoneOp.RESET (a const enum: not in the emitted JavaScript)
const MiB = 1 << 20;
const dir = fs.mkdtempSync('/dev/shm/vuzbd-reset-stall-');
try {
  const image = path.join(dir, 'zoned.img');
  const zoneBytes = zoneMiB * MiB;
  createImage(image, { capacitySectors: (4 * zoneBytes) / 512, zoneSectors: zoneBytes / 512, blockSize: 4096 });
  const { backend } = openImage(image);
  const chunk = Buffer.alloc(8 * MiB, 7);
  for (let off = 0; off < zoneBytes; off += chunk.length) await backend.write((zoneBytes + off) / 512, [chunk]);
  await backend.write((2 * zoneBytes) / 512, [Buffer.alloc(4096, 1)]);
  const rows = [];
  for (let rep = 0; rep < 3; rep++) {
    if (rep > 0) for (let off = 0; off < zoneBytes; off += chunk.length) await backend.write((zoneBytes + off) / 512, [chunk]);
    const t0 = performance.now();
    const reset = backend.zoneMgmt(RESET, zoneBytes / 512).then(() => performance.now() - t0);
    // Let the reset start, then read the other zone.
    await new Promise((r) => setImmediate(r));
    const buf = new Uint8Array(4096);
    await backend.read((2 * zoneBytes) / 512, [buf]);
    const readMs = performance.now() - t0;
    if (buf[0] !== 1) throw new Error('read returned wrong data');
    rows.push({ resetMs: +(await reset).toFixed(1), readDoneMs: +readMs.toFixed(2) });
  }
  await backend.close();
  console.log(JSON.stringify({ root, zoneMiB, runs: rows }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
