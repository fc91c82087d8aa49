// Finding processes on the host by their command line, to prove an action left none behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
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

/** A sleep duration no other process on the machine uses: it marks an action's processes. */
export function uniqueSleepDuration(): string {
  return `${3_000_000 + Math.floor(Math.random() * 6_000_000)}`;
}

/** Pids of processes running `sleep <duration>`, or a shell whose script does. */
export function processesMentioning(duration: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      if (argv.includes(duration) || argv.some((arg) => arg.includes(`sleep ${duration}`))) {
        pids.push(Number(entry));
      }
    } catch {
      // exited meanwhile
    }
  }
  return pids;
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

/** Runs `runner` (a `chroot-runner run … --` command line) on an action that leaves a
 * background `sleep marker`, SIGKILLs the runner once the action runs, and resolves when the
 * runner's stdout is closed: the init and every process of the action hold it, so that proves
 * none of them survived. `marker` must be an argument no other test uses. */
export async function killRunnerDuringAction(
  runner: readonly string[],
  marker: string,
): Promise<void> {
  const [program = process.execPath, ...args] = runner;
  const child = spawn(program, [...args, 'sh', '-c', `sleep ${marker} & echo ready; wait`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'ready\n');
  child.kill('SIGKILL');
  child.stdout.resume();
  await once(child, 'close');
  assert.deepEqual(processesWithArgument(marker), []);
}
