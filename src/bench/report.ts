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

function find(r: SuiteResult, id: string, daemon: Row['daemon'], fsName?: string): Row | undefined {
  return r.rows.find((x) => x.workload.id === id && x.daemon === daemon && x.fs === fsName);
}

const isQsd = (x: Row): boolean => x.daemon === 'qsd threads' || x.daemon === 'qsd io_uring';

/** QSD's best row for the workload of `row` on the same filesystem: most IOPS, or lowest p50. */
export function bestQsd(r: SuiteResult, row: Row, by: 'iops' | 'p50' = 'iops'): Row | undefined {
  let best: Row | undefined;
  for (const x of r.rows) {
    if (!isQsd(x) || x.workload.id !== row.workload.id || x.fs !== row.fs) continue;
    if (!best || (by === 'iops' ? x.iops > best.iops : x.p50Us < best.p50Us)) best = x;
  }
  return best;
}

/** ours (or before) / best QSD IOPS, for rows of workloads both ran. */
export function ratio(r: SuiteResult, row: Row): number {
  if (row.daemon !== 'ours' && row.daemon !== 'before') return NaN;
  const q = bestQsd(r, row);
  return q ? row.iops / q.iops : NaN;
}

const cpuPerIo = (x: Row): number => (x.daemonCpuS >= 0 && x.iops > 0 ? x.daemonCpuS / (x.iops * x.seconds) * 1e6 : NaN);

export interface Table { header: string[]; rows: string[][] }

export function resultTable(r: SuiteResult): Table {
  const header = ['workload', 'daemon', 'IOPS', 'MB/s', 'p50 µs', 'p99 µs', 'daemon CPU s', 'CPU µs/IO', 'gen CPU s', 'ours/best QSD'];
  const rows = r.rows.map((x) => {
    const report = x.workload.op === 'report';
    const rt = ratio(r, x);
    return [
      (x.note ?? x.workload.title) + (x.fs ? `, ${x.fs}` : '') + (report && x.workload.id === 'report' ? ` (${fmtInt(r.reportZones)} zones)` : ''),
      x.daemon + (x.errors ? ` (${x.errors} errors)` : ''),
      fmtInt(x.iops), report ? '-' : fmt(x.mbps), fmt(x.p50Us, 1), fmt(x.p99Us, 1),
      fmt(x.daemonCpuS, 2), fmt(cpuPerIo(x), 1), fmt(x.genCpuS, 2), Number.isFinite(rt) ? `${rt.toFixed(2)}×` : '',
    ];
  });
  return { header, rows };
}

export function verdicts(r: SuiteResult): Verdict[] {
  const v: Verdict[] = [];
  // Issue 13's targets, on each filesystem, against QSD's best configuration there.
  const fsNames = [...new Set(r.rows.filter((x) => x.daemon === 'ours' && x.fs).map((x) => x.fs as string))];
  for (const f of fsNames) {
    for (const [id, target] of [['randread-4k-qd32', 1.3], ['randwrite-4k-qd32', 1.3], ['seqwrite-128k-qd32', 1.0]] as const) {
      const o = find(r, id, 'ours', f);
      const q = o && bestQsd(r, o);
      if (!o || !q) continue;
      const x = o.iops / q.iops;
      v.push({ name: `${o.workload.title}, ${f}: ours/best QSD (${q.daemon}) IOPS`, value: `${x.toFixed(2)}×`, target: `≥ ${target.toFixed(1)}×`, met: x >= target });
    }
    const o1 = find(r, 'randread-4k-qd1', 'ours', f);
    const q1 = o1 && bestQsd(r, o1, 'p50');
    if (o1 && q1) {
      const x = o1.p50Us / q1.p50Us;
      v.push({ name: `4K random read QD1, ${f}: ours/best QSD (${q1.daemon}) p50 latency`, value: `${x.toFixed(2)}× (mean ${(q1.iops / o1.iops).toFixed(2)}×)`, target: '≤ 1.0×', met: x <= 1.0 });
    }
    for (const id of ['randread-4k-qd32', 'randwrite-4k-qd32']) {
      const o = find(r, id, 'ours', f), q = find(r, id, 'qsd io_uring', f);
      if (!o || !q || !Number.isFinite(cpuPerIo(o)) || !Number.isFinite(cpuPerIo(q))) continue;
      const x = cpuPerIo(o) / cpuPerIo(q);
      v.push({ name: `${o.workload.title}, ${f}: daemon CPU per I/O, ours/QSD io_uring (${fmt(cpuPerIo(o), 1)} / ${fmt(cpuPerIo(q), 1)} µs)`, value: `${x.toFixed(2)}×`, target: '≤ 1.0×', met: x <= 1.0 });
    }
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
