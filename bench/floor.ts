// The native side of the benchmark (bench/floor.c): compiled at bench time into a temporary
// directory, never committed as a binary.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { initExecutablePath } from '../src/syscalls/native.js';
import type { Sample } from './load.js';

const run = promisify(execFile);

/** bench/floor.c, whether this module runs from bench/ or dist/bench/. */
const floorSource = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/') ? '../../bench/floor.c' : './floor.c',
    import.meta.url,
  ),
);

/** Compiles floor.c to `executable`. The init it execs as each action's PID 1 is the
 * engine's own (build/Release/chroot-runner-init, native/init.c), so that the floor does the
 * engine's kernel work and no more. */
export async function compileFloor(executable: string): Promise<void> {
  const flags = ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror'];
  await run('cc', [...flags, '-o', executable, floorSource]);
}

interface FloorOutput {
  readonly wallSeconds: number;
  readonly peakRssBytes: number;
  readonly cpuSeconds: number;
  readonly childPeakRssBytes: number;
  readonly latenciesMicroseconds: readonly number[];
}

async function load(executable: string, args: readonly string[]): Promise<FloorOutput> {
  try {
    const { stdout } = await run(executable, args, { maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(stdout) as FloorOutput;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw stderr ? new Error(`floor ${args[0]}: ${stderr.split('\n')[0]}`) : error;
  }
}

function sample(
  concurrency: number,
  output: FloorOutput,
  peakRssBytes: number,
  cpuMs: number | null,
): Sample {
  const latenciesMs = output.latenciesMicroseconds.map((microseconds) => microseconds / 1000);
  return { concurrency, latenciesMs, wallSeconds: output.wallSeconds, peakRssBytes, cpuMs };
}

/** The floor: `actions` namespaces actions on the input root, `concurrency` threads; their
 * log files are created in a new directory beneath `logs`, removed afterwards. `direct`
 * leaves out the init. */
export async function runFloor(
  executable: string,
  root: string,
  logs: string,
  actions: number,
  concurrency: number,
  direct = false,
): Promise<Sample> {
  const directory = mkdtempSync(join(logs, 'floor-'));
  try {
    const args = [
      ...['run', root, directory, initExecutablePath],
      ...[String(actions), String(concurrency)],
    ];
    const output = await load(executable, direct ? [...args, 'direct'] : args);
    return sample(concurrency, output, output.peakRssBytes, output.cpuSeconds * 1000);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** `actions` runs of argv launched from C (vfork-style posix_spawn), `concurrency` threads.
 * The RSS reported is the largest launched process's (e.g. one bwrap), not the launcher's;
 * no runner CPU time is reported, as the launched process is both runner and action. */
export async function runExec(
  executable: string,
  argv: readonly string[],
  actions: number,
  concurrency: number,
): Promise<Sample> {
  const output = await load(executable, ['exec', String(actions), String(concurrency), ...argv]);
  return sample(concurrency, output, output.childPeakRssBytes, null);
}

/** Mounts a private tmpfs at `directory` with `count` tmpfs beneath it, in the caller's mount
 * namespace; `umount -l directory` removes them all. */
export async function makeMounts(executable: string, directory: string, count: number) {
  await run(executable, ['mounts', directory, String(count)]);
}
