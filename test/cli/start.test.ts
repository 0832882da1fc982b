// The README's first quick-start line, `npm start`, as a user or a supervisor runs it: it
// creates the default image, serves it, and a SIGTERM to npm stops the daemon cleanly.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vuzbd-start-'));
/** Processes to stop if the test fails half-way: npm and the daemon behind it (by PID). */
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('creates the default 4 GiB zoned image, serves it on a 0600 socket, and stops on SIGTERM to npm', async () => {
    const env = { ...process.env, VHOST_USER_ZBD_DATA: path.join(dir, 'data'), VHOST_USER_ZBD_RUN: path.join(dir, 'run') };
    const npm = spawn('npm', ['start', '--silent'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(npm.pid as number);
    let out = '', err = '';
    npm.stdout.on('data', (d) => { out += String(d); });
    npm.stderr.on('data', (d) => { err += String(d); });
    const exit = new Promise<string>((resolve) => npm.on('exit', (code, signal) => resolve(`code ${code} signal ${signal}`)));
    const socket = path.join(dir, 'run', 'vhost-user-zbd.sock');
    for (let i = 0; i < 1200 && !/"msg":"serving"/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
    expect(err, out).toMatch(/"msg":"serving"/);
    const daemonPid = Number(/"pid":(\d+),[^\n]*"msg":"serving"/.exec(err)?.[1]);
    pids.push(daemonPid);
    const image = path.join(dir, 'data', 'default.img');
    expect(out + err).toContain(`created ${image}: 4294967296 bytes, 64 zones of 67108864 bytes (capacity 67108864), 4 conventional`);
    expect(err).toMatch(/"capacityBytes":4294967296,"zones":64,"zoneBytes":67108864/);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    expect(out).toContain(`run-uml.sh --socket ${socket}`);
    // The QEMU line works on Debian 12 too: --qemu auto fetches QEMU 11 when the host's is 7.2.
    expect(out).toContain(`run-vm.sh --qemu auto --socket ${socket}`);
    // A supervisor signals the process it started: npm, not the daemon behind it.
    npm.kill('SIGTERM');
    await exit;
    expect(err).toMatch(/"msg":"stopped"/);
    expect(err).toMatch(/"code":0,"msg":"stopped"/);
    expect(fs.existsSync(socket)).toBe(false);
    expect(() => process.kill(daemonPid, 0)).toThrow(/ESRCH/);
  }, 120_000);
});

describe('npm start rebuilds a stale build', () => {
  // scripts/start.sh in a skeleton checkout: dependencies and the addon count as installed, npx
  // records whether tsc ran, the CLI stub prints what it was asked to do.
  function skeleton(): { root: string; run: () => string; npmLog: () => string } {
    const root = fs.mkdtempSync(path.join(dir, 'skel-'));
    const mk = (rel: string, text: string, mode = 0o644): void => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text, { mode });
    };
    mk('scripts/start.sh', fs.readFileSync(path.join(__dirname, '../../scripts/start.sh'), 'utf8'), 0o755);
    mk('scripts/native-addon.sh', fs.readFileSync(path.join(__dirname, '../../scripts/native-addon.sh'), 'utf8'));
    mk('scripts/install-deps.sh', 'exit 0\n', 0o755);
    mk('build/Release/vhost_user_zbd_native.node', '');
    mk('binding.gyp', '{}\n');
    mk('native/addon.cc', '');
    mk('native/io-ring.cc', '');
    mk('bin/vhost-user-zbd.js', 'console.log("cli " + process.argv.slice(2)[0]);\n');
    mk('tools/npm', `#!/bin/sh\necho "npm $*" >> "${root}/npm.log"\ntouch "${root}/build/Release/vhost_user_zbd_native.node"\n`, 0o755);
    mk('tools/npx', `#!/bin/sh\necho "npx $*" >> "${root}/npx.log"\ntouch "${root}/dist/cli/main.js"\n`, 0o755);
    mk('tsconfig.json', '{}\n');
    mk('src/cli/main.ts', '');
    mk('src/blk/blk-device.ts', '');
    mk('dist/cli/main.js', '');
    mk('data/default.img', '');
    const t = (rel: string, s: number): void => fs.utimesSync(path.join(root, rel), s, s);
    // Sources and their directories at t=1000, the build at t=2000.
    const sources = ['tsconfig.json', 'src/cli/main.ts', 'src/blk/blk-device.ts', 'src/cli', 'src/blk', 'src', 'binding.gyp', 'native/addon.cc', 'native/io-ring.cc', 'native'];
    for (const f of sources) t(f, 1000);
    t('dist/cli/main.js', 2000);
    t('build/Release/vhost_user_zbd_native.node', 2000);
    const env = { ...process.env, PATH: `${path.join(root, 'tools')}:${process.env.PATH}`, VHOST_USER_ZBD_DATA: path.join(root, 'data'), VHOST_USER_ZBD_RUN: path.join(root, 'run') };
    return {
      root,
      run: () => {
        const r = spawnSync('bash', ['scripts/start.sh'], { cwd: root, env, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toContain('cli serve');
        return fs.existsSync(path.join(root, 'npx.log')) ? fs.readFileSync(path.join(root, 'npx.log'), 'utf8') : '';
      },
      npmLog: () => (fs.existsSync(path.join(root, 'npm.log')) ? fs.readFileSync(path.join(root, 'npm.log'), 'utf8') : ''),
    };
  }

  it('does not rebuild an up-to-date build, rebuilds after an edit of a file in a subdirectory of src', () => {
    const s = skeleton();
    expect(s.run()).toBe('');
    // An edit in place changes the file's mtime, not the directory's (src/ stays at t=1000).
    fs.utimesSync(path.join(s.root, 'src/blk/blk-device.ts'), 3000, 3000);
    expect(fs.statSync(path.join(s.root, 'src')).mtimeMs).toBe(1000_000);
    expect(s.run()).toBe('npx tsc -p tsconfig.json\n');
    // Built now: the next start does not build again.
    expect(s.run()).toBe('npx tsc -p tsconfig.json\n');
  });

  it('rebuilds the native addon when a native source or binding.gyp is newer than it, not otherwise', () => {
    const s = skeleton();
    s.run();
    expect(s.npmLog()).toBe('');
    // A checkout that changed one addon source (the .node stays at t=2000).
    fs.utimesSync(path.join(s.root, 'native/io-ring.cc'), 3000, 3000);
    s.run();
    expect(s.npmLog()).toBe('npm run install\n');
    s.run();
    expect(s.npmLog()).toBe('npm run install\n');
    fs.utimesSync(path.join(s.root, 'binding.gyp'), Date.now() / 1000 + 60, Date.now() / 1000 + 60);
    s.run();
    expect(s.npmLog()).toBe('npm run install\nnpm run install\n');
    // A missing addon is built too.
    fs.rmSync(path.join(s.root, 'build/Release/vhost_user_zbd_native.node'));
    s.run();
    expect(s.npmLog()).toBe('npm run install\n'.repeat(3));
  });
});
