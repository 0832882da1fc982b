// Host errors as a user meets them: every command, and serve's start-up, prints one line that
// names the command, the user's path, the reason and the fix, exits 1, and a failed create
// leaves nothing behind. Real conditions where the host can make them: a private mount
// namespace with small or read-only tmpfs (ENOSPC, EROFS), ext4 (EFBIG), an unprivileged
// user (EACCES), flock(1) holding the image (lock).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorLine } from '../../src/cli/error-line.js';
import { hostFileError } from '../../src/backends/host-file-error.js';

const bin = path.resolve(__dirname, '../../bin/vhost-user-zbd.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-hosterr-'));

/**
 * The CLI as the unprivileged user can run it. A checkout in a private directory (CI clones
 * into one, mode 0700) is unreadable to `nobody`: then the built CLI (bin, dist, the addon,
 * node_modules) is copied to a directory everyone may read, as such a user would install it.
 */
function binReadableByNobody(): string {
  const check = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, '--version'], { encoding: 'utf8' });
  if (check.status === 0) return bin;
  const root = path.resolve(__dirname, '../..');
  const copy = fs.mkdtempSync(path.join(dir, 'cli-'));
  for (const d of ['package.json', 'binding.gyp', 'bin', 'dist', 'build/Release', 'node_modules']) {
    fs.cpSync(path.join(root, d), path.join(copy, d), { recursive: true, dereference: true });
  }
  fs.chmodSync(copy, 0o755);
  return path.join(copy, 'bin/vhost-user-zbd.js');
}
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number; out: string; err: string }

