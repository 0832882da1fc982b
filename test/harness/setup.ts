// Starts an in-process back-end on a temporary socket with the echo device, and cleans up.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MemoryTableOptions } from '../../src/vhost-user/memory-table.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { EchoDevice } from './echo-device.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { captureLogger, type LogLine } from './log-capture.js';
import pino from 'pino';
import { createMemoryBackend } from '../../src/backends/memory-backend.js';
import { BlkDevice } from '../../src/blk/blk-device.js';
import type { DriverQueue } from '../../src/testing/driver-queue.js';
import { GuestMemoryImage } from '../../src/testing/guest-memory.js';

export interface TestRig {
  dir: string;
  socketPath: string;
  device: EchoDevice;
  server: VhostUserServer;
  lines: LogLine[];
  errors: () => LogLine[];
  connect(): VhostUserFrontend;
  cleanup(): Promise<void>;
}

export function startRig(opts: { numQueues?: number; maxQueueSize?: number; features?: bigint;
  memory?: MemoryTableOptions; maxChainBytes?: number } = {}): TestRig {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vu-test-'));
  const socketPath = path.join(dir, 'vhost.sock');
  const device = new EchoDevice(opts);
  const { log, lines, errors } = captureLogger('debug');
  const server = new VhostUserServer({ socketPath, device, logger: log, memory: opts.memory,
    maxChainBytes: opts.maxChainBytes });
  server.listen();
  const clients: VhostUserFrontend[] = [];
  return {
    dir, socketPath, device, server, lines, errors,
    connect() {
      const c = VhostUserFrontend.connect(socketPath);
      clients.push(c);
      return c;
    },
    async cleanup() {
      for (const c of clients) c.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until cond() is true (the back-end runs on the same event loop). */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

export interface BlkRig {
  fe: VhostUserFrontend;
  mem: GuestMemoryImage;
  device: BlkDevice;
  server: VhostUserServer;
  /** Driver queues the test set up: their fds are closed by cleanup(). */
  queues: DriverQueue[];
  cleanup(): Promise<void>;
}

/**
 * An in-process virtio-blk back-end over a zoned RAM disk (1 MiB zones, the first one
 * conventional) on a temporary socket, with a connected front-end and 16 MiB of guest memory.
 */
export function startBlkRig(opts: { zones: number; numQueues: number; pollMaxUs?: number; prefix?: string }): BlkRig {
  const dir = mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? 'vu-blk-'));
  const log = pino({ level: 'silent' });
  const backend = createMemoryBackend({ capacitySectors: opts.zones * RIG_ZONE_SECTORS, zoneSectors: RIG_ZONE_SECTORS,
    conventionalZones: 1, blockSize: 4096 }, { logger: log });
  const device = new BlkDevice({ backend, numQueues: opts.numQueues, maxQueueSize: 256, logger: log });
  const server = new VhostUserServer({ socketPath: path.join(dir, 's'), device, logger: log, pollMaxUs: opts.pollMaxUs });
  server.listen();
  const fe = VhostUserFrontend.connect(server.socketPath);
  const mem = GuestMemoryImage.simple(16 * 1024 * 1024);
  const queues: DriverQueue[] = [];
  return {
    fe, mem, device, server, queues,
    async cleanup() {
      fe.close();
      await server.close();
      await backend.close();
      for (const q of queues) q.closeFds();
      mem.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Zone size of startBlkRig's disk, in sectors (1 MiB). */
export const RIG_ZONE_SECTORS = 2048;
