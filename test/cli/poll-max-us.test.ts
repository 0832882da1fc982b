// serve --poll-max-us: values outside 0..1000000 µs are refused before anything is opened.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli-process.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'vuzbd-poll-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('serve --poll-max-us', () => {
  it('refuses values outside 0..1000000 with EARG and the value, exit 2, no socket', async () => {
    const socket = path.join(dir, 's');
    const cases: Array<[string, RegExp]> = [
      ['1000001', /--poll-max-us 1000001 must be 0\.\.1000000/],
      ['-1', /--poll-max-us -1 is not a non-negative integer/],
      ['2.5', /--poll-max-us 2\.5 is not a non-negative integer/],
    ];
    for (const [v, msg] of cases) {
      const r = await runCli('serve', '--socket', socket, '--memory', '--size', '256M', '--zone-size', '64M', `--poll-max-us=${v}`);
      expect(r.code, v).toBe(2);
      expect(r.err).toMatch(/EARG/);
      expect(r.err).toMatch(msg);
      expect(existsSync(socket)).toBe(false);
    }
  });
});