function run(...args: string[]): Run {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Run `setup` (mounts) and then each command line in a private mount namespace (unshare -m:
 * the mounts vanish with it), as root. Results come back through files outside the mounts.
 */
function inMountNamespace(setup: string, cmds: string[][]): Run[] {
  const res = fs.mkdtempSync(path.join(dir, 'res-'));
  const lines = ['set -e', setup, 'set +e'];
  cmds.forEach((c, i) => {
    lines.push(`${sq(process.execPath)} ${sq(bin)} ${c.map(sq).join(' ')} >${res}/out.${i} 2>${res}/err.${i}; echo $? >${res}/rc.${i}`);
  });
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', lines.join('\n')], { encoding: 'utf8' });
  expect(r.status, `mount namespace setup failed (needs root and unshare): ${r.stderr}`).toBe(0);
  return cmds.map((_, i) => ({
    code: Number(fs.readFileSync(`${res}/rc.${i}`, 'utf8')),
    out: fs.readFileSync(`${res}/out.${i}`, 'utf8'),
    err: fs.readFileSync(`${res}/err.${i}`, 'utf8'),
  }));
}

/** One line on stderr, nothing else (no stack). */
function oneLine(r: Run): string {
  const lines = r.err.split('\n').filter(Boolean);
  expect(lines, r.err).toHaveLength(1);
  expect(r.err).not.toMatch(/\n\s+at /);
  return lines[0];
}

describe('host errors: one line, exit 1', () => {
  it('ENOENT: create in a missing directory names the directory, not a temporary file', () => {
    const r = run('create', '/nonexistent-vuzbd/x.img', '--size', '1G', '--zone-size', '64M');
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe('vhost-user-zbd create: cannot create /nonexistent-vuzbd/x.img: directory /nonexistent-vuzbd does not exist (ENOENT); create the directory first, or give a path in an existing one');
    expect(r.err).not.toMatch(/\.tmp/);
  });

  it('ENOENT: report, check, zone and serve of a missing image', () => {
    const img = path.join(dir, 'missing.img');
    for (const [cmd, args] of [['report', [img]], ['check', [img]], ['zone', [img, 'reset', '0']], ['serve', ['--image', img, '--socket', path.join(dir, 's.sock')]]] as const) {
      const r = run(cmd, ...args);
      expect(r.code, r.err).toBe(1);
      expect(oneLine(r)).toBe(`vhost-user-zbd ${cmd}: cannot open ${img}: no such file (ENOENT); check the path; an image is made with 'vhost-user-zbd create IMG --size S --zone-size Z'`);
    }
  });

  it("serve's start-up: a socket in a missing directory, a missing device", () => {
    const img = path.join(dir, 'serve-start.img');
    expect(run('create', img, '--size', '64M', '--zone-size', '4M').code).toBe(0);
    let r = run('serve', '--image', img, '--socket', '/nonexistent-vuzbd/s.sock');
    expect(r.code).toBe(1);
    // The control socket (SOCKET.api) is created first, so it is the one that names the missing directory.
    expect(oneLine(r)).toMatch(/^vhost-user-zbd serve: ESOCKET: cannot listen on (control socket )?\/nonexistent-vuzbd\/s.sock(\.api)?: .*ENOENT.*; create the socket's directory first, or choose another --socket path$/);
    r = run('serve', '--device', '/dev/nonexistent-vuzbd', '--socket', path.join(dir, 'dev.sock'));
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe('vhost-user-zbd serve: EDEVICE: /dev/nonexistent-vuzbd does not exist; check the device path (lsblk lists the block devices)');
  });

  it('ENOTDIR, EISDIR, ELOOP', () => {
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, '');
    let r = run('create', path.join(file, 'x.img'), '--size', '1G', '--zone-size', '64M');
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`vhost-user-zbd create: cannot create ${file}/x.img: ${file} is not a directory (ENOTDIR); fix the path: a file stands where a directory is needed`);
    r = run('report', path.join(file, 'x.img'));
    expect(oneLine(r)).toMatch(/^vhost-user-zbd report: cannot open .*: .*plain is not a directory \(ENOTDIR\)/);

    const sub = fs.mkdtempSync(path.join(dir, 'd-'));
    r = run('create', sub, '--size', '1G', '--zone-size', '64M');
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`vhost-user-zbd create: cannot create ${sub}: it is a directory, not an image file (EISDIR); name an image file, e.g. ${sub}/disk.img`);
    r = run('check', sub);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(/^vhost-user-zbd check: cannot open .*: it is a directory, not an image file \(EISDIR\)/);
    expect(fs.readdirSync(sub)).toEqual([]);

    const loop = path.join(dir, 'loop.img');
    fs.symlinkSync('loop.img', loop);
    for (const args of [['create', loop, '--size', '1G', '--zone-size', '64M'], ['report', loop], ['zone', loop, 'reset', 'all']]) {
      r = run(...args);
      expect(r.code).toBe(1);
      expect(oneLine(r)).toBe(`vhost-user-zbd ${args[0]}: cannot ${args[0] === 'create' ? 'create' : 'open'} ${loop}: too many levels of symbolic links (a symlink loop) (ELOOP); find the loop with: namei -l ${loop}`);
    }
  });

  it('create through a symbolic link writes the file it points to and keeps the link', () => {
    const target = path.join(dir, 'target.img');
    const link = path.join(dir, 'link.img');
    fs.symlinkSync('target.img', link);
    const r = run('create', link, '--size', '64M', '--zone-size', '4M');
    expect(r.code, r.err).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.statSync(target).size).toBe(64 * 2 ** 20 + 2 ** 20);
  });

  it('EACCES: an unprivileged user creating in, or opening from, a directory it may not write', () => {
    const priv = fs.mkdtempSync(path.join(dir, 'priv-'));
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(priv, 0o755);
    const img = path.join(priv, 'root.img');
    expect(run('create', img, '--size', '64M', '--zone-size', '4M').code).toBe(0);
    fs.chmodSync(img, 0o600);
    const nobodyBin = binReadableByNobody();
    const asNobody = (...args: string[]): Run => {
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, nobodyBin, ...args], { encoding: 'utf8' });
      return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
    };
    let r = asNobody('create', path.join(priv, 'x.img'), '--size', '64M', '--zone-size', '4M');
    expect(r.code, r.err).toBe(1);
    expect(oneLine(r)).toBe(`vhost-user-zbd create: cannot create ${priv}/x.img: permission denied (writing in directory ${priv}) (EACCES); choose a directory you may write in, or change its permissions`);
    r = asNobody('report', img);
    expect(oneLine(r)).toBe(`vhost-user-zbd report: cannot open ${img}: permission denied (EACCES); check its permissions (ls -l ${img}): this command only reads it`);
    r = asNobody('serve', '--image', img, '--socket', path.join(priv, 's.sock'));
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`vhost-user-zbd serve: cannot open ${img}: permission denied (EACCES); check its permissions (ls -l ${img}): this command reads and writes it`);
    expect(fs.readdirSync(priv)).toEqual(['root.img']);
  });

  it('EROFS: create, zone, check --repair and serve on a read-only filesystem; report still reads', () => {
    const mnt = fs.mkdtempSync(path.join(dir, 'ro-'));
    const img = path.join(mnt, 'a.img');
    const [create, zone, repair, serve, report, created] = inMountNamespace(
      `mount -t tmpfs -o size=64m tmpfs ${mnt}; ${sq(process.execPath)} ${sq(bin)} create ${img} --size 64M --zone-size 4M >/dev/null; mount -o remount,ro ${mnt}`,
      [['create', path.join(mnt, 'b.img'), '--size', '64M', '--zone-size', '4M'], ['zone', img, 'reset', 'all'], ['check', img, '--repair'],
        ['serve', '--image', img, '--socket', path.join(dir, 'ro.sock')], ['report', img, '--count', '1'], ['check', img]]);
    expect(create.code).toBe(1);
    expect(oneLine(create)).toBe(`vhost-user-zbd create: cannot create ${mnt}/b.img: the filesystem is mounted read-only (EROFS); choose a directory on a writable filesystem`);
    expect(oneLine(zone)).toBe(`vhost-user-zbd zone: cannot open ${img}: the filesystem is mounted read-only (EROFS); copy the image to a writable filesystem (or remount this one read-write)`);
    expect(oneLine(repair)).toBe(`vhost-user-zbd check: cannot open ${img}: the filesystem is mounted read-only (EROFS); copy the image to a writable filesystem (or remount this one read-write)`);
    expect(serve.code).toBe(1);
    expect(oneLine(serve)).toBe(`vhost-user-zbd serve: cannot open ${img}: the filesystem is mounted read-only (EROFS); serve it with --read-only, or move the image to a writable filesystem`);
    expect([zone.code, repair.code]).toEqual([1, 1]);
    expect(report.code, report.err).toBe(0);
    expect(report.out).toMatch(/^ {2}start: 0x000000000/);
    expect(created.code, created.err).toBe(0);
  });

  it('ENOSPC: a create that does not fit leaves nothing behind and says how much was free', () => {
    const mnt = fs.mkdtempSync(path.join(dir, 'full-'));
    const [table, falloc, full, after] = inMountNamespace(`mount -t tmpfs -o size=4m tmpfs ${mnt}`, [
      // A million zones' table is 32 MiB: it does not fit in 4 MiB.
      ['create', path.join(mnt, 'table.img'), '--size', '64T', '--zone-size', '64M'],
      ['create', path.join(mnt, 'falloc.img'), '--size', '64M', '--zone-size', '4M', '--preallocation', 'falloc'],
      ['create', path.join(mnt, 'full.img'), '--size', '64M', '--zone-size', '4M', '--preallocation', 'full'],
      ['report', path.join(mnt, 'table.img')],
    ]);
    expect(table.code).toBe(1);
    expect(oneLine(table)).toMatch(new RegExp(`^vhost-user-zbd create: cannot create ${mnt}/table.img: no space left on the filesystem \\(tmpfs, [\\d.]+ \\w+ free\\) \\(ENOSPC\\); free space on that filesystem, or use another one$`));
    for (const [r, mode, syscall] of [[falloc, 'falloc', ''], [full, 'full', '']] as const) {
      expect(r.code, syscall).toBe(1);
      expect(oneLine(r)).toMatch(new RegExp(`^vhost-user-zbd create: cannot create ${mnt}/${mode}.img: --preallocation ${mode} needs 67108864 bytes \\(64 MiB\\) but the filesystem \\(tmpfs\\) had \\d+ bytes \\([\\d.]+ MiB\\) free \\(ENOSPC\\); free space, choose a smaller --size, or use --preallocation off`));
    }
    // Nothing behind: the report finds no image, and no temporary file was left.
    expect(after.err).toMatch(/table.img: no such file \(ENOENT\)/);
  });

  it('EFBIG: ext4 cannot hold a 16 TiB image; the line names ext4, its limit and the largest --size', () => {
    const st = fs.statfsSync(dir);
    expect(st.type, `this test needs ${os.tmpdir()} on ext4 (statfs type 0xef53)`).toBe(0xef53);
    const img = path.join(dir, 'big.img');
    const r = run('create', img, '--size', '16T', '--zone-size', '64M');
    expect(r.code).toBe(1);
    // ext4 with 4 KiB blocks: (2^32 - 1) blocks = 16 TiB - 4 KiB.
    expect(oneLine(r)).toBe(`vhost-user-zbd create: cannot create ${img}: the image needs a file of 17592195481600 bytes (16 TiB: --size plus 9.0 MiB of header and zone table), ` +
      'but ext4 here holds files of at most 17592186040320 bytes (16 TiB) (EFBIG); choose --size 16777152M (16 TiB) or less, or put the image on XFS or btrfs (files up to 8 EiB); see "Image size and filesystems" in the README');
    expect(fs.readdirSync(dir).filter((f) => f.includes('big.img'))).toEqual([]);
    // The size it proposes does fit.
    const ok = run('create', img, '--size', '16777152M', '--zone-size', '64M');
    expect(ok.code, ok.err).toBe(0);
    fs.rmSync(img);
  });

  it('EFBIG from the process file-size limit (ulimit -f) says so', () => {
    const img = path.join(dir, 'ulimit.img');
    const r = spawnSync('prlimit', ['--fsize=104857600', process.execPath, bin, 'create', img, '--size', '1G', '--zone-size', '64M'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(oneLine({ code: 1, out: r.stdout, err: r.stderr })).toBe(`vhost-user-zbd create: cannot create ${img}: the image needs a file of 1074790400 bytes (1.0 GiB: --size plus 1.0 MiB of header and zone table), ` +
      "but the process's file-size limit (ulimit -f) is 104857600 bytes (100 MiB) (EFBIG); raise the limit (ulimit -f unlimited), or choose --size 64M or less");
    expect(fs.existsSync(img)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('the image lock: every command names the process holding it', async () => {
    const img = path.join(dir, 'locked.img');
    expect(run('create', img, '--size', '64M', '--zone-size', '4M').code).toBe(0);
    const holder = spawn('flock', ['--exclusive', img, 'sleep', '60'], { stdio: 'ignore' });
    pids.push(holder.pid as number);
    // flock(1) forks sleep holding the lock: wait until it is taken.
    const ino = `:${fs.statSync(img).ino} `;
    for (let i = 0; i < 250 && !fs.readFileSync('/proc/locks', 'utf8').includes(ino); i++) await new Promise((r) => setTimeout(r, 20));
    try {
      for (const args of [['report', img], ['check', img], ['zone', img, 'finish', '1'], ['create', img, '--size', '64M', '--zone-size', '4M', '--force'],
        ['serve', '--image', img, '--socket', path.join(dir, 'l.sock')]]) {
        const r = run(...args);
        expect(r.code, r.err).toBe(1);
        expect(oneLine(r)).toMatch(new RegExp(`^vhost-user-zbd ${args[0]}: ${img} is in use by another process \\(pid \\d+: (flock|sleep) [^)]*\\): it holds the image lock; stop that process first`));
      }
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('error lines for conditions the host cannot be made to produce here', () => {
  it('EDQUOT (no quota-enabled filesystem on this host) reads like the others', () => {
    const err = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT', errno: -122, syscall: 'write' });
    // As create wraps any errno error (src/backends/host-file-error.ts):
    const e = errorLine('create', hostFileError(err, 'create', '/srv/x.img'));
    expect(e).toEqual({ code: 1, line: 'vhost-user-zbd create: cannot create /srv/x.img: disk quota exceeded on the filesystem (EDQUOT); free space within your quota, or ask for a larger one' });
  });

  it('an error we did not expect is an "internal error" line that keeps its stack', () => {
    const e = errorLine('report', new TypeError('x is not a function'));
    expect(e.code).toBe(1);
    expect(e.line).toMatch(/^vhost-user-zbd report: internal error \(a bug: please report it with this output\): TypeError: x is not a function\n\s+at /);
  });
});
