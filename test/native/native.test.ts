import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZbdError } from '../../src/errors.js';
import {
  BLK_ZONE_OP, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FdPoller, NativeError,
  acceptUnix, blkGetNrZones, blkGetZoneSize, blkReportZones, blkZoneMgmt, closeFd,
  connectUnix, eventfd, fallocate, fallocateAsync, flock, listenUnix, memfdCreate, memoryBarrier, mmap,
  munmap, pageSize, readCounter, recvMsg, sendMsg, socketpair, writeCounter,
} from '../../src/native/index.js';

const ADDON = resolve(import.meta.dirname, '../../build/Release/vhost_user_zbd_native.node');
const PAGE = pageSize();

// Every fd a test opens is closed afterwards, also when the test fails.
let openFds: number[] = [];
function track<T extends number | number[]>(fd: T): T {
  openFds.push(...(Array.isArray(fd) ? fd : [fd]));
  return fd;
}
function release(fd: number): void {
  closeFd(fd);
  openFds = openFds.filter((f) => f !== fd);
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'zbd-native-'));
});
afterEach(() => {
  for (const fd of openFds) {
    try { closeFd(fd); } catch { /* already closed by the test */ }
  }
  openFds = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

// Returns the error thrown by fn (failing the test if nothing is thrown).
function thrown(fn: () => unknown): ZbdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ZbdError);
    return e as ZbdError;
  }
  throw new Error('expected an error');
}

function nativeError(fn: () => unknown, errnoName: string, syscall: string): NativeError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(NativeError);
  const n = e as NativeError;
  expect(n.code).toBe('ENATIVE');
  expect(n.errnoName).toBe(errnoName);
  expect(n.syscall).toBe(syscall);
  expect(n.errno).toBeGreaterThan(0);
  expect(n.message).toContain(`${syscall}(`);
  expect(n.message).toContain(errnoName);
  return n;
}

function argError(fn: () => unknown, pattern: RegExp): ZbdError {
  const e = thrown(fn);
  expect(e.code).toBe('EARG');
  expect(e.message).toMatch(pattern);
  return e;
}

