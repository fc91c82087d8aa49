// The runner's JSON log (pino): one line per action, plus start-up and shutdown events, to
// stderr and to every file of global.logPaths.
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Lines logged during one turn of the event loop are written together once its callbacks
 * have run (setImmediate): the lines of a turn share one write, and an action's line follows
 * its response's message onto the socket instead of delaying it. What is pending is written
 * when the process exits. */
function coalescingDestination(destinations: readonly DestinationStream[]): DestinationStream {
  let pending = '';
  const flush = () => {
    if (pending === '') return;
    const lines = pending;
    pending = '';
    for (const destination of destinations) destination.write(lines);
  };
  process.once('exit', flush);
  return {
    write(line: string) {
      if (pending === '') setImmediate(flush);
      pending += line;
    },
  };
}

export function createLogger(logPaths: readonly string[], level = 'info'): Logger {
  const destinations = [
    pino.destination({ fd: 2, sync: true }),
    ...logPaths.map((path) => pino.destination({ dest: path, append: true, sync: true })),
  ];
  return pino({ base: { name: 'chroot-runner' }, level }, coalescingDestination(destinations));
}
