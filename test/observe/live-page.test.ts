// The pictures in a real browser: headless Chromium renders the zone map SVG to PNG, and
// watches the live page of a daemon while a Linux 6.12 guest (UML) runs fio in zoned mode.
// Fails, never skips, without Chromium or the guest.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONDITION_COLOURS, zoneMapSvg } from '../../src/observe/zone-map-svg.js';
import { CONDITIONS } from '../../src/observe/zone-census.js';
import { cli, explain, runGuest, startDaemon, tempDir, umlKernel } from '../guest/harness.js';
import { Browser, countColour, decodePng } from './chromium.js';

const dirs: string[] = [];
const dir = (tag: string): string => { const d = tempDir(tag); dirs.push(d); return d; };
/** Screenshots go here too when set (how docs/ images are made). */
const KEEP = process.env.OBSERVE_SCREENSHOTS;
function save(d: string, name: string, png: Buffer): string {
  const p = path.join(d, name);
  fs.writeFileSync(p, png);
  if (KEEP) fs.writeFileSync(path.join(KEEP, name), png);
  return p;
}

let browser: Browser;
beforeAll(async () => { browser = await Browser.launch(); }, 60_000);
afterAll(async () => {
  await browser?.close();
  if (!process.env.OBSERVE_KEEP) for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('zone map in Chromium', () => {
  it('renders the SVG to a PNG of its size with every condition colour on it', async () => {
    const d = dir('svgpng');
    const Z = 2048, CAP = 1536, seq = [1, 2, 3, 4, 14, 13, 15];
    const zones = Array.from({ length: 64 }, (_, i) => {
      const start = i * Z;
      if (i < 4) return { start, len: Z, cap: Z, wp: -1, type: 1, cond: 0 };
      const cond = seq[(i - 4) % seq.length];
      return { start, len: Z, cap: CAP, wp: cond === 14 ? start + CAP : cond === 1 || cond === 15 ? start : start + 256 * (i % 6 + 1), type: 2, cond };
    });
    const svg = zoneMapSvg({ capacitySectors: 64 * Z, blockSize: 4096, zoneSectors: Z, zoneCapacitySectors: CAP, nrZones: 64,
      conventionalZones: 4, maxOpenZones: 8, maxActiveZones: 12 }, zones, { subject: 'test' });
    const [w, h] = /width="(\d+)" height="(\d+)"/.exec(svg)!.slice(1).map(Number);
    fs.writeFileSync(path.join(d, 'map.svg'), svg);
    const page = await browser.open(`file://${path.join(d, 'map.svg')}`, w, h);
    await page.waitFor('document.readyState === "complete" && document.querySelectorAll("g.cell").length', 10_000, 'the SVG to load');
    expect(await page.eval('document.querySelectorAll("g.cell").length')).toBe(64);
    const png = await page.screenshot();
    save(d, 'zone-map.png', png);
    const img = decodePng(png);
    expect([img.width, img.height]).toEqual([w, h]);
    // Every condition's colour is painted (fills, swatches; empty's only in its legend swatch).
    CONDITIONS.forEach((c, i) => {
      expect(countColour(img, CONDITION_COLOURS[i]), `${c.label} ${CONDITION_COLOURS[i]}`).toBeGreaterThan(c.label === 'empty' ? 100 : 400);
    });
  });
});

describe('live page in Chromium while a Linux guest runs fio', () => {
  beforeAll(() => { umlKernel(); }, 1_800_000);

  it('shows zones filling (write pointers advance between two samples), counters and the front-end', async () => {
    const d = dir('live');
    const img = path.join(d, 'disk.img');
    cli('create', img, '--size', '1G', '--zone-size', '16M', '--conventional', '2', '--max-open', '8', '--max-active', '12');
    const serial = JSON.parse(cli('report', img, '--json', '--count', '1')).serial as string;
    const daemon = await startDaemon(d, ['--image', img, '--http', '127.0.0.1:0']);
    try {
      const deadline = Date.now() + 10_000;
      let url: string | undefined;
      while (!(url = /"url":"(http:\/\/127\.0\.0\.1:\d+\/)"/.exec(fs.readFileSync(daemon.log, 'utf8'))?.[1])) {
        if (Date.now() > deadline) throw new Error(`no HTTP listener URL in the daemon log:\n${fs.readFileSync(daemon.log, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const page = await browser.open(url, 1100, 900);
      await page.waitFor('document.body.dataset.state === "live" && document.querySelectorAll("#map g.cell").length', 15_000, 'the first sample');
      expect(await page.eval('document.querySelectorAll("#map g.cell").length')).toBe(64);
      const written = 'Array.from(document.querySelectorAll("#map g.cell")).reduce((a, g) => a + Number(g.dataset.written), 0)';
      const before = await page.eval<number>(written);
      expect(before).toBe(2 * 32768); // the two conventional zones only

      const out = path.join(d, 'out');
      fs.mkdirSync(out);
      const guest = runGuest({ sockets: [daemon.socket], script: path.join(__dirname, 'scripts/live-fio.sh'),
        env: { OUT: out, EXPECT_SERIAL: serial, RUNTIME: '14' } });
      let guestDone = false;
      void guest.then(() => { guestDone = true; });

      // Two samples of the page while fio writes: the sum of write pointers grows between them.
      const a = await page.waitFor<number>(`(() => { const w = ${written}; return w > ${before} ? w : 0; })()`, 240_000, 'the page to show written zones');
      expect(guestDone, 'the guest ended before the page saw writes').toBe(false);
      const aSamples = await page.eval<number>('window.liveState.samples');
      const b = await page.waitFor<number>(`(() => { const w = ${written}; return w > ${a} ? w : 0; })()`, 10_000, 'write pointers to advance again');
      expect(b).toBeGreaterThan(a);
      expect(await page.eval<number>('window.liveState.samples')).toBeGreaterThan(aSamples);
      // Counters on the page: the guest is connected, I/O is flowing, zones are open.
      await page.waitFor('Number(document.getElementById("iops").textContent.replace(/,/g, "")) > 0', 10_000, 'IOPS above zero');
      expect(await page.eval('document.getElementById("frontend").textContent')).toBe('front-end connected');
      const open = await page.eval<string>('document.getElementById("open").textContent');
      expect(open).toMatch(/^[1-8] \/ 8$/);
      expect(await page.eval('document.querySelectorAll("#map g.cell[data-cond=implicit_open]").length')).toBeGreaterThan(0);
      expect(Number(await page.eval<string>('document.getElementById("write-mbps").textContent'))).toBeGreaterThan(0);
      // Screenshot once several zones have data (8 MB/s from two jobs).
      await page.waitFor(`window.liveState.last.zones.writtenBytes > ${before * 512 + 40 * 1024 * 1024}`, 30_000, '40 MB written');
      const shot = save(d, 'live-page.png', await page.screenshot(true));
      expect(decodePng(fs.readFileSync(shot)).width).toBe(1100);

      const r = await guest;
      expect(r.code, explain(r, daemon.log)).toBe(0);
      // After fio: the page and the daemon agree with the guest's own report.
      await new Promise((res) => setTimeout(res, 1500));
      const guestReport = fs.readFileSync(path.join(out, 'report-live.txt'), 'utf8');
      const guestWritten = [...guestReport.matchAll(/wptr (0x[0-9a-f]+) .*\[type: 2/g)].reduce((s, m) => s + parseInt(m[1], 16), 0);
      expect(await page.eval<number>(written)).toBe(2 * 32768 + guestWritten);
      // The refused write is in the page's error list, with its sector.
      const zs = 16 * 2048;
      const rows = await page.eval<string[][]>('Array.from(document.querySelectorAll("#errors tbody tr")).map((r) => Array.from(r.cells).map((c) => c.textContent))');
      expect(rows.map((r) => r.slice(2))).toContainEqual(['write', String(60 * zs + 2048), 'zone_unaligned_wp']);
      save(d, 'live-page-end.png', await page.screenshot(true));
    } catch (err) {
      // The daemon's last words explain most failures here (and its exit code would mask them).
      const tail = fs.readFileSync(daemon.log, 'utf8').split('\n').slice(-30).join('\n');
      await daemon.stop();
      throw new Error(`${(err as Error).message}\n--- daemon log (tail)\n${tail}`, { cause: err });
    }
    expect(await daemon.stop()).toBe(0);
  }, 600_000);
});
