// The load generator: a virtio-blk driver in a loop. Each queue has `qd` request slots with
// fixed guest buffers; a completed slot is refilled at once, so every queue keeps qd requests
// in flight. Completions are found by reading used.idx (polling); after spinUs without one
// the generator sleeps on the call eventfds, with used_event armed as a Linux guest does.
// Nothing is allocated per request and the Node event loop is not involved while running
// (only the vhost-user set-up and tear-down around the run are asynchronous).
import { memoryBarrier, pollFds, readBarrier, readCounter } from '../native/index.js';
import { BLK_F, REQ, writeBlkHeader } from '../testing/blk-request.js';
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from '../testing/driver-queue.js';
import { VhostUserFrontend, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../testing/frontend.js';
import { GuestMemoryImage } from '../testing/guest-memory.js';
import { ProtocolFeature } from '../vhost-user/messages.js';
import { Histogram } from './histogram.js';
import { processCpuSeconds } from './proc-stat.js';

export type OpKind = 'randread' | 'randwrite' | 'seqwrite' | 'append' | 'zwrite' | 'report';

export interface ZoneSpan {
  /** First zone index used (a sequential zone). */
  first: number;
  count: number;
  zoneSectors: number;
  capSectors: number;
}

export interface LoadJob {
  socket: string;
  /** Daemon whose CPU time is sampled over the measured window (0: none). */
  daemonPid: number;
  op: OpKind;
  /** Request data size in bytes (multiple of 512). */
  bs: number;
  /** Requests in flight per queue. */
  qd: number;
  queues: number;
  queueSize: number;
  /** Byte range of the disk the random and sequential operations use. */
  offset: number;
  span: number;
  zones?: ZoneSpan;
  /** Zones per report request. */
  reportZones?: number;
  warmupMs: number;
  durationMs: number;
  /** Poll used.idx this long without a completion before sleeping on the call fds. */
  spinUs: number;
}

export interface LoadResult {
  ops: number;
  bytes: number;
  seconds: number;
  iops: number;
  /** 10^6 bytes per second. */
  mbps: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  errors: number;
  firstError: string | null;
  /** CPU time of this process (all threads) over the measured window. */
  genCpuS: number;
  /** CPU time of the daemon (all threads) over the same window; -1 if not sampled. */
  daemonCpuS: number;
  kicks: number;
  sleeps: number;
  zoneResets: number;
}

const KIND_DATA = 0, KIND_RESET = 1;
const Z_ACTIVE = 0, Z_DRAINING = 1, Z_RESETTING = 2;
const DRAIN_LIMIT_MS = 30_000;

const bit = (n: number): bigint => 1n << BigInt(n);
/** Driver features we take: what a Linux virtio-blk driver would, minus indirect chains. */
const WANTED_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | bit(BLK_F.SEG_MAX) | bit(BLK_F.BLK_SIZE) | bit(BLK_F.FLUSH) |
  bit(BLK_F.TOPOLOGY) | bit(BLK_F.CONFIG_WCE) | bit(BLK_F.MQ) | bit(BLK_F.SIZE_MAX);
const WANTED_PROTOCOL = bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG);

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const { qd, queues, bs } = job;
  if (3 * qd > job.queueSize) throw new Error(`queue depth ${qd} needs a queue of ${3 * qd} descriptors (size ${job.queueSize})`);
  if (bs % 512 !== 0 || bs <= 0) throw new Error(`block size ${bs} is not a positive multiple of 512`);
  const isReport = job.op === 'report';
  const zoneOp = job.op === 'append' || job.op === 'zwrite';
  if (zoneOp && !job.zones) throw new Error(`${job.op} needs a zone span`);
  const dataBytes = isReport ? 64 + 64 * (job.reportZones ?? 1) : bs;
  const slotsTotal = qd * queues;
  const ringBytes = 3 * 4096 + 16 * job.queueSize + 8 * job.queueSize + 4096;
  // At gpa 0, so a guest-physical address is an offset into the mapping.
  const mem = GuestMemoryImage.simple(queues * ringBytes + slotsTotal * (Math.ceil(dataBytes / 4096) * 4096 + 64) + (1 << 20), 0);
  const fe = VhostUserFrontend.connect(job.socket);
  const zonedFeature = zoneOp || isReport ? bit(BLK_F.ZONED) : 0n;
  const { features, queues: rings } = await fe.startDevice(mem, {
    queues, size: job.queueSize, wanted: WANTED_FEATURES | zonedFeature, protocol: WANTED_PROTOCOL,
  });
  if (zonedFeature && (features & zonedFeature) === 0n) throw new Error('the daemon does not offer a zoned disk');

  const dv = mem.regions[0].dv, bytes = mem.regions[0].bytes;
  // Per-slot guest buffers, laid out once. Slot s of queue q uses descriptors 3s..3s+2.
  const hdrGpa = new Float64Array(slotsTotal), dataGpa = new Float64Array(slotsTotal), tailGpa = new Float64Array(slotsTotal);
  for (let i = 0; i < slotsTotal; i++) {
    hdrGpa[i] = mem.alloc(16, 16);
    tailGpa[i] = mem.alloc(16, 16);
  }
  for (let i = 0; i < slotsTotal; i++) {
    dataGpa[i] = mem.alloc(dataBytes, 4096);
    // Writes carry a pattern rather than zeroes (no zero-page shortcuts anywhere).
    for (let b = 0; b < dataBytes; b += 512) bytes[dataGpa[i] + b] = (i + b) & 0xff;
  }
  const slotKind = new Int8Array(slotsTotal);
  const slotZone = new Int32Array(slotsTotal);
  const slotTail = new Int8Array(slotsTotal);
  const slotT = new Float64Array(slotsTotal);
  const slotBusy = new Uint8Array(slotsTotal);
  const free: number[][] = [];
  for (let q = 0; q < queues; q++) {
    const f: number[] = [];
    for (let s = qd - 1; s >= 0; s--) f.push(s);
    free.push(f);
  }

  // Zones: queue q owns zones z with z % queues === q, so writes at a write pointer stay in order.
  const nz = job.zones?.count ?? 0;
  const zoneAlloc = new Float64Array(nz);
  const zoneInflight = new Int32Array(nz);
  // Every zone starts with a reset, so runs do not depend on what earlier runs left behind.
  const zoneState = new Int8Array(nz).fill(Z_DRAINING);
  const zoneRr = new Int32Array(queues);
  for (let q = 0; q < queues; q++) zoneRr[q] = q;
  const zs = job.zones;

  const spanBlocks = Math.floor(job.span / bs);
  const bsSectors = bs / 512;
  let seqPos = 0;
  const hist = new Histogram();
  let phase = 0; // 0 warm-up, 1 measured, 2 draining
  let ops = 0, opBytes = 0, errors = 0, sleeps = 0, resets = 0;
  let firstError: string | null = null;
  let inflight = 0;

  /** Puts a request into slot s of queue q; false when nothing can be issued now. */
  const fill = (q: number, s: number, now: number): boolean => {
    const ring = rings[q];
    const i = q * qd + s;
    const d = 3 * s;
    let type: number = REQ.IN, sector = 0, dataLen = dataBytes, dataWrite = true, tail = 1;
    let kind = KIND_DATA, zone = -1;
    switch (job.op) {
      case 'randread':
        sector = job.offset / 512 + Math.floor(Math.random() * spanBlocks) * bsSectors;
        break;
      case 'randwrite':
        type = REQ.OUT; dataWrite = false;
        sector = job.offset / 512 + Math.floor(Math.random() * spanBlocks) * bsSectors;
        break;
      case 'seqwrite':
        type = REQ.OUT; dataWrite = false;
        sector = (job.offset + seqPos) / 512;
        seqPos += bs;
        if (seqPos + bs > job.span) seqPos = 0;
        break;
      case 'report':
        type = REQ.ZONE_REPORT;
        break;
      default: {
        const z0 = zs as ZoneSpan;
        let found = -1;
        for (let tries = 0; tries < nz && found < 0; tries++) {
          const z = zoneRr[q];
          zoneRr[q] = z + queues < nz ? z + queues : q;
          if (zoneState[z] === Z_ACTIVE) {
            if (zoneAlloc[z] + bsSectors <= z0.capSectors) { found = z; break; }
            zoneState[z] = Z_DRAINING;
          }
          if (zoneState[z] === Z_DRAINING && zoneInflight[z] === 0) {
            zoneState[z] = Z_RESETTING;
            kind = KIND_RESET;
            found = z;
          }
        }
        if (found < 0) return false;
        zone = found;
        const zoneStart = (z0.first + zone) * z0.zoneSectors;
        if (kind === KIND_RESET) {
          type = REQ.ZONE_RESET; sector = zoneStart; dataLen = 0;
        } else if (job.op === 'append') {
          type = REQ.ZONE_APPEND; sector = zoneStart; dataWrite = false; tail = 16;
        } else {
          type = REQ.OUT; sector = zoneStart + zoneAlloc[zone]; dataWrite = false;
        }
        if (kind === KIND_DATA) { zoneAlloc[zone] += bsSectors; zoneInflight[zone]++; }
      }
    }
    writeBlkHeader(dv, hdrGpa[i], type, sector);
    bytes[tailGpa[i] + tail - 1] = 0xff;
    if (dataLen > 0) {
      ring.writeDesc(d, hdrGpa[i], 16, VRING_DESC_F_NEXT, d + 1);
      ring.writeDesc(d + 1, dataGpa[i], dataLen, VRING_DESC_F_NEXT | (dataWrite ? VRING_DESC_F_WRITE : 0), d + 2);
    } else {
      ring.writeDesc(d, hdrGpa[i], 16, VRING_DESC_F_NEXT, d + 2);
    }
    ring.writeDesc(d + 2, tailGpa[i], tail, VRING_DESC_F_WRITE, 0);
    slotKind[i] = kind; slotZone[i] = zone; slotTail[i] = tail; slotT[i] = now; slotBusy[i] = 1;
    ring.place(d);
    inflight++;
    return true;
  };

  const complete = (q: number, s: number, now: number): void => {
    const i = q * qd + s;
    inflight--;
    slotBusy[i] = 0;
    const status = bytes[tailGpa[i] + slotTail[i] - 1];
    const zone = slotZone[i];
    if (slotKind[i] === KIND_RESET) {
      zoneAlloc[zone] = 0;
      zoneState[zone] = Z_ACTIVE;
      resets++;
    } else if (zone >= 0) {
      zoneInflight[zone]--;
    }
    if (status !== 0) {
      errors++;
      firstError ??= `${job.op} request (slot ${i}, zone ${zone}) completed with virtio status ${status}`;
      if (zone >= 0) zoneState[zone] = zoneState[zone] === Z_ACTIVE ? Z_DRAINING : zoneState[zone];
    } else if (isReport) {
      const n = dv.getUint32(dataGpa[i], true);
      if (n !== job.reportZones) { errors++; firstError ??= `zone report returned ${n} zones, ${job.reportZones} asked`; }
    }
    if (phase === 1 && slotKind[i] === KIND_DATA) {
      ops++;
      opBytes += isReport ? 0 : dataBytes;
      hist.record((now - slotT[i]) * 1e6);
    }
  };

  const callFds = Int32Array.from(rings, (r) => r.callFd);
  const pollSet = new Int32Array(callFds.length);
  const spinMs = job.spinUs / 1000;
  const tStart = performance.now();
  const tMeasure = tStart + job.warmupMs;
  const tEnd = tMeasure + job.durationMs;
  let cpu0 = process.cpuUsage(), daemon0 = 0, t0 = tMeasure, t1 = tEnd, genCpuS = 0, daemonCpuS = -1;
  let idleSince = 0;
  let now = tStart;

  const submitAll = (now: number): void => {
    for (let q = 0; q < queues; q++) {
      const f = free[q];
      while (f.length > 0) {
        if (!fill(q, f[f.length - 1], now)) break;
        f.pop();
      }
      const ring = rings[q];
      if (ring.unpublished > 0) ring.kickIfNeeded();
    }
  };

  submitAll(now);
  for (;;) {
    now = performance.now();
    if (phase === 0 && now >= tMeasure) {
      phase = 1;
      t0 = now;
      cpu0 = process.cpuUsage();
      if (job.daemonPid > 0) daemon0 = processCpuSeconds(job.daemonPid);
    } else if (phase === 1 && now >= tEnd) {
      phase = 2;
      t1 = now;
      const c = process.cpuUsage(cpu0);
      genCpuS = (c.user + c.system) / 1e6;
      if (job.daemonPid > 0) daemonCpuS = processCpuSeconds(job.daemonPid) - daemon0;
    }
    if (phase === 2 && (inflight === 0 || now > t1 + DRAIN_LIMIT_MS)) break;
    let done = 0;
    for (let q = 0; q < queues; q++) {
      const ring = rings[q];
      const used = ring.usedIdx;
      if (used === ring.lastUsed) continue;
      const f = free[q];
      const ahead = (used - ring.lastUsed) & 0xffff;
      if (ahead > qd - f.length) {
        // More completions than requests out: a used.idx that went back, or one never published.
        throw new Error(`queue ${q}: used.idx ${used} is ${ahead} entries past the last consumed (${ring.lastUsed}), ` +
          `but only ${qd - f.length} requests are in flight (avail.idx ${ring.availIdx})`);
      }
      // Used entries are read only after used.idx.
      readBarrier();
      while (ring.lastUsed !== used) {
        const id = ring.usedId(ring.lastUsed);
        const s = id / 3;
        if (!Number.isInteger(s) || s >= qd || slotBusy[q * qd + s] === 0) {
          // The ring state goes with the error: which heads were out, and what came back since the last look.
          const out: number[] = [];
          for (let k = 0; k < qd; k++) if (slotBusy[q * qd + k]) out.push(3 * k);
          const back: number[] = [];
          for (let k = ring.lastUsed; k !== used && back.length < 32; k = (k + 1) & 0xffff) back.push(ring.usedId(k));
          throw new Error(`queue ${q}: the daemon completed id ${id}, which is not a request in flight ` +
            `(avail.idx ${ring.availIdx}, used.idx ${used}, last used ${ring.lastUsed}; in flight: ${out.join(' ')}; ` +
            `${(used - ring.lastUsed) & 0xffff} used since, the first: ${back.join(' ')})`);
        }
        ring.lastUsed = (ring.lastUsed + 1) & 0xffff;
        complete(q, s, now);
        f.push(s);
        done++;
      }
      ring.setUsedEvent(ring.lastUsed);
    }
    if (done > 0) {
      idleSince = 0;
      if (phase < 2) submitAll(now);
      continue;
    }
    if (idleSince === 0) { idleSince = now; continue; }
    if (now - idleSince < spinMs) continue;
    // Sleep until the daemon signals. Clear stale signals first, then look once more: a
    // completion may have landed (and been signalled) after the last look.
    for (let q = 0; q < queues; q++) readCounter(callFds[q]);
    memoryBarrier();
    let ready = false;
    for (let q = 0; q < queues; q++) if (rings[q].usedIdx !== rings[q].lastUsed) ready = true;
    if (!ready) {
      pollSet.set(callFds);
      pollFds(pollSet, 20);
      sleeps++;
    }
    idleSince = 0;
  }
  if (inflight > 0) throw new Error(`${inflight} requests still in flight ${DRAIN_LIMIT_MS} ms after the run`);
  if (zoneOp) {
    // Leave the zones empty: their pages go back to the system before whatever runs next
    // (fio's ceiling runs in between, and fresh-page costs depend on free memory).
    const ring = rings[0];
    for (let z = 0; z < nz; z++) {
      zoneState[z] = Z_DRAINING;
      zoneRr[0] = z;
      // Queue 0 owns zone z only with one queue; with more, any queue may reset any zone now.
      if (!fill(0, 0, performance.now())) continue;
      ring.kickIfNeeded();
      const deadline = performance.now() + DRAIN_LIMIT_MS;
      while (ring.usedIdx === ring.lastUsed) {
        if (performance.now() > deadline) throw new Error(`zone ${z} reset after the run did not complete`);
      }
      readBarrier();
      ring.lastUsed = (ring.lastUsed + 1) & 0xffff;
      inflight--;
      ring.setUsedEvent(ring.lastUsed);
    }
  }
  try {
    await fe.stopQueues(rings);
  } finally {
    for (const r of rings) r.closeFds();
    fe.close();
    mem.close();
  }
  const seconds = (t1 - t0) / 1000;
  let kicks = 0;
  for (const r of rings) kicks += r.kicks;
  return {
    ops, bytes: opBytes, seconds, iops: ops / seconds, mbps: opBytes / seconds / 1e6,
    p50Us: hist.percentile(0.5) / 1000, p99Us: hist.percentile(0.99) / 1000, meanUs: hist.mean / 1000,
    errors, firstError, genCpuS, daemonCpuS, kicks, sleeps, zoneResets: resets,
  };
}
