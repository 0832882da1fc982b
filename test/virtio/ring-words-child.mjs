// Child of ring-words.test.ts, run with V8's optimizing compilers off: the device half of a
// split ring (SplitRing, in a worker thread) and the driver half (DriverQueue, on the main
// thread) share one memfd mapping and pass chains back and forth as fast as they can. The
// driver checks every used.idx it reads (never behind, never more than the queue ahead) and
// every id it consumes (a chain it had made available); the device stops its queue on an
// avail.idx that jumps. Prints one JSON line: {"ops", "fault"}.
//   node --no-opt --no-sparkplug --max-lazy ring-words-child.mjs ROOT SECONDS
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const [root, seconds] = isMainThread ? [process.argv[2], Number(process.argv[3])] : [workerData.root, 0];
const { memoryBarrier, mmap } = await import(`${root}/dist/native/index.js`);
const { SplitRing, VRING_DESC_F_WRITE } = await import(`${root}/dist/virtio/split-ring.js`);

const SIZE = 256;
const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

if (isMainThread) {
  const { GuestMemoryImage } = await import(`${root}/dist/testing/guest-memory.js`);
  const { DriverQueue } = await import(`${root}/dist/testing/driver-queue.js`);
  const mem = GuestMemoryImage.simple(1 << 20, 0);
  const q = new DriverQueue(mem, 0, SIZE, { pageAligned: true });
  const buf = mem.alloc(16, 16);
  for (let h = 0; h < SIZE; h++) q.writeDesc(h, buf, 16, VRING_DESC_F_WRITE, 0);
  const stop = new Int32Array(new SharedArrayBuffer(8));
  const r = mem.regions[0];
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { root, fd: r.fd, size: r.size, userAddr: r.userAddr, gpa: r.guestPhysAddr, addrs: q.addrs, stop },
  });
  const deviceDone = new Promise((resolve) => worker.once('message', resolve));
  await new Promise((resolve) => worker.once('online', resolve));

  const outstanding = new Uint8Array(SIZE);
  // Half the queue in flight, so used.idx and avail.idx keep moving in batches.
  for (let h = 0; h < SIZE / 2; h++) { q.place(h); outstanding[h] = 1; }
  q.publishPlaced();
  let ops = 0, fault = null;
  const end = performance.now() + seconds * 1000;
  for (let n = 0; fault === null; n++) {
    if ((n & 1023) === 0 && performance.now() > end) break;
    const used = q.usedIdx;
    const ahead = (used - q.lastUsed) & 0xffff;
    if (ahead === 0) continue;
    if (ahead > SIZE) { fault = `driver read used.idx ${used} after consuming up to ${q.lastUsed}`; break; }
    memoryBarrier();
    while (q.lastUsed !== used) {
      const id = q.usedId(q.lastUsed);
      if (id >= SIZE || outstanding[id] === 0) { fault = `used entry ${q.lastUsed} holds id ${id}, not in flight (used.idx ${used})`; break; }
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
      q.place(id);
      ops++;
    }
    q.publishPlaced();
  }
  Atomics.store(stop, 0, 1);
  const device = await deviceDone;
  fault ??= device.fault;
  await worker.terminate();
  process.stdout.write(JSON.stringify({ ops, fault }) + '\n');
} else {
  const { fd, size, userAddr, gpa, addrs, stop } = workerData;
  const ab = mmap(fd, 0, size, true);
  const dv = new DataView(ab);
  const bytes = new Uint8Array(ab);
  // The GuestMemory a SplitRing needs, over the one region.
  const memory = {
    hitView: dv, hitBytes: bytes, hitOffset: 0,
    locateUva(a, len) { return this.at(a - userAddr, len); },
    locateGpa(a, len) { return this.at(a - gpa, len); },
    at(off, len) {
      if (off < 0 || off + len > size) return false;
      this.hitOffset = off;
      return true;
    },
    gpaToViews(a, len, out) {
      if (!this.locateGpa(a, len)) return false;
      out.push(bytes.subarray(this.hitOffset, this.hitOffset + len));
      return true;
    },
  };
  const ring = new SplitRing({ index: 0, size: SIZE, log: silent });
  const err = ring.attach(memory, addrs);
  if (err !== null) throw new Error(err);
  ring.start(0);
  ring.active = true;
  for (let n = 1; ring.broken === null && Atomics.load(stop, 0) === 0; n++) {
    const c = ring.pop();
    if (c !== null) ring.push(c, 0);
    // Publish in batches of varying size, as completions arrive in a daemon.
    if (c === null || n % 7 === 0) ring.notify();
  }
  parentPort.postMessage({ fault: ring.broken === null ? null : `device stopped the queue: ${ring.broken}` });
}
