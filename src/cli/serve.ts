// `vhost-user-zbd serve`: the daemon. Listens on a Unix socket and serves one disk to
// whichever VMM connects, one front-end at a time, until SIGINT/SIGTERM.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LevelWithSilent } from 'pino';
import { ZbdError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { Backend } from '../backends/backend.js';
import { openImage } from '../backends/image-file.js';
import { createMemoryBackend } from '../backends/memory-backend.js';
import { MemoryDiskBackend } from '../backends/memory-disk-backend.js';
import { RawFileBackend } from '../backends/raw-file-backend.js';
import { HostDeviceBackend } from '../backends/host-device-backend.js';
import { BlkDevice } from '../blk/blk-device.js';
import { DEFAULT_POLL_MAX_US, VhostUserServer } from '../vhost-user/server.js';
import { bytesToSectors, parseSize } from '../zoned/geometry.js';
import { ApiRouter, ApiServer } from '../control/api-server.js';
import { registerControlRoutes } from '../control/control-routes.js';
import { FaultRules } from '../control/fault-rules.js';
import { PowerControl } from '../control/power-cut.js';
import { POWER_CUT_POLICIES, VolatileCacheBackend, type PowerCutPolicy } from '../control/volatile-cache.js';
import type { Out } from './image-commands.js';
import { createObserver } from '../observe/observer.js';
import { startHttpListener, type HttpListener } from '../observe/http-listener.js';

export interface ServeArgs {
  socket: string;
  image?: string;
  memory?: boolean;
  /** A host block device: zoned (host-managed) with --model hm, a regular one with --model none. */
  device?: string;
  size?: string;
  zoneSize?: string;
  zoneCapacity?: string;
  conventional?: number;
  maxOpen?: number;
  maxActive?: number;
  blockSize?: number;
  model: 'hm' | 'none';
  queues: number;
  queueSize: number;
  /** Longest adaptive busy-poll window of the queues, µs (0: off). */
  pollMaxUs?: number;
  readOnly: boolean;
  logLevel: LevelWithSilent;
  /** Print ready-to-paste VM command lines once listening. */
  hints: boolean;
  /** HOST:PORT of the read-only HTTP listener (live page, /metrics, /zones). */
  http?: string;
  httpAllowRemote?: boolean;
  /** Control API socket: a path, 'none', or undefined for SOCKET.api. */
  api?: string;
  /** Emulate a volatile write cache: unflushed writes can be lost by a power cut. */
  volatileCache?: boolean;
  /** The front-end leaving by itself is a power cut (policy below). */
  powerCutOnDisconnect?: boolean;
  powerCutPolicy?: PowerCutPolicy;
  powerCutSeed?: number;
}

/** Where the control API listens: next to the vhost-user socket unless told otherwise. */
export function apiSocketPath(a: Pick<ServeArgs, 'socket' | 'api'>): string | null {
  if (a.api === 'none') return null;
  return a.api ?? `${a.socket}.api`;
}

export function openBackend(a: ServeArgs, log: Logger): Backend {
  const sources = [a.image, a.memory, a.device].filter((v) => v !== undefined && v !== false).length;
  if (sources !== 1) throw new ZbdError('EARG', 'give exactly one of --image IMG, --memory or --device /dev/X', { image: a.image, memory: a.memory, device: a.device });
  if (a.device) {
    // The geometry is the device's own: refuse flags that would silently do nothing.
    const ignored = (['size', 'zoneSize', 'zoneCapacity', 'conventional', 'maxOpen', 'maxActive', 'blockSize'] as const)
      .filter((k) => a[k] !== undefined);
    if (ignored.length) throw new ZbdError('EARG', `--device takes its geometry from the device; drop ${ignored.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`, ignored);
    return HostDeviceBackend.open(a.device, { readOnly: a.readOnly, model: a.model, logger: log });
  }
  if (a.memory) {
    if (!a.size) throw new ZbdError('EARG', '--memory needs --size', undefined);
    const sectors = (flag: string, v: string): number => bytesToSectors(flag, parseSize(flag, v));
    if (a.model === 'none') {
      // A regular disk in RAM: zone flags would silently do nothing.
      const zoneFlags = (['zoneSize', 'zoneCapacity', 'conventional', 'maxOpen', 'maxActive'] as const).filter((k) => a[k] !== undefined);
      if (zoneFlags.length) throw new ZbdError('EARG', `--memory --model none is a regular disk; drop ${zoneFlags.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`, zoneFlags);
      return new MemoryDiskBackend(sectors('--size', a.size) * 512, { blockSize: a.blockSize, readOnly: a.readOnly });
    }
    return createMemoryBackend({
      capacitySectors: sectors('--size', a.size),
      zoneSectors: sectors('--zone-size', a.zoneSize ?? '64M'),
      zoneCapacitySectors: a.zoneCapacity ? sectors('--zone-capacity', a.zoneCapacity) : undefined,
      conventionalZones: a.conventional ?? 0,
      maxOpenZones: a.maxOpen, maxActiveZones: a.maxActive, blockSize: a.blockSize ?? 4096,
    }, { readOnly: a.readOnly, logger: log });
  }
  const image = a.image as string;
  if (a.model === 'none') return RawFileBackend.open(image, { readOnly: a.readOnly, blockSize: a.blockSize, logger: log });
  return openImage(image, { readOnly: a.readOnly, logger: log }).backend;
}

export function vmHints(socket: string, queues: number): string[] {
  const s = path.resolve(socket);
  // The scripts ship with the package: print absolute paths so the lines paste anywhere.
  const scripts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../qemu-scripts');
  return [
    'Zoned guest, User-Mode Linux 6.12 (built and cached on first use):',
    `  ${scripts}/run-uml.sh --socket ${s} -- sh -c 'cat /sys/block/vda/queue/zoned; blkzone report /dev/vda | head'`,
    'Zoned guest, QEMU >= 10.2 (vhost-user-test-device-pci; shared guest memory is required); --qemu auto takes',
    "  the host's QEMU if >= 10.2, else fetches Debian's QEMU 11 once (qemu-scripts/get-qemu.sh; Debian 12 has 7.2):",
    `  ${scripts}/run-vm.sh --qemu auto --socket ${s} --queues ${queues}`,
    `  or by hand: -object memory-backend-memfd,id=mem,size=2G,share=on -machine q35,memory-backend=mem \\`,
    `    -chardev socket,id=vu0,path=${s} -device vhost-user-test-device-pci,chardev=vu0,virtio-id=2,num_vqs=${queues},vq_size=256,config_size=96`,
    'QEMU < 10.2: vhost-user-blk-pci never passes the zoned feature; the guest sees a regular disk (run-vm.sh --regular-disk).',
  ];
}

/** Start serving; resolves with the exit code after SIGINT/SIGTERM. */
export async function serve(a: ServeArgs, o: Out): Promise<number> {
  const log = createLogger(a.logLevel);
  if (!Number.isInteger(a.queues) || a.queues < 1 || a.queues > 64) throw new ZbdError('EARG', `--queues ${a.queues} must be 1..64`, a.queues);
  if (!Number.isInteger(a.queueSize) || a.queueSize < 2 || a.queueSize > 32768 || (a.queueSize & (a.queueSize - 1)) !== 0) {
    throw new ZbdError('EARG', `--queue-size ${a.queueSize} must be a power of two from 2 to 32768`, a.queueSize);
  }
  const pollMaxUs = a.pollMaxUs ?? DEFAULT_POLL_MAX_US;
  if (!Number.isInteger(pollMaxUs) || pollMaxUs < 0 || pollMaxUs > 1_000_000) {
    throw new ZbdError('EARG', `--poll-max-us ${pollMaxUs} must be 0..1000000`, pollMaxUs);
  }
  if (a.volatileCache && a.device) {
    throw new ZbdError('EARG', '--volatile-cache needs an emulated disk (--image or --memory): a host drive\'s written data cannot be rolled back', a.device);
  }
  if (a.powerCutPolicy !== undefined && !POWER_CUT_POLICIES.includes(a.powerCutPolicy)) {
    throw new ZbdError('EARG', `--power-cut-policy ${a.powerCutPolicy} must be one of ${POWER_CUT_POLICIES.join(', ')}`, a.powerCutPolicy);
  }
  const disk = openBackend(a, log);
  // Created below; the cache asks it for the guest's write-cache setting at each write.
  let device!: BlkDevice;
  const cache = a.volatileCache ? new VolatileCacheBackend(disk, { writeback: () => device.writebackEnabled, logger: log }) : null;
  const backend = cache ?? disk;
  device = new BlkDevice({ backend, numQueues: a.queues, maxQueueSize: a.queueSize, model: a.model, logger: log });
  const faults = new FaultRules();
  device.faults = faults;
  const server = new VhostUserServer({ socketPath: a.socket, device, logger: log, pollMaxUs });
  const observer = createObserver({ device, backend, server, subject: a.image ?? a.device ?? '(memory)', logger: log });
  let http: HttpListener | null = null;
  const power = new PowerControl({
    server, backend, cache, logger: log,
    onDisconnect: a.powerCutOnDisconnect ? { policy: a.powerCutPolicy ?? 'all', seed: a.powerCutSeed } : null,
  });
  const apiPath = apiSocketPath(a);
  let api: ApiServer | null = null;
  if (apiPath) {
    const router = new ApiRouter();
    registerControlRoutes(router, {
      device, backend, server, faults, power, cache, queueSize: a.queueSize, startedAt: Date.now(), logger: log,
      source: { image: a.image, device: a.device, memory: a.memory },
    });
    // GET /metrics, /zones.svg, /live.json on the control socket too.
    observer.registerApiRoutes(router);
    api = new ApiServer({ router, logger: log.child({ api: 'control' }), mayChange: true });
  }
  // Handlers go in before the socket exists: whoever sees the socket may signal at once, and a
  // signal before process.on() would take the default action (death without cleanup).
  let stopping = false;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => { resolveExit = resolve; });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing in-flight requests');
    power.stop();
    (async () => {
      let code = 0;
      observer.close();
      try { await http?.close(); } catch (err) { log.error({ err }, 'closing the HTTP listener failed'); }
      try { await api?.close(); } catch (err) { log.error({ err }, 'closing the control API failed'); code = 1; }
      try { await server.close(); } catch (err) { log.error({ err }, 'closing the server failed'); code = 1; }
      try { await backend.close(); } catch (err) { log.error({ err }, 'closing the disk failed'); code = 1; }
      try { fs.rmSync(a.socket, { force: true }); } catch { /* already gone */ }
      log.info({ code }, 'stopped');
      log.flush?.();
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolveExit(code);
    })().catch((err: unknown) => {
      // A throw outside the guarded closes above (e.g. observer.close) must still end the
      // process with a status, not as an unhandled rejection.
      log.error({ err }, 'stopping failed');
      resolveExit(1);
    });
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    if (a.http) http = await startHttpListener({ address: a.http, allowRemote: !!a.httpAllowRemote, routes: observer.routes, logger: log });
    // The control socket first: whoever sees the vhost-user socket may use the API at once.
    if (api && apiPath) await api.listenUnix(apiPath);
    server.listen();
  } catch (err) {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    observer.close();
    await http?.close();
    await api?.close();
    await backend.close();
    throw err;
  }
  const i = backend.info;
  log.info({
    socket: a.socket, image: a.image ?? (a.device ? undefined : '(memory)'), device: a.device, model: device.zoned ? 'host-managed' : 'none', queues: a.queues,
    capacityBytes: i.capacitySectors * 512, zones: i.zoned?.nrZones, zoneBytes: i.zoned ? i.zoned.zoneSectors * 512 : undefined,
    readOnly: i.readOnly, serial: i.serial, api: apiPath ?? 'none', volatileCache: !!a.volatileCache,
    powerCutOnDisconnect: a.powerCutOnDisconnect ? (a.powerCutPolicy ?? 'all') : false,
  }, 'serving');
  if (a.hints) {
    for (const l of vmHints(a.socket, a.queues)) o.out(l);
    if (apiPath) o.out(`Control API (zone faults, error/latency rules, power cut): vhost-user-zbd ctl --api ${path.resolve(apiPath)} status`);
  }
  return exited;
}

