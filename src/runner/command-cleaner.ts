// runCommandCleaner: runs an operator's command (argv) at the moments the other cleaners run.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cleaner } from './cleaner.js';

const execFileAsync = promisify(execFile);

export function commandCleaner(argv: readonly string[]): Cleaner {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error('runCommandCleaner needs a program');
  return async () => {
    try {
      await execFileAsync(program, args);
    } catch (error) {
      const failure = error as Error & { stderr?: string };
      throw new Error(
        `Failed to run cleaning command ${JSON.stringify(argv)}: ${failure.stderr?.trim() || failure.message}`,
      );
    }
  };
}
