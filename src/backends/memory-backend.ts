// A zoned disk in RAM (tests, benchmarks, throw-away guests). Nothing survives the process.
import type { Logger } from 'pino';
import { EmulatedBackend } from './emulated-backend.js';
import { MemoryStorage } from './memory-storage.js';
import { MEMORY_SERIAL } from './serial.js';
import { makeGeometry, type GeometryInput } from '../zoned/geometry.js';
import { ZoneEngine } from '../zoned/zone-engine.js';
import { SECTOR_SIZE } from '../zoned/types.js';

export function createMemoryBackend(input: GeometryInput, opts: { readOnly?: boolean; logger?: Logger; serial?: string } = {}): EmulatedBackend {
  const geo = makeGeometry(input);
  const engine = new ZoneEngine(geo);
  const storage = new MemoryStorage(geo.capacitySectors * SECTOR_SIZE);
  return new EmulatedBackend(engine, storage, { readOnly: opts.readOnly, logger: opts.logger, serial: opts.serial ?? MEMORY_SERIAL });
}
