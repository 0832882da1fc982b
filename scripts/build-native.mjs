#!/usr/bin/env node
// Builds the native addon (package.json "install", so `npm ci` runs it). node-gyp is pointed
// at the headers of the node that runs it (<prefix>/include/node, shipped with Debian's and
// NodeSource's nodejs packages and with nvm builds): without that it downloads them from
// nodejs.org, which a machine with only the npm and Debian registries cannot reach.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prefix = path.resolve(path.dirname(process.execPath), '..');
// npm tells lifecycle scripts where its bundled node-gyp is; outside npm, look next to node.
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter((p) => p && fs.existsSync(p));
if (candidates.length === 0) {
  console.error('build-native: node-gyp not found (neither $npm_config_node_gyp nor npm\'s bundled copy next to node); run this through npm');
  process.exit(1);
}
const args = [candidates[0], 'rebuild'];
const headers = path.join(prefix, 'include/node');
if (fs.existsSync(path.join(headers, 'common.gypi')) && fs.existsSync(path.join(headers, 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
} else {
  console.error(`build-native: no node headers in ${headers}; node-gyp will try to download them`);
}
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
