// A pino logger whose lines the test can inspect (error lines for rejected messages...).
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export interface LogLine { level: number; msg: string; [k: string]: unknown }

export function captureLogger(level: pino.Level = 'debug'): { log: Logger; lines: LogLine[]; errors: () => LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  // Synchronous destination semantics: pino writes each line immediately to the stream.
  const log = pino({ level }, sink);
  return { log, lines, errors: () => lines.filter((l) => l.level >= 50) };
}
