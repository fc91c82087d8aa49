// Finding processes on the host by their command line, to prove an action left none behind.
import { readdirSync, readFileSync } from 'node:fs';

/** Pids of the processes with `argument` among their command-line arguments. Zombies have an
 * empty command line, so only processes that still run are found. */
export function processesWithArgument(argument: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let commandLine: string;
    try {
      commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (commandLine.split('\0').includes(argument)) found.push(Number(entry));
  }
  return found;
}

/** Processes whose environment holds `variable`: every process an action started has it. */
export function processesWithEnvironment(variable: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(variable)) {
        found.push(Number(entry));
      }
    } catch {
      // The process exited while the table was read.
    }
  }
  return found;
}
