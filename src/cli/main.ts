// Command line: `vhost-user-zbd <command>`. Errors print one line naming the command and the
// flag or path, and exit 2 (usage) or 1 (operation failed): see error-line.ts.
import { nonNegativeIntOption } from './int-option.js';
import yargs, { type Argv } from 'yargs';
import { ZbdError } from '../errors.js';
import { cmdCheck, cmdCreate, cmdReport, cmdZone, type Out } from './image-commands.js';
import { errorLine } from './error-line.js';
import { PREALLOCATIONS } from '../backends/image-format.js';
import { serveCommand } from './serve-command.js';
import { ctlCommand } from './ctl-command.js';

/** Resolves once stdout takes more: 'drain', or its end (closed by the reader: nothing more will go). One waiter for all writers. */
let stdoutWait: Promise<void> | undefined;
function stdoutReady(): Promise<void> {
  stdoutWait ??= new Promise((resolve) => {
    const done = (): void => {
      process.stdout.off('drain', done);
      process.stdout.off('close', done);
      process.stdout.off('error', done);
      stdoutWait = undefined;
      resolve();
    };
    process.stdout.on('drain', done);
    process.stdout.on('close', done);
    process.stdout.on('error', done);
  });
  return stdoutWait;
}

const stdio: Out = {
  out: (l) => { process.stdout.write(l + '\n'); },
  err: (l) => { process.stderr.write(l + '\n'); },
  write: (data, written) => (process.stdout.write(data, written && (() => written())) ? undefined : stdoutReady()),
};

/** A command defined in its own module (serve, ctl). */
export type CommandModule = (y: Argv, o: Out, done: (p: Promise<number> | number) => void) => Argv;
const commandModules: CommandModule[] = [serveCommand, ctlCommand];

/**
 * `bench` is a tool apart (src/bench): it parses its own options and is loaded only when
 * asked for, so nothing the daemon runs imports it.
 */
const BENCH = { name: 'bench', describe: 'benchmark against qemu-storage-daemon (vhost-user load generator, fio ceiling); see bench --help' };
const runBench = async (argv: string[], o: Out): Promise<number> => (await import('../bench/bench-command.js')).benchMain(argv, o);

export async function main(argv: string[], o: Out = stdio): Promise<number> {
  let pending = 0 as Promise<number> | number;
  const done = (p: Promise<number> | number): void => { pending = p; };
  let y = yargs(argv)
    // A flag given twice takes its last value, as in most tools (not an array its parser rejects).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .scriptName('vhost-user-zbd')
    .usage('$0 <command> [options]\n\nServe a host-managed zoned disk to virtual machines over vhost-user.')
    .command('create <image>', 'create an emulated zoned disk image (sparse file)', (c) => c
      .positional('image', { type: 'string', demandOption: true, describe: 'image file to create' })
      .option('size', { type: 'string', demandOption: true, describe: 'disk capacity, e.g. 4G' })
      .option('zone-size', { type: 'string', demandOption: true, describe: 'zone size, a power of two, e.g. 64M' })
      .option('zone-capacity', { type: 'string', describe: 'writable capacity of each zone (≤ zone size); default: zone size (smr) or 31/32 of it (zns)' })
      .option('conventional', { type: 'string', coerce: nonNegativeIntOption('--conventional'), describe: 'number of conventional zones at the start' })
      .option('max-open', { type: 'string', coerce: nonNegativeIntOption('--max-open'), describe: 'max open zones (0 = unlimited)' })
      .option('max-active', { type: 'string', coerce: nonNegativeIntOption('--max-active'), describe: 'max active zones (0 = unlimited)' })
      .option('max-append', { type: 'string', describe: 'max zone append size, e.g. 1M' })
      .option('block-size', { type: 'string', coerce: nonNegativeIntOption('--block-size'), describe: 'logical block size = write granularity: 512 or 4096 (default 4096)' })
      .option('profile', { choices: ['smr', 'zns'] as const, describe: 'defaults like an SMR disk (no capacity gap, no active limit) or a ZNS SSD (capacity < size, open/active limits)' })
      .option('preallocation', { choices: PREALLOCATIONS, default: 'off' as const, describe: 'reserve the data space up front, as qemu-img: off = sparse (space taken as zones are written, freed by a reset), falloc = fallocate it, full = write zeroes; with falloc/full the daemon cannot meet ENOSPC and resets keep the space' })
      .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing image' }),
    (a) => done(cmdCreate({
      image: a.image, size: a.size, zoneSize: a['zone-size'], zoneCapacity: a['zone-capacity'],
      conventional: a.conventional, maxOpen: a['max-open'], maxActive: a['max-active'], maxAppend: a['max-append'],
      blockSize: a['block-size'], profile: a.profile, force: a.force, preallocation: a.preallocation,
    }, o)))
    .command('report [image]', 'print the zones of an image, or of a host zoned device (--device), in blkzone report format', (c) => c
      .positional('image', { type: 'string', describe: 'zoned image' })
      .option('device', { type: 'string', describe: 'a host zoned block device instead of an image (opened read-only and shared: works while it is served)' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
      .option('zone', { type: 'string', coerce: nonNegativeIntOption('--zone'), describe: 'first zone to report' })
      .option('count', { type: 'string', coerce: nonNegativeIntOption('--count'), describe: 'number of zones to report' })
      .option('svg', { type: 'string', describe: 'draw the zones as an SVG zone map into this file instead of listing them' }),
    (a) => done(cmdReport({ image: a.image, device: a.device, json: a.json, zone: a.zone, count: a.count, svg: a.svg }, o)))
    .command('check <image>', 'check an image for consistency', (c) => c
      .positional('image', { type: 'string', demandOption: true })
      .option('repair', { type: 'boolean', default: false, describe: 'repair what can be repaired without losing acknowledged data' }),
    (a) => done(cmdCheck({ image: a.image, repair: a.repair }, o)))
    .command('zone <image> <op> <zone>', 'zone operation on an image that is not in use (reset|open|close|finish|offline|readonly; reset all)', (c) => c
      .positional('image', { type: 'string', demandOption: true })
      .positional('op', { type: 'string', choices: ['reset', 'open', 'close', 'finish', 'offline', 'readonly'], demandOption: true })
      .positional('zone', { type: 'string', demandOption: true, describe: 'zone index, or "all" with reset' }),
    (a) => done(cmdZone({ image: a.image, op: a.op, zone: a.zone }, o)));
  for (const m of commandModules) y = m(y, o, done);
  y = y.command(BENCH.name, BENCH.describe); // listed in --help; run by runBench
  y = y.demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => { throw err ?? new ZbdError('EARG', msg, undefined); });
  try {
    if (argv[0] === BENCH.name) return await runBench(argv.slice(1), o);
    await y.parseAsync();
    return await pending;
  } catch (err) {
    const command = argv.find((v) => !v.startsWith('-'));
    const e = errorLine(command, err, userPathOf(argv));
    o.err(e.line);
    return e.code;
  }
}

/** The file a command line names (image, socket or device), for host errors that carry no path. */
function userPathOf(argv: string[]): string | undefined {
  for (const flag of ['--image', '--device', '--socket']) {
    const i = argv.indexOf(flag);
    if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
    const eq = argv.find((v) => v.startsWith(flag + '='));
    if (eq) return eq.slice(flag.length + 1);
  }
  // create/report/check/zone take the image as their first positional after the command.
  return argv.filter((v) => !v.startsWith('-'))[1];
}
