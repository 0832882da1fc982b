// The installed command, run as a user runs it (bin/ → dist/).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const bin = path.resolve(__dirname, '../../bin/vhost-user-zbd.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe('vhost-user-zbd CLI', () => {
  it('--help lists the subcommands', () => {
    const r = run('--help');
    expect(r.code).toBe(0);
    for (const c of ['create', 'report', 'check', 'zone']) expect(r.out).toContain(`vhost-user-zbd ${c}`);
  });

  it('a flag given twice takes its last value', () => {
    const img = path.join(dir, 'twice.img');
    const r = run('create', img, '--size', '512M', '--size', '1G', '--zone-size', '64M');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/16 zones of 67108864 bytes/);
  });

  it('create / report / zone / check round trip', () => {
    const img = path.join(dir, 'rt.img');
    let r = run('create', img, '--size', '1G', '--zone-size', '64M', '--zone-capacity', '62M', '--conventional', '2', '--max-open', '4', '--max-active', '6');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/16 zones of 67108864 bytes \(capacity 65011712\), 2 conventional/);
    r = run('report', img);
    const lines = r.out.split('\n').filter(Boolean);
    expect(lines).toHaveLength(16);
    expect(lines[0]).toBe('  start: 0x000000000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 0(nw) [type: 1(CONVENTIONAL)]');
    expect(lines[2]).toBe('  start: 0x000040000, len 0x020000, cap 0x01f000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]');
    expect(run('zone', img, 'finish', '3').code).toBe(0);
    expect(run('zone', img, 'offline', '4').code).toBe(0);
    r = run('zone', img, 'reset', '4');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/zone 4: reset refused: the zone condition does not allow it \(condition offline\)/);
    r = run('report', img, '--zone', '3', '--count', '2');
    expect(r.out.split('\n').filter(Boolean)).toEqual([
      '  start: 0x000060000, len 0x020000, cap 0x01f000, wptr 0x020000 reset:0 non-seq:0, zcond:14(fu) [type: 2(SEQ_WRITE_REQUIRED)]',
      '  start: 0x000080000, len 0x020000, cap 0x01f000, wptr 0xfffffffffff7ffff reset:0 non-seq:0, zcond:15(of) [type: 2(SEQ_WRITE_REQUIRED)]',
    ]);
    const j = JSON.parse(run('report', img, '--json').out);
    expect(j.nrZones).toBe(16);
    expect(j.zones[3]).toMatchObject({ zone: 3, cond: 14, condName: 'full' });
    expect(j.zones[4]).toMatchObject({ cond: 15, wp: null });
    expect(run('zone', img, 'reset', 'all').code).toBe(0);
    expect(JSON.parse(run('report', img, '--json').out).zones[3].cond).toBe(1);
    r = run('check', img);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/clean \(16 zones, 2 conventional\)/);
  });

  it('check finds and repairs a corrupted zone entry', () => {
    const img = path.join(dir, 'bad.img');
    expect(run('create', img, '--size', '64M', '--zone-size', '4M').code).toBe(0);
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.alloc(8, 0xff), 0, 8, 4096 + 3 * 32);
    fs.closeSync(fd);
    let r = run('report', img);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/zone 3: zone entry checksum mismatch/);
    r = run('check', img);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/zone 3: zone entry checksum mismatch \[repair: mark the zone FULL/);
    r = run('check', img, '--repair');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/repaired zone 3/);
    expect(r.out).toMatch(/repaired, now clean/);
  });

  const bad: [string[], RegExp][] = [
    [['--size', '1G', '--zone-size', '3M'], /--zone-size: EZONEGEOM: zone size 3145728 bytes is not a power of two/],
    [['--size', '1G', '--zone-size', 'big'], /--zone-size 'big' is not a size/],
    [['--size', '1G', '--zone-size', '64M', '--zone-capacity', '128M'], /--zone-capacity: .*zone capacity \(sectors\) 262144 is above the maximum 131072/],
    [['--size', '1G', '--zone-size', '64M', '--conventional', '16'], /--conventional: .*conventional zones 16 is above the maximum 15/],
    [['--size', '1G', '--zone-size', '64M', '--block-size', '1024'], /--block-size: .*block size 1024 must be 512 or 4096/],
    [['--size', '1G', '--zone-size', '64M', '--max-open', '-3'], /--max-open -3 is not a non-negative integer/],
    [['--size', '32M', '--zone-size', '64M'], /--size: .*smaller than one zone/],
    [['--size', '1000', '--zone-size', '64M'], /--size 1000: .*not a multiple of 512/],
    [['--zone-size', '64M'], /Missing required argument: size/],
  ];
  for (const [args, re] of bad) {
    it(`create ${args.join(' ')} fails with a message naming the flag`, () => {
      const img = path.join(dir, `bad-${Math.random()}.img`);
      const r = run('create', img, ...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(re);
      expect(fs.existsSync(img)).toBe(false);
    });
  }

  it('a missing image is a clear error', () => {
    const r = run('report', path.join(dir, 'nope.img'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vhost-user-zbd report: cannot open .*nope.img: no such file \(ENOENT\); check the path/);
  });
});
