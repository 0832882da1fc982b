// Compile src/ to dist/ once before any test: tests that start the daemon or a child process
// run the same JavaScript a user runs. Type errors are reported by the separate typecheck
// step of the test command; here only a failure to emit is fatal.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, encoding: 'utf8' });
  if (!fs.existsSync(path.join(root, 'dist/cli/main.js'))) {
    throw new Error(`tsc did not produce dist/ (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
}
