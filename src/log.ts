// Structured logging (pino). Library code takes a Logger; only the CLI creates one.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** JSON lines on stderr (stdout stays free for command output); pretty when a person watches. */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stderr.isTTY): Logger {
  if (pretty) {
    return pino({ level, base: { name: 'vhost-user-zbd' } }, pino.transport({
      target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' },
    }));
  }
  return pino({ level, base: { name: 'vhost-user-zbd', pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
