// The runner's JSON log (pino): one line per action, plus start-up and shutdown events, to
// stderr and to every file of global.logPaths.
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export function createLogger(logPaths: readonly string[], level = 'info'): Logger {
  const streams = [
    { stream: pino.destination({ fd: 2, sync: true }) },
    ...logPaths.map((path) => ({
      stream: pino.destination({ dest: path, append: true, sync: true }),
    })),
  ];
  return pino({ base: { name: 'chroot-runner' }, level }, pino.multistream(streams));
}
