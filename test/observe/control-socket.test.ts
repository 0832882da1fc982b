// The read-only observation routes mounted on the control socket (SOCK.api), and
// `ctl zones --svg` drawing the zone map of a running daemon.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apiRequest } from '../../src/cli/ctl-command.js';
import { BIN, startDaemon, tempDir } from '../guest/harness.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

describe('observation routes on the control socket', () => {
  it('GET /metrics, /zones.svg, /live.json answer there; ctl zones --svg writes the map', async () => {
    const d = tempDir('obs-api');
    dirs.push(d);
    const daemon = await startDaemon(d, ['--memory', '--size', '1G', '--zone-size', '16M', '--conventional', '1']);
    try {
      const api = `${daemon.socket}.api`;
      const ctl = (...a: string[]): string => execFileSync(process.execPath, [BIN, 'ctl', '--api', api, ...a], { encoding: 'utf8' });
      ctl('zone', '3', 'finish');
      const m = await apiRequest(api, 'GET', '/metrics');
      expect(m.status).toBe(200);
      expect(String(m.body)).toContain('vhost_user_zbd_zones{condition="full"} 1');
      expect(String(m.body)).toContain('vhost_user_zbd_frontend_connected 0');
      expect((await apiRequest(api, 'POST', '/metrics')).status).toBe(405);
      const live = await apiRequest(api, 'GET', '/live.json');
      expect((live.body as { zones: { byCondition: Record<string, number> } }).zones.byCondition.conventional).toBe(1);
      expect(ctl('zones', '--svg', path.join(d, 'm.svg')).trim()).toBe(`zone map of 64 zones written to ${path.join(d, 'm.svg')}`);
      const svg = fs.readFileSync(path.join(d, 'm.svg'), 'utf8');
      expect(svg.match(/<g class="cell"/g)!.length).toBe(64);
      expect(svg).toMatch(/data-zone="3" data-count="1" data-cond="full"/);
      ctl('zones', '--svg', path.join(d, 'r.svg'), '--zone', '2', '--count', '4');
      expect(fs.readFileSync(path.join(d, 'r.svg'), 'utf8').match(/<g class="cell"/g)!.length).toBe(4);
      const bad = await apiRequest(api, 'GET', '/zones.svg?zone=64');
      expect(bad.status).toBe(400);
      expect(bad.body).toEqual({ error: { code: 'bad-field', message: 'zone=64 is not a zone of this disk (0..63)' } });
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
