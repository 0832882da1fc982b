// The zoned-disk guest suite, written once and run on each guest front-end (see
// zoned-guest.test.ts: User-Mode Linux 6.12; zoned-guest-qemu.test.ts: QEMU >= 10.2 with
// vhost-user-test-device-pci): the Linux 6.12 guest's own virtio_blk driver, block layer and
// util-linux/fio/btrfs/f2fs tools use the zoned disk served by the daemon. The guest scripts
// (scripts/*.sh) are the same for every front-end; only how the guest boots differs.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/cli/ctl-command.js';
import { cli, explain, normaliseOpen, startDaemon, tempDir, type GuestFrontend, type GuestResult } from './harness.js';

const SCRIPTS = path.join(__dirname, 'scripts');

function serialOf(image: string): string {
  return JSON.parse(cli('report', image, '--json', '--count', '1')).serial;
}

export function zonedGuestSuite(fe: GuestFrontend): void {
  const dirs: string[] = [];
  const dir = (tag: string): string => { const d = tempDir(`${fe.id}-${tag}`); dirs.push(d); return d; };
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  const timings: string[] = [];
  afterAll(() => { if (timings.length) console.log(`[timing] ${fe.title}:\n  ${timings.join('\n  ')}`); });

  /** vitest time allowance for a test whose UML run takes up to `sec` seconds. */
  const allow = (sec: number): number => sec * 1000 * fe.slowdown;
  /** The guest's own time limit for one boot (run-*.sh --timeout). */
  const guestTimeout = (sec: number): number => Math.ceil(sec * fe.slowdown);
  // Served with 2 queues: the QEMU guest (2 vCPUs) uses both; UML's virtio_blk uses one (one CPU).
  const QUEUES = fe.id === 'uml' ? 1 : 2;

  async function boot(
    tag: string, socket: string, d: string, script: string, env: Record<string, string>, mem?: string, timeoutSec = 200,
  ): Promise<GuestResult> {
    const t0 = Date.now();
    try {
      const timeout = guestTimeout(timeoutSec);
      return await fe.run({ sockets: [socket], script: path.join(SCRIPTS, script), env, mem, shares: [d], queues: QUEUES, timeoutSec: timeout });
    } finally {
      timings.push(`${tag} ${script}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  }

  interface Boot { script: string; env?: Record<string, string>; mem?: string }

  /**
   * Create an image with `createArgs`, then for each boot: start the daemon on it, run the guest
   * script, stop the daemon (a fresh daemon per boot: restarts are part of what is tested).
   */
  async function onImage(tag: string, createArgs: string[], boots: Boot[]): Promise<{ img: string; out: string }> {
    const d = dir(tag);
    const img = path.join(d, 'disk.img');
    cli('create', img, ...createArgs);
    const serial = serialOf(img);
    const out = path.join(d, 'out');
    fs.mkdirSync(out);
    for (const [i, b] of boots.entries()) {
      const daemon = await startDaemon(d, ['--image', img, '--queues', String(QUEUES)], `boot${i}`);
      let r;
      try {
        r = await boot(`${tag}#${i}`, daemon.socket, d, b.script, { OUT: out, EXPECT_SERIAL: serial, EXPECT_QUEUES: String(QUEUES), ...b.env }, b.mem);
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
      expect(r.code, explain(r, daemon.log)).toBe(0);
    }
    return { img, out };
  }

  describe(`zoned disk in a Linux 6.12 guest on ${fe.title}`, () => {
    beforeAll(() => { console.log(`[guest] ${fe.title}: ${fe.prepare()}`); }, 1_800_000);

    it('sysfs limits, blkzone report, write pointer rules, zone management and resource limits', async () => {
      const { img, out } = await onImage('basic', ['--size', '1G', '--zone-size', '32M', '--zone-capacity', '31M', '--conventional', '2', '--max-open', '4', '--max-active', '6', '--block-size', '4096'],
        [{ script: 'zoned-basic.sh', env: { NCONV: '2', MAXOPEN: '4' } }]);
      expect(fs.readFileSync(path.join(out, 'sysfs.txt'), 'utf8').trim().split('\n')).toEqual([
        'zoned=host-managed', 'nr_zones=32', 'max_open_zones=4', 'max_active_zones=6', 'zone_append_max_bytes=1048576',
        'chunk_sectors=65536', 'logical_block_size=4096', 'physical_block_size=4096',
      ]);
      // The guest's blkzone and our host report print the same zones (open states end with the daemon).
      const host = cli('report', img);
      expect(normaliseOpen(host)).toBe(normaliseOpen(fs.readFileSync(path.join(out, 'report-final.txt'), 'utf8')));
      expect(host).toMatch(/start: 0x000020000, len 0x010000, cap 0x00f800, wptr 0x000100 .*zcond: 4\(cl\)/);
      expect(host).toMatch(/start: 0x000030000, len 0x010000, cap 0x00f800, wptr 0x000040 .*zcond: 4\(cl\)/);
      expect(host).toMatch(/start: 0x000040000, len 0x010000, cap 0x00f800, wptr 0x010000 .*zcond:14\(fu\)/);
      expect(cli('check', img)).toMatch(/clean/);
    }, allow(120));

    it(`fio --zonemode=zbd with verification (psync and io_uring) on ${QUEUES} queue(s), after reset-all`, async () => {
      const { img, out } = await onImage('fio', ['--size', '2G', '--zone-size', '16M', '--conventional', '1', '--max-open', '8', '--max-active', '12', '--block-size', '4096'],
        [{ script: 'fio-zbd.sh' }]);
      for (const f of ['fio-seq.txt', 'fio-rnd.txt']) {
        const txt = fs.readFileSync(path.join(out, f), 'utf8');
        expect(txt, f).toMatch(/err= 0/);
        expect(txt, f).not.toMatch(/verify: bad/);
      }
      expect(fs.readFileSync(path.join(out, 'queues.txt'), 'utf8').trim()).toBe(`hardware queues=${QUEUES}`);
      expect(normaliseOpen(cli('report', img))).toBe(normaliseOpen(fs.readFileSync(path.join(out, 'report-after-fio.txt'), 'utf8')));
      expect(cli('check', img)).toMatch(/clean/);
    }, allow(180));

    // One test, two boots, three disks (each boot of a TCG guest costs more than its checks):
    // btrfs and f2fs are written, remounted and checked in boot 1; their daemons are restarted;
    // boot 2 finds every file. The third disk's daemon keeps running across both boots: a VM
    // reboot, whose next guest connects to the same daemon and finds its data.
    it('btrfs -O zoned and f2fs -m survive remount and a daemon restart; a VM reboot reconnects to a running daemon', async () => {
      const d = dir('fs');
      const images = {
        btrfs: ['--size', '4G', '--zone-size', '64M', '--conventional', '0'],
        f2fs: ['--size', '2G', '--zone-size', '16M', '--conventional', '8', '--max-open', '12'],
        reboot: ['--size', '1G', '--zone-size', '64M', '--conventional', '2'],
      };
      const img = (k: keyof typeof images): string => path.join(d, `${k}.img`);
      const serial: Record<string, string> = {};
      for (const [k, args] of Object.entries(images)) {
        cli('create', img(k as keyof typeof images), ...args, '--block-size', '4096');
        serial[k] = serialOf(img(k as keyof typeof images));
      }
      const out = (k: string): string => path.join(d, 'out', k);
      const steps = (...s: [string, string][]): string => s.map(([script, k]) => `${script}:${serial[k]}:${out(k)}`).join(' ');
      const serveArgs = (k: keyof typeof images): string[] => ['--image', img(k), '--queues', String(QUEUES)];

      const rebootDaemon = await startDaemon(d, serveArgs('reboot'), 'reboot');
      try {
        for (const [i, stepList] of [
          steps(['btrfs-write.sh', 'btrfs'], ['f2fs-write.sh', 'f2fs'], ['reboot-write.sh', 'reboot']),
          steps(['btrfs-verify.sh', 'btrfs'], ['f2fs-verify.sh', 'f2fs'], ['reboot-verify.sh', 'reboot']),
        ].entries()) {
          const btrfs = await startDaemon(d, serveArgs('btrfs'), `btrfs${i}`);
          const f2fs = await startDaemon(d, serveArgs('f2fs'), `f2fs${i}`);
          let r: GuestResult;
          try {
            const t0 = Date.now();
            r = await fe.run({
              sockets: [btrfs.socket, f2fs.socket, rebootDaemon.socket], script: path.join(SCRIPTS, 'steps.sh'), mem: '768M', shares: [d], queues: QUEUES,
              env: { STEPS: stepList, NCONV: '2' }, timeoutSec: guestTimeout(300),
            });
            timings.push(`fs boot ${i + 1} (btrfs, f2fs, reboot disk): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
            if (i === 0 && r.code === 0) {
              // btrfs writes file data with REQ_OP_ZONE_APPEND: the guest's own driver drove the
              // daemon's zone-append path (its batched submission and acknowledgement).
              const metrics = String((await apiRequest(`${btrfs.socket}.api`, 'GET', '/metrics')).body);
              const appends = Number(/^vhost_user_zbd_requests_total\{op="append",status="ok"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
              expect(appends, 'zone appends served to btrfs').toBeGreaterThan(0);
            }
          } finally {
            expect(await btrfs.stop()).toBe(0);
            expect(await f2fs.stop()).toBe(0);
          }
          expect(r.code, `${explain(r, btrfs.log)}\n--- f2fs daemon log (tail)\n${fs.readFileSync(f2fs.log, 'utf8').split('\n').slice(-20).join('\n')}`).toBe(0);
          // The daemon served btrfs's appends: they show in its persistent zone table.
          if (i === 0) expect(JSON.parse(cli('report', img('btrfs'), '--json')).zones.filter((z: { cond: number }) => z.cond !== 1).length).toBeGreaterThan(2);
        }
        expect(fs.readFileSync(rebootDaemon.log, 'utf8').match(/front-end connected/g)).toHaveLength(2);
      } finally {
        expect(await rebootDaemon.stop()).toBe(0);
      }
      expect(cli('report', img('reboot'), '--zone', '2', '--count', '1')).toMatch(/wptr 0x000280 .*zcond: 4\(cl\)/);
      for (const k of Object.keys(images)) expect(cli('check', img(k as keyof typeof images)), k).toMatch(/clean/);
    }, allow(360));
  });
}
