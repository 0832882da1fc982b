// The installed command run as a child process, as a user runs it (bin/ → dist/).
import { spawn } from 'node:child_process';
import path from 'node:path';

export const BIN = path.resolve(import.meta.dirname, '../../bin/vhost-user-zbd.js');

export interface CliResult { code: number | null; out: string; err: string }

/** Run `vhost-user-zbd ARGS...` to its exit; stdout and stderr collected. */
export function runCli(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += String(d); });
    p.stderr.on('data', (d) => { err += String(d); });
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}
