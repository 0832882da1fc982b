// Starts an in-process back-end on a temporary socket with the echo device, and cleans up.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MemoryTableOptions } from '../../src/vhost-user/memory-table.js';
import { VhostUserServer } from '../../src/vhost-user/server.js';
import { EchoDevice } from './echo-device.js';
import { VhostUserFrontend } from '../../src/testing/frontend.js';
import { captureLogger, type LogLine } from './log-capture.js';

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
