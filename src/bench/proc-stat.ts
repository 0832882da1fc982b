// Per-process resource readings from /proc, for daemons we did not start ourselves as
// Node children (and for QSD): CPU time of all threads, resident memory.
import fs from 'node:fs';

/** Linux USER_HZ: /proc/PID/stat counts CPU time in these ticks (100 on every mainstream kernel). */
const CLOCK_TICKS = 100;

/** utime + stime of every thread of pid, live and exited, in seconds (10 ms resolution). */
export function processCpuSeconds(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}

export interface MemoryUse {
  /** Resident set now, bytes. */
  rss: number;
  /** Peak resident set, bytes. */
  hwm: number;
}

export function processMemory(pid: number): MemoryUse {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Load averages (1, 5, 15 minutes). */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = fs.readFileSync('/proc/loadavg', 'latin1').split(' ').map(Number);
  return [a, b, c];
}