function nextEvent<T>(register: (done: (v: T) => void) => void, ms = 5000): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms);
    register((v) => {
      clearTimeout(timer);
      resolvePromise(v);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Runs a CommonJS script in a fresh node; `addon` is the raw addon, loaded on demand.
function runWithAddon(script: string, timeout = 10000, nodeArgs: string[] = []) {
  const prelude = `let loaded; Object.defineProperty(globalThis, 'addon', { get: () => (loaded ??= require(${JSON.stringify(ADDON)})) });`;
  return spawnSync(process.execPath, [...nodeArgs, '-e', `${prelude}\n${script}`], { encoding: 'utf8', timeout });
}

describe('unix sockets', () => {
  it('passes a memfd over a socketpair; both mappings see the same memory', () => {
    const [a, b] = track(socketpair());
    const memfd = track(memfdCreate('zbd-test', 2 * PAGE));
    const header = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    expect(sendMsg(a, header, [memfd])).toBe(12);

    const buf = new Uint8Array(64);
    const fds = new Int32Array(4).fill(1234);
    expect(recvMsg(b, buf, fds)).toBe(12);
    expect([...buf.subarray(0, 12)]).toEqual([...header]);
    const received = fds[0];
    track(received);
    expect(received).toBeGreaterThanOrEqual(0);
    expect(received).not.toBe(memfd);
    expect([...fds.subarray(1)]).toEqual([-1, -1, -1]);

    const mine = mmap(memfd, 0, 2 * PAGE);
    const theirs = mmap(received, PAGE, PAGE); // second page only
    new Uint8Array(mine).set([0xde, 0xad, 0xbe, 0xef], PAGE + 100);
    expect([...new Uint8Array(theirs, 100, 4)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    new Uint8Array(theirs)[0] = 0x42;
    expect(new Uint8Array(mine)[PAGE]).toBe(0x42);
    munmap(mine);
    munmap(theirs);
  });

  it('sends 8 fds; fds beyond the receiver array are closed', () => {
    const [a, b] = track(socketpair());
    const efds = track([1, 2, 3, 4, 5, 6, 7, 8].map(() => eventfd()));
    expect(sendMsg(a, Uint8Array.of(1), efds)).toBe(1);
    const before = openFdCount();
    const fds = new Int32Array(3);
    expect(recvMsg(b, new Uint8Array(8), fds)).toBe(1);
    track([...fds]);
    expect([...fds].every((f) => f >= 0)).toBe(true);
    expect(openFdCount() - before).toBe(3); // the other 5 were closed on arrival
  });

  it('recvMsg returns -1 when empty and 0 at EOF; sendMsg returns -1 when full', () => {
    const [a, b] = track(socketpair());
    const fds = new Int32Array(1);
    expect(recvMsg(b, new Uint8Array(16), fds)).toBe(-1);

    const chunk = new Uint8Array(65536);
    let sent = 0;
    let n: number;
    while ((n = sendMsg(a, chunk)) > 0) sent += n;
    expect(n).toBe(-1);
    expect(sent).toBeGreaterThan(0);
    let drained = 0;
    const sink = new Uint8Array(65536);
    while ((n = recvMsg(b, sink, fds)) > 0) drained += n;
    expect(n).toBe(-1);
    expect(drained).toBe(sent);

    release(a);
    expect(recvMsg(b, sink, fds)).toBe(0);
    expect(fds[0]).toBe(-1);
  });

  it('sendMsg to a closed peer throws EPIPE instead of raising SIGPIPE', () => {
    const [a, b] = track(socketpair());
    release(b);
    const e = nativeError(() => sendMsg(a, Uint8Array.of(1, 2, 3)), 'EPIPE', 'sendmsg');
    expect(e.message).toContain(`fd=${a}`);
  });

  it('listens with mode 0600, accepts -1 until a client connects, then talks', () => {
    const path = join(dir, 'vhost.sock');
    const listenFd = track(listenUnix(path));
    const st = fs.statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(acceptUnix(listenFd)).toBe(-1);

    const client = track(connectUnix(path));
    const server = track(acceptUnix(listenFd));
    expect(server).toBeGreaterThanOrEqual(0);
    expect(acceptUnix(listenFd)).toBe(-1);

    expect(sendMsg(client, Uint8Array.of(9, 8, 7))).toBe(3);
    const buf = new Uint8Array(8);
    expect(recvMsg(server, buf, new Int32Array(0))).toBe(3);
    expect([...buf.subarray(0, 3)]).toEqual([9, 8, 7]);
    expect(recvMsg(client, buf, new Int32Array(0))).toBe(-1); // client is non-blocking too
  });

  it('reports socket path errors with the path', () => {
    const path = join(dir, 'taken.sock');
    track(listenUnix(path));
    expect(nativeError(() => listenUnix(path), 'EADDRINUSE', 'bind').message).toContain(path);
    const missing = join(dir, 'missing.sock');
    expect(nativeError(() => connectUnix(missing), 'ENOENT', 'connect').message).toContain(missing);
    argError(() => listenUnix(join(dir, 'x'.repeat(120))), /path must be a string of 1\.\.107/);
    argError(() => connectUnix('a\0b'), /connectUnix: path/);
    argError(() => listenUnix(path, -1), /backlog/);
  });

  it('reports a failed recvMsg with its fd and buffer length', () => {
    const fd = track(eventfd());
    const e = nativeError(() => recvMsg(fd, new Uint8Array(4), new Int32Array(1)), 'ENOTSOCK', 'recvmsg');
    expect(e.message).toContain(`fd=${fd}, len=4`);
  });

  it('validates recvMsg/sendMsg arguments', () => {
    const [a] = track(socketpair());
    argError(() => recvMsg(-1, new Uint8Array(1), new Int32Array(1)), /recvMsg: fd must be a file descriptor.*got -1/);
    argError(() => recvMsg(a, new Uint8Array(0), new Int32Array(1)), /buf must be a Uint8Array/);
    argError(() => recvMsg(a, new Uint8Array(1), [] as unknown as Int32Array), /fds must be an Int32Array/);
    argError(() => sendMsg(a, Uint8Array.of(1), [0, 1, 2, 3, 4, 5, 6, 7, 8]), /at most 8 fds/);
    argError(() => sendMsg(a, Uint8Array.of(1), [1.5]), /fds\[\] must be a file descriptor/);
    argError(() => sendMsg(1.5, Uint8Array.of(1)), /got 1\.5/);
  });

  it('closeFd throws EBADF for a closed fd and EARG for a negative one', () => {
    const fd = eventfd();
    closeFd(fd);
    const e = nativeError(() => closeFd(fd), 'EBADF', 'close');
    expect(e.errno).toBe(9);
    expect(e.message).toContain(`fd=${fd}`);
    argError(() => closeFd(-1), /closeFd/);
  });
});

describe('eventfd counters', () => {
  it('adds written values and resets on read; 0 when empty', () => {
    const fd = track(eventfd());
    expect(readCounter(fd)).toBe(0);
    expect(writeCounter(fd)).toBe(true);
    expect(writeCounter(fd, 5)).toBe(true);
    expect(readCounter(fd)).toBe(6);
    expect(readCounter(fd)).toBe(0);
    expect(writeCounter(fd, 2 ** 40 + 3)).toBe(true);
    expect(readCounter(fd)).toBe(2 ** 40 + 3);
    argError(() => writeCounter(fd, -1), /value must be an integer/);
    argError(() => writeCounter(fd, 2 ** 53), /value/);
  });

  it('reports a failed writeCounter with its fd and value', () => {
    const fd = eventfd();
    closeFd(fd);
    const e = nativeError(() => writeCounter(fd, 5), 'EBADF', 'write');
    expect(e.message).toContain(`fd=${fd}, value=5`);
  });

  it('writeCounter returns false once the counter would overflow', () => {
    const fd = track(eventfd());
    let writes = 0;
    while (writeCounter(fd, Number.MAX_SAFE_INTEGER)) {
      writes++;
      expect(writes).toBeLessThan(4096); // 2^64 / 2^53 = 2048 writes fill it
    }
    expect(writes).toBe(2048);
  });

  it('carries an 8-byte little-endian counter over a socketpair (UML call fd)', () => {
    const [a, b] = track(socketpair());
    expect(writeCounter(a, 0x0102)).toBe(true);
    const raw = new Uint8Array(16);
    expect(recvMsg(b, raw, new Int32Array(0))).toBe(8);
    expect([...raw.subarray(0, 8)]).toEqual([2, 1, 0, 0, 0, 0, 0, 0]);

    expect(writeCounter(a, 7)).toBe(true);
    expect(writeCounter(a)).toBe(true);
    expect(readCounter(b)).toBe(7);
    expect(readCounter(b)).toBe(1);
    expect(readCounter(b)).toBe(0);
    release(a);
    expect(readCounter(b)).toBe(-1);
  });
});

describe('mmap', () => {
  it('munmap detaches the buffer and its views; a second munmap throws', () => {
    const fd = track(memfdCreate('zbd-unmap', PAGE));
    const ab = mmap(fd, 0, PAGE);
    const view = new Uint8Array(ab);
    view[0] = 1;
    expect(ab.byteLength).toBe(PAGE);
    munmap(ab);
    expect(ab.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[0]).toBeUndefined(); // reads nothing, touches no freed memory
    argError(() => munmap(ab), /munmap: not a live mapping/);
    argError(() => munmap(new ArrayBuffer(8)), /not a live mapping/);
    argError(() => munmap(new Uint8Array(8) as unknown as ArrayBuffer), /expected an ArrayBuffer/);

    // The address may be reused by the next mapping; that must work too.
    const again = mmap(fd, 0, PAGE);
    expect(new Uint8Array(again)[0]).toBe(1);
    munmap(again);
  });

  it('validates its arguments', () => {
    const fd = track(memfdCreate('zbd-args', 4 * PAGE));
    argError(() => mmap(fd, 1, PAGE), /offset must be a multiple of the page size/);
    argError(() => mmap(fd, PAGE / 2, PAGE), /page size/);
    argError(() => mmap(fd, -PAGE, PAGE), /offset must be an integer/);
    argError(() => mmap(fd, 0.5, PAGE), /offset/);
    argError(() => mmap(fd, 0, 0), /length must be an integer in \[1, /);
    argError(() => mmap(fd, 0, bufferConstants.MAX_LENGTH + 1), /length/);
    argError(() => mmap(fd, 0, Number.NaN), /length.*NaN/);
    argError(() => mmap(-1, 0, PAGE), /mmap: fd/);
    argError(() => mmap(fd, 0, PAGE, 'yes' as unknown as boolean), /writable must be a boolean/);
    argError(() => mmap('3' as unknown as number, 0, PAGE), /got '3'/);
    const e = nativeError(() => mmap(99999, 0, PAGE), 'EBADF', 'mmap');
    expect(e.message).toContain('fd=99999');
    expect(e.message).toContain(`length=${PAGE}`);
  });

  it('maps read-only and at offsets beyond 4 GiB', () => {
    const big = 2 ** 32 + 2 * PAGE; // sparse: tmpfs allocates only what is touched
    const fd = track(memfdCreate('zbd-big', big));
    const hi = mmap(fd, 2 ** 32 + PAGE, PAGE);
    new Uint8Array(hi).set([5, 6, 7]);
    const ro = mmap(fd, 2 ** 32, 2 * PAGE, false);
    expect([...new Uint8Array(ro, PAGE, 3)]).toEqual([5, 6, 7]);
    const check = Buffer.alloc(3);
    expect(fs.readSync(fd, check, 0, 3, 2 ** 32 + PAGE)).toBe(3);
    expect([...check]).toEqual([5, 6, 7]);
    munmap(hi);
    munmap(ro);
    memoryBarrier();
  });

  it('pageSize is a power of two', () => {
    expect(PAGE).toBeGreaterThanOrEqual(4096);
    expect(PAGE & (PAGE - 1)).toBe(0);
  });
});

describe('FdPoller', () => {
  it('calls back while readable and never after stop()', async () => {
    const fd = track(eventfd());
    let calls = 0;
    let onReadable: ((v: [boolean, boolean]) => void) | undefined;
    const poller = new FdPoller(fd, 'r', (err, readable, writable) => {
      expect(err).toBeNull();
      calls++;
      readCounter(fd); // drain, so level-triggered polling goes quiet
      onReadable?.([readable, writable]);
    });
    await sleep(30);
    expect(calls).toBe(0);

    writeCounter(fd, 3);
    expect(await nextEvent<[boolean, boolean]>((done) => (onReadable = done))).toEqual([true, false]);
    writeCounter(fd);
    await nextEvent((done) => (onReadable = done));
    expect(calls).toBe(2);

    poller.stop();
    poller.stop(); // idempotent
    onReadable = undefined;
    writeCounter(fd);
    await sleep(50);
    expect(calls).toBe(2);
    expect(readCounter(fd)).toBe(1); // still open and untouched by stop()
    argError(() => poller.setEvents('r'), /poller is stopped/);
    poller.ref(); // harmless once stopped
    poller.unref();
  });

  it('switches events with setEvents and reports writability', async () => {
    const [a, b] = track(socketpair());
    const seen: string[] = [];
    let notify: (() => void) | undefined;
    const poller = new FdPoller(a, 'w', (_err, readable, writable) => {
      seen.push(`${readable ? 'r' : ''}${writable ? 'w' : ''}`);
      if (writable) poller.setEvents('r'); // stop asking for writability
      if (readable) recvMsg(a, new Uint8Array(16), new Int32Array(0));
      notify?.();
    });
    await nextEvent<void>((done) => (notify = done));
    expect(seen).toEqual(['w']);
    await sleep(30);
    expect(seen).toEqual(['w']);
    sendMsg(b, Uint8Array.of(1));
    await nextEvent<void>((done) => (notify = done));
    expect(seen).toEqual(['w', 'r']);
    poller.stop();
  });

  it('stop() inside the callback ends the callbacks', async () => {
    const fd = track(eventfd());
    writeCounter(fd); // readable and never drained
    let calls = 0;
    let first: (() => void) | undefined;
    const firstCall = nextEvent<void>((done) => (first = done));
    const poller = new FdPoller(fd, 'rw', () => {
      calls++;
      poller.stop();
      first?.();
    });
    await firstCall;
    await sleep(50);
    expect(calls).toBe(1);
  });

  it('rejects bad arguments and unpollable fds', () => {
    const fd = track(eventfd());
    argError(() => new FdPoller(fd, 'x' as 'r', () => {}), /events must be 'r', 'w' or 'rw'/);
    argError(() => new FdPoller(fd, 'r', null as unknown as () => void), /callback must be a function/);
    argError(() => new FdPoller(-2, 'r', () => {}), /FdPoller: fd/);
    const file = join(dir, 'regular');
    fs.writeFileSync(file, 'x');
    const regular = track(fs.openSync(file, 'r'));
    nativeError(() => new FdPoller(regular, 'r', () => {}), 'EPERM', 'uv_poll_init');
  });

  it('unref lets the process exit; ref keeps it alive', () => {
    const script = (unref: boolean) => `
      const fd = addon.eventfd();
      const p = new addon.FdPoller(fd, addon.POLL_READABLE, () => {});
      ${unref ? 'p.unref();' : ''}
      console.log('polling');`;
    const exited = runWithAddon(script(true), 5000);
    expect(exited.stdout.trim()).toBe('polling');
    expect(exited.status).toBe(0);
    const kept = runWithAddon(script(false), 2000);
    expect(kept.stdout.trim()).toBe('polling');
    expect(kept.signal).toBe('SIGTERM'); // killed by the timeout: the poller held the loop
  });

  it('an exception in the callback is uncaught, not swallowed or fatal to the addon', () => {
    const r = runWithAddon(`
      process.on('uncaughtException', (e) => { console.log('uncaught:' + e.message); process.exit(0); });
      const fd = addon.eventfd();
      new addon.FdPoller(fd, addon.POLL_READABLE, () => { throw new Error('boom'); });
      addon.writeCounter(fd, 1);`);
    expect(r.stdout.trim()).toBe('uncaught:boom');
    expect(r.status).toBe(0);
  });

  it('an unreferenced poller keeps firing through garbage collection', () => {
    const r = runWithAddon(`
      const fd = addon.eventfd();
      let calls = 0;
      (() => new addon.FdPoller(fd, addon.POLL_READABLE, () => { calls++; addon.readCounter(fd); }))();
      global.gc();
      setTimeout(() => { global.gc(); addon.writeCounter(fd, 1); }, 20);
      setTimeout(() => { console.log('calls=' + calls); process.exit(0); }, 200);`, 10000, ['--expose-gc']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('calls=1');
  });

  // Only the worker loads the addon, so Node unloads it when the worker ends: libuv must
  // have finished closing the poll handle by then (the async cleanup hook's job).
  it.each([
    ['while polling', ''],
    ['right after stop()', 'p.stop();'],
  ])('a worker terminated %s neither crashes nor aborts the process', (_when, afterCreate) => {
    const r = runWithAddon(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const addon = require(${JSON.stringify(ADDON)});
        const fd = addon.eventfd();
        const p = new addon.FdPoller(fd, addon.POLL_READABLE, () => {});
        ${afterCreate}
        require('node:worker_threads').parentPort.postMessage('ready');\`, { eval: true });
      w.on('message', () => w.terminate().then(() => console.log('terminated')));`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('terminated');
    expect(r.status).toBe(0);
  });
});

describe('files', () => {
  it('flock conflicts between separately opened descriptions of one file', () => {
    const file = join(dir, 'image');
    fs.writeFileSync(file, '');
    const fd1 = track(fs.openSync(file, 'r+'));
    const fd2 = track(fs.openSync(file, 'r+'));
    expect(flock(fd1, true, true)).toBe(true);
    expect(flock(fd1, true, true)).toBe(true); // same description: re-locking is fine
    expect(flock(fd2, true, true)).toBe(false);
    expect(flock(fd2, false, true)).toBe(false);
    release(fd1); // closing the last fd of the description drops its lock
    expect(flock(fd2, true, true)).toBe(true);
    argError(() => flock(fd2, 1 as unknown as boolean, true), /exclusive must be a boolean/);
  });

  it('fallocate punches a hole: the range reads zeros and st_blocks drops', () => {
    const file = join(dir, 'data');
    const size = 1 << 20;
    fs.writeFileSync(file, Buffer.alloc(size, 0xab));
    const fd = track(fs.openSync(file, 'r+'));
    fs.fsyncSync(fd);
    const before = fs.fstatSync(fd);
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * 1024, 256 * 1024);
    const after = fs.fstatSync(fd);
    expect(after.size).toBe(size);
    expect(after.blocks).toBeLessThanOrEqual(before.blocks - (256 * 1024) / 512);
    const data = fs.readFileSync(file);
    expect(data.subarray(256 * 1024, 512 * 1024).every((b) => b === 0)).toBe(true);
    expect(data[256 * 1024 - 1]).toBe(0xab);
    expect(data[512 * 1024]).toBe(0xab);
  });

  it('fallocate takes offsets beyond 4 GiB and reports errors with its arguments', () => {
    const file = join(dir, 'sparse');
    fs.writeFileSync(file, '');
    const fd = track(fs.openSync(file, 'r+'));
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 ** 32 + 4096, 4096);
    expect(fs.fstatSync(fd).size).toBe(0);
    fallocate(fd, 0, 2 ** 33, 4096);
    expect(fs.fstatSync(fd).size).toBe(2 ** 33 + 4096);
    argError(() => fallocate(fd, 0, 0, 0), /length must be an integer in \[1, /);
    const ro = track(fs.openSync(file, 'r'));
    const e = nativeError(() => fallocate(ro, 0, 2 ** 34, 4096), 'EBADF', 'fallocate');
    expect(e.message).toContain(`offset=${2 ** 34}`);
  });

  it('fallocateAsync punches off the loop and rejects with the errno and its arguments', async () => {
    const file = join(dir, 'async');
    const size = 1 << 20;
    fs.writeFileSync(file, Buffer.alloc(size, 0xcd));
    const fd = track(fs.openSync(file, 'r+'));
    fs.fsyncSync(fd);
    const before = fs.fstatSync(fd).blocks;
    await fallocateAsync(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512 * 1024);
    expect(fs.fstatSync(fd).blocks).toBeLessThanOrEqual(before - (512 * 1024) / 512);
    const data = fs.readFileSync(file);
    expect(data.subarray(0, 512 * 1024).every((b) => b === 0)).toBe(true);
    expect(data[512 * 1024]).toBe(0xcd);
    const ro = track(fs.openSync(file, 'r'));
    const err = await fallocateAsync(ro, 0, 2 ** 34, 4096).then(() => null, (x: unknown) => x);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).errnoName).toBe('EBADF');
    expect((err as NativeError).syscall).toBe('fallocate');
    expect((err as NativeError).message).toContain(`offset=${2 ** 34}`);
    expect(() => fallocateAsync(fd, 0, 0, 0)).toThrow(/length must be an integer in \[1, /);
  });
});

describe('zoned block device ioctls', () => {
  it('fail cleanly with ENOTTY on a regular file', () => {
    const file = join(dir, 'not-a-zbd');
    fs.writeFileSync(file, Buffer.alloc(4096));
    const fd = track(fs.openSync(file, 'r+'));
    expect(nativeError(() => blkGetZoneSize(fd), 'ENOTTY', 'ioctl').message).toContain('BLKGETZONESZ');
    expect(nativeError(() => blkGetNrZones(fd), 'ENOTTY', 'ioctl').message).toContain('BLKGETNRZONES');
    const report = new Uint8Array(16 + 4 * 64);
    const e = nativeError(() => blkReportZones(fd, 2 ** 40, report), 'ENOTTY', 'ioctl');
    expect(e.message).toContain('BLKREPORTZONE');
    expect(e.message).toContain(`sector=${2 ** 40}`);
    expect(e.message).toContain('nr_zones=4');
    for (const [name, op] of Object.entries(BLK_ZONE_OP)) {
      const m = nativeError(() => blkZoneMgmt(fd, op, 524288, 524288), 'ENOTTY', 'ioctl');
      expect(m.message).toContain(`BLK${name}ZONE`);
    }
  });

  it('validate their arguments', () => {
    expect(BLK_ZONE_OP.RESET).toBe(0x40101283); // _IOW(0x12, 131, struct blk_zone_range)
    expect(Object.isFrozen(BLK_ZONE_OP)).toBe(true);
    argError(() => blkZoneMgmt(0, 12345, 0, 1), /op must be a BLK_ZONE_OP value/);
    argError(() => blkReportZones(0, 0, new Uint8Array(79)), /at least 80 bytes/);
    argError(() => blkReportZones(0, -1, new Uint8Array(80)), /sector/);
    argError(() => blkZoneMgmt(0, BLK_ZONE_OP.RESET, 0, 2 ** 53), /nrSectors/);
    argError(() => blkGetZoneSize(Number.POSITIVE_INFINITY), /blkGetZoneSize: fd/);
  });
});
