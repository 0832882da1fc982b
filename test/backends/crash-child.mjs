// Child of crash.test.ts: opens an image and writes/appends/resets at random, many requests
// in flight, printing one line per event on stdout *after* the event:
//   I <id> <kind> <zone> <sector> <n>   issued (sector -1 for appends: not known yet)
//   C <id> <result> <sector>            completed (acknowledged) with its result and sector
// Every 512-byte sector written carries [u64 sector][u64 id] so the parent can tell whose data it is.
import fs from 'node:fs';
import { openImage } from '../../dist/backends/image-file.js';

const [image, seedArg, firstIdArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0;
const rand = () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 2 ** 32; };
const randInt = (n) => Math.floor(rand() * n);
const say = (line) => fs.writeSync(1, line + '\n');

const { backend } = openImage(image);
const e = backend.engine;
const g = e.geo;
const bs = g.blockSectors;
let nextId = Number(firstIdArg);
const busyZones = new Set(); // zones with a pending reset/finish: no new writes there
const convBusy = new Set(); // conventional blocks with a write in flight
let inflight = 0;

function payload(sector, n, id) {
  const buf = Buffer.alloc(n * 512);
  for (let i = 0; i < n; i++) {
    buf.writeBigUInt64LE(BigInt(sector + i), i * 512);
    buf.writeBigUInt64LE(BigInt(id), i * 512 + 8);
    buf.fill(id & 0xff, i * 512 + 16, i * 512 + 512);
  }
  return buf;
}
// Split the payload into a few views, like a guest's scatter list.
const iov = (buf) => { const cut = Math.floor(buf.length / 2 / 512) * 512; return cut ? [buf.subarray(0, cut), buf.subarray(cut)] : [buf]; };

function issue() {
  const id = nextId++;
  const r = rand();
  if (r < 0.12 && g.conventionalZones > 0) {
    const block = randInt((g.conventionalZones * g.zoneSectors) / bs);
    if (convBusy.has(block)) return;
    convBusy.add(block);
    const sector = block * bs;
    say(`I ${id} conv ${Math.floor(sector / g.zoneSectors)} ${sector} ${bs}`);
    inflight++;
    backend.write(sector, iov(payload(sector, bs, id))).then((res) => { convBusy.delete(block); inflight--; say(`C ${id} ${res} ${sector}`); });
    return;
  }
  const z = g.conventionalZones + randInt(g.nrZones - g.conventionalZones);
  if (busyZones.has(z)) return;
  const cond = e.zoneCond(z);
  if (r > 0.97 || (cond === 14 && r > 0.5)) {
    const op = r > 0.99 ? 2 /* FINISH */ : 3 /* RESET */;
    busyZones.add(z);
    say(`I ${id} ${op === 3 ? 'reset' : 'finish'} ${z} ${e.zoneStart(z)} 0`);
    inflight++;
    backend.zoneMgmt(op, e.zoneStart(z)).then((res) => { busyZones.delete(z); inflight--; say(`C ${id} ${res} ${e.zoneStart(z)}`); });
    return;
  }
  const room = e.zoneStart(z) + e.zoneCap(z) - e.zoneWp(z);
  if (room <= 0) return;
  const n = Math.min(room, bs * (1 + randInt(8)));
  if (r < 0.55) {
    const sector = e.zoneWp(z);
    say(`I ${id} write ${z} ${sector} ${n}`);
    inflight++;
    backend.write(sector, iov(payload(sector, n, id))).then((res) => { inflight--; say(`C ${id} ${res} ${sector}`); });
  } else {
    // The target sector is decided synchronously by the engine: the payload must carry it.
    const sector = e.zoneWp(z);
    say(`I ${id} append ${z} -1 ${n}`);
    inflight++;
    backend.append(e.zoneStart(z), iov(payload(sector, n, id))).then((res) => { inflight--; say(`C ${id} ${res.result} ${res.sector}`); });
  }
}

function pump() {
  // Bounded: issue() may decline (zone busy or full).
  for (let tries = 0; inflight < 16 && tries < 64; tries++) issue();
  setImmediate(pump);
}
say('READY');
pump();
