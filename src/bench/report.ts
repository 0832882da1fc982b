// Turns suite results into the printed table, the target verdicts and a markdown section.
import type { Row, SuiteResult } from './suite.js';

export interface Verdict {
  name: string;
  value: string;
  target: string;
  met: boolean | null;
}

const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const fmtInt = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

function find(r: SuiteResult, id: string, daemon: Row['daemon']): Row | undefined {
  return r.rows.find((x) => x.workload.id === id && x.daemon === daemon);
}

/** ours/QSD IOPS ratio for rows of workloads both daemons ran. */
export function ratio(r: SuiteResult, row: Row): number {
  if (row.daemon !== 'ours') return NaN;
  const q = find(r, row.workload.id, 'qsd');
  return q ? row.iops / q.iops : NaN;
}

export interface Table { header: string[]; rows: string[][] }

export function resultTable(r: SuiteResult): Table {
  const header = ['workload', 'daemon', 'IOPS', 'MB/s', 'p50 µs', 'p99 µs', 'daemon CPU s', 'CPU µs/IO', 'gen CPU s', 'ours/QSD'];
  const rows = r.rows.map((x) => {
    const report = x.workload.op === 'report';
    const cpuPerIo = x.daemonCpuS >= 0 && x.iops > 0 ? x.daemonCpuS / (x.iops * x.seconds) * 1e6 : NaN;
    const rt = ratio(r, x);
    return [
      (x.note ?? x.workload.title) + (report && x.workload.id === 'report' ? ` (${fmtInt(r.reportZones)} zones)` : ''),
      x.daemon + (x.errors ? ` (${x.errors} errors)` : ''),
      fmtInt(x.iops), report ? '-' : fmt(x.mbps), fmt(x.p50Us, 1), fmt(x.p99Us, 1),
      fmt(x.daemonCpuS, 2), fmt(cpuPerIo, 1), fmt(x.genCpuS, 2), Number.isFinite(rt) ? `${rt.toFixed(2)}×` : '',
    ];
  });
  return { header, rows };
}

export function verdicts(r: SuiteResult): Verdict[] {
  const v: Verdict[] = [];
  const rr32o = find(r, 'randread-4k-qd32', 'ours'), rr32q = find(r, 'randread-4k-qd32', 'qsd');
  if (rr32o && rr32q) {
    const x = rr32o.iops / rr32q.iops;
    v.push({ name: '4K random read QD32, ours/QSD IOPS', value: `${x.toFixed(2)}×`, target: '≥ 1.0×', met: x >= 1.0 });
  }
  const rr1o = find(r, 'randread-4k-qd1', 'ours'), rr1q = find(r, 'randread-4k-qd1', 'qsd');
  if (rr1o && rr1q) {
    const x = rr1o.p50Us / rr1q.p50Us;
    const mean = rr1q.iops / rr1o.iops;
    v.push({ name: '4K random read QD1, ours/QSD latency (p50; mean from IOPS)', value: `${x.toFixed(2)}× (mean ${mean.toFixed(2)}×)`, target: '≤ 1.1×', met: x <= 1.1 });
  }
  const ap = find(r, 'append-128k-qd32', 'ours'), fio = find(r, 'append-128k-qd32', 'fio');
  if (ap && fio) {
    const x = ap.mbps / fio.mbps;
    v.push({ name: '128K zone append MB/s / fio 128K sequential write (into holes) MB/s', value: `${x.toFixed(2)}×`, target: '≥ 0.9×', met: x >= 0.9 });
  }
  const rep = find(r, 'report', 'ours');
  if (rep) {
    const ms = rep.p50Us / 1000;
    v.push({ name: `zone report of ${fmtInt(r.reportZones)} zones, p50`, value: `${ms.toFixed(1)} ms`, target: '< 50 ms', met: r.reportZones >= 100_000 ? ms < 50 : null });
  }
  if (r.memory) {
    const mib = r.memory.afterReports.hwm / 1048576;
    v.push({
      name: `daemon peak resident memory, ${fmtInt(r.memory.zones)} zones`, value: `${mib.toFixed(1)} MiB`,
      target: '< 100 MiB', met: r.memory.zones >= 1_000_000 ? mib < 100 : null,
    });
  }
  return v;
}

function align(t: Table): string[] {
  const all = [t.header, ...t.rows];
  const w = t.header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(t.header), w.map((n) => '-'.repeat(n)).join('  '), ...t.rows.map(line)];
}

export function textReport(r: SuiteResult): string[] {
  const out = align(resultTable(r));
  out.push('');
  for (const v of verdicts(r)) out.push(`${v.met === null ? 'n/a ' : v.met ? 'MET ' : 'MISS'}  ${v.name}: ${v.value} (target ${v.target})`);
  if (r.memory) {
    const m = r.memory;
    out.push(`      resident memory with ${fmtInt(m.zones)} zones: ${(m.afterStart.rss / 1048576).toFixed(1)} MiB after start, ` +
      `${(m.afterReports.rss / 1048576).toFixed(1)} MiB after the reports (peak ${(m.afterReports.hwm / 1048576).toFixed(1)} MiB)`);
  }
  out.push(`load average ${r.load.before.map((x) => x.toFixed(2)).join(' ')} before, ${r.load.after.map((x) => x.toFixed(2)).join(' ')} after; ` +
    `${r.cpus} CPUs; ${r.options.reps} × ${r.options.durationMs / 1000} s runs per daemon and workload (medians); ${r.elapsedS.toFixed(0)} s total`);
  return out;
}

export function markdownReport(r: SuiteResult): string {
  const t = resultTable(r);
  const lines = [
    `| ${t.header.join(' | ')} |`,
    `|${t.header.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...t.rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    ...verdicts(r).map((v) => `- ${v.met === null ? 'n/a' : v.met ? '**met**' : '**missed**'}: ${v.name}: ${v.value} (target ${v.target})`),
    '',
    `Load average ${r.load.before.map((x) => x.toFixed(2)).join(' ')} before and ${r.load.after.map((x) => x.toFixed(2)).join(' ')} after the run, ` +
      `${r.cpus} CPUs, ${r.options.reps} × ${r.options.durationMs / 1000} s runs per daemon and workload, medians; started ${r.startedAt}, ${r.elapsedS.toFixed(0)} s.`,
    '',
    'Commands:',
    '',
    '```',
    ...r.commands,
    '```',
  ];
  return lines.join('\n') + '\n';
}
