// Log lines of the transport name each key once. A child logger's bindings are written as
// they are and pino does not merge them with a call's own fields, so a queue-bound logger
// that is also passed `queue` printed `"queue":0,"queue":0` (JSON with a duplicate key).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { EchoDevice } from '../harness/echo-device.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';
import { until } from '../harness/setup.js';

/** Keys that occur more than once in one object of a JSON text (any depth). */
export function duplicateKeys(json: string): string[] {
  const dups: string[] = [];
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const s = JSON.parse(json.slice(i, j + 1)) as string;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        if (top.has(s)) dups.push(s); else top.add(s);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') { stack.push(new Set()); expectKey = true; } else if (c === '[') { stack.push(null); } else if (c === '}' || c === ']') { stack.pop(); } else if (c === ',') { expectKey = stack[stack.length - 1] !== null; }
  }
  return dups;
}

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

describe('transport log lines', () => {
  it('the duplicate-key finder finds them', () => {
    expect(duplicateKeys('{"a":1,"queue":0,"b":{"queue":1,"x":"q\\"ueue"},"queue":0}')).toEqual(['queue']);
    expect(duplicateKeys('{"a":[{"k":1},{"k":2}],"k":3}')).toEqual([]);
  });

  it('a malformed chain and a guest bug are logged with the connection and queue once each', async () => {
    const raw: string[] = [];
    const log = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _e, cb) { raw.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } }));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vu-logkeys-'));
    const server = new VhostUserServer({ socketPath: path.join(dir, 's'), device: new EchoDevice({ numQueues: 1 }), logger: log });
    server.listen();
    const fe = VhostUserFrontend.connect(server.socketPath);
    const mem = GuestMemoryImage.simple(4 * 1024 * 1024);
    let q: DriverQueue | undefined;
    cleanups.push(async () => { fe.close(); await server.close(); q?.closeFds(); mem.close(); rmSync(dir, { recursive: true, force: true }); });
    await fe.negotiate({});
    await fe.setMemTable(mem);
    q = await fe.setupQueue(mem, 0, { size: 32 });
    // A descriptor beyond guest memory: a malformed chain (warn); then an avail index jump: a guest bug (error).
    q.add([{ gpa: 64 * 1024 * 1024, len: 512 }, { gpa: mem.alloc(16), len: 16, write: true }]);
    q.kick();
    await q.waitUsed(1);
    q.setAvailIdx(500);
    q.kick();
    await until(() => raw.some((l) => l.includes('guest bug: queue stopped')), 5000, 'the guest-bug line');
    const lines = raw.filter((l) => /malformed descriptor chain|guest bug/.test(l));
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(duplicateKeys(l), l).toEqual([]);
      expect(JSON.parse(l)).toMatchObject({ conn: 1, queue: 0 });
    }
  });
});
