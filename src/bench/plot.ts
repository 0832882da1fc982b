// IOPS against queue depth for both daemons (4K random read, one queue), as a standalone SVG:
// no plotting dependency, readable on GitHub and in a browser.
import type { SuiteResult } from './suite.js';

interface Series { name: string; color: string; points: Array<[number, number]> }

export function qdSeries(r: SuiteResult): Series[] {
  const pick = (daemon: string): Array<[number, number]> => r.rows
    .filter((x) => x.daemon === daemon && x.workload.op === 'randread' && x.workload.queues === 1 && x.workload.bs === 4096 && x.workload.group !== 'gen')
    .map((x): [number, number] => [x.workload.qd, x.iops])
    .sort((a, b) => a[0] - b[0]);
  return [
    { name: 'qemu-storage-daemon', color: '#d62728', points: pick('qsd') },
    { name: 'vhost-user-zbd', color: '#1f77b4', points: pick('ours') },
  ].filter((s) => s.points.length > 0);
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function qdPlotSvg(r: SuiteResult, title = '4K random read, 1 queue: IOPS vs queue depth'): string {
  const series = qdSeries(r);
  const W = 720, H = 440, L = 80, R = 200, T = 50, B = 60;
  const pw = W - L - R, ph = H - T - B;
  const qds = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const maxY = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const step = 10 ** Math.floor(Math.log10(maxY / 5));
  const yStep = [1, 2, 5, 10].map((m) => m * step).find((s) => maxY / s <= 8) ?? 10 * step;
  const yMax = Math.ceil(maxY / yStep) * yStep;
  const lx0 = Math.log2(qds[0] ?? 1), lx1 = Math.log2(qds[qds.length - 1] ?? 2);
  const x = (qd: number): number => L + (lx1 === lx0 ? pw / 2 : (Math.log2(qd) - lx0) / (lx1 - lx0) * pw);
  const y = (v: number): number => T + ph - v / yMax * ph;
  const o: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L + pw / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`,
  ];
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    o.push(`<line x1="${L}" x2="${L + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    o.push(`<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v >= 1000 ? `${v / 1000}k` : v}</text>`);
  }
  for (const qd of qds) {
    o.push(`<line x1="${x(qd)}" x2="${x(qd)}" y1="${T}" y2="${T + ph}" stroke="#eee"/>`);
    o.push(`<text x="${x(qd)}" y="${T + ph + 18}" text-anchor="middle">${qd}</text>`);
  }
  o.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" stroke="black"/>`);
  o.push(`<line x1="${L}" x2="${L + pw}" y1="${T + ph}" y2="${T + ph}" stroke="black"/>`);
  o.push(`<text x="${L + pw / 2}" y="${H - 18}" text-anchor="middle">queue depth (requests in flight)</text>`);
  o.push(`<text x="18" y="${T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${T + ph / 2})">IOPS</text>`);
  series.forEach((s, i) => {
    const pts = s.points.map(([qd, v]) => `${x(qd).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    o.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2.5"/>`);
    for (const [qd, v] of s.points) o.push(`<circle cx="${x(qd).toFixed(1)}" cy="${y(v).toFixed(1)}" r="4" fill="${s.color}"/>`);
    const ly = T + 20 + i * 22;
    o.push(`<line x1="${L + pw + 20}" x2="${L + pw + 44}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"/>`);
    o.push(`<text x="${L + pw + 50}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  o.push(`<text x="${L + pw + 20}" y="${T + 80}" fill="#555">${esc(`load avg ${r.load.before[0].toFixed(1)}, ${r.cpus} CPUs`)}</text>`);
  o.push('</svg>');
  return o.join('\n') + '\n';
}
