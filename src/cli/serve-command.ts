// `vhost-user-zbd serve`'s command line. The daemon itself (src/cli/serve.ts, with the whole
// device stack) is loaded only when serve runs, so the image tools start without it.
import { nonNegativeIntOption } from './int-option.js';
import type { Argv } from 'yargs';
import type { LevelWithSilent } from 'pino';
import { LOG_LEVELS } from '../log.js';
import { POWER_CUT_POLICIES } from '../control/volatile-cache.js';
import type { CommandModule } from './main.js';

export const serveCommand: CommandModule = (y: Argv, o, done) => y.command('serve', 'serve a disk to a VM over vhost-user', (c) => c
  .option('socket', { type: 'string', demandOption: true, describe: 'Unix socket path to listen on (created 0600)' })
  .option('image', { type: 'string', describe: 'zoned image (see create); with --model none, any raw file' })
  .option('memory', { type: 'boolean', describe: 'serve a zoned disk in RAM (lost at exit)' })
  .option('device', { type: 'string', describe: 'serve a host block device: a host-managed zoned one (SMR, ZNS, null_blk, scsi_debug, dm-linear), or a regular one with --model none; opened exclusively with O_DIRECT' })
  .option('size', { type: 'string', describe: '--memory: capacity, e.g. 4G' })
  .option('zone-size', { type: 'string', describe: '--memory: zone size (default 64M)' })
  .option('zone-capacity', { type: 'string', describe: '--memory: zone capacity' })
  .option('conventional', { type: 'string', coerce: nonNegativeIntOption('--conventional'), describe: '--memory: conventional zones' })
  .option('max-open', { type: 'string', coerce: nonNegativeIntOption('--max-open'), describe: '--memory: max open zones' })
  .option('max-active', { type: 'string', coerce: nonNegativeIntOption('--max-active'), describe: '--memory: max active zones' })
  .option('block-size', { type: 'string', coerce: nonNegativeIntOption('--block-size'), describe: 'logical block size (memory / raw file)' })
  .option('model', { choices: ['hm', 'none'] as const, default: 'hm' as const, describe: 'hm: host-managed zoned disk; none: regular disk from a raw file or a non-zoned --device' })
  .option('queues', { type: 'string', coerce: nonNegativeIntOption('--queues'), default: '1', describe: 'number of request queues' })
  .option('queue-size', { type: 'string', coerce: nonNegativeIntOption('--queue-size'), default: '1024', describe: 'largest virtqueue size accepted' })
  .option('poll-max-us', { type: 'string', coerce: nonNegativeIntOption('--poll-max-us'), default: '32', describe: 'longest busy-poll of the queues after serving one, µs (adaptive, from 0 up to this; 0: served from kicks only)' })
  .option('read-only', { type: 'boolean', default: false })
  .option('log-level', { choices: LOG_LEVELS, default: 'info' as LevelWithSilent, describe: 'debug traces every vhost-user message' })
  .option('hints', { type: 'boolean', default: true, describe: 'print VM command lines once listening' })
  .option('http', { type: 'string', describe: 'HOST:PORT: read-only HTTP listener with the live zone-map page (/), Prometheus /metrics, /zones, /zones.svg, /events; loopback only' })
  .option('http-allow-remote', { type: 'boolean', default: false, describe: 'let --http bind a non-loopback address (no authentication: anyone who reaches it reads the metrics and zones)' })
  .option('api', { type: 'string', describe: 'control API socket (HTTP/JSON, 0600), or "none"; default SOCKET.api (see ctl)' })
  .option('volatile-cache', { type: 'boolean', default: false, describe: 'emulate a volatile write cache: while the guest has its cache enabled, writes no flush covers are lost by a power cut (ctl power-cut)' })
  .option('power-cut-on-disconnect', { type: 'boolean', default: false, describe: 'the front-end going away (VM killed) is a power cut: with --volatile-cache, unflushed writes are lost by --power-cut-policy' })
  .option('power-cut-policy', { choices: POWER_CUT_POLICIES, describe: 'what a disconnect power cut loses: all unflushed writes (default), none, or random (seeded by --power-cut-seed)' })
  .option('power-cut-seed', { type: 'string', coerce: nonNegativeIntOption('--power-cut-seed'), describe: 'seed of the random policy' }),
(a) => done(import('./serve.js').then(({ serve }) => serve({
  socket: a.socket, image: a.image, memory: a.memory, device: a.device, size: a.size, zoneSize: a['zone-size'], zoneCapacity: a['zone-capacity'],
  conventional: a.conventional, maxOpen: a['max-open'], maxActive: a['max-active'], blockSize: a['block-size'],
  model: a.model, queues: Number(a.queues), queueSize: Number(a['queue-size']), pollMaxUs: Number(a['poll-max-us']), readOnly: a['read-only'],
  logLevel: a['log-level'], hints: a.hints, http: a.http, httpAllowRemote: a['http-allow-remote'], api: a.api, volatileCache: a['volatile-cache'],
  powerCutOnDisconnect: a['power-cut-on-disconnect'], powerCutPolicy: a['power-cut-policy'], powerCutSeed: a['power-cut-seed'],
}, o))));
