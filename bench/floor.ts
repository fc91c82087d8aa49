// The native side of the benchmark (bench/floor.c): compiled at bench time into a temporary
// directory, never committed as a binary.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { idMap } from '../src/sandbox/contributions/user-namespace.js';
import { defaultIsolation } from '../src/sandbox/defaults.js';
import { seccompProgram } from '../src/sandbox/seccomp.js';
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
  readonly childrenCpuSeconds: number;
  readonly childPeakRssBytes: number;
  /** `floor run`: the mean time of each phase of an action. */
  readonly phasesMicroseconds?: Record<string, number>;
  readonly latenciesMicroseconds: readonly number[];
}

/** The mean time of each phase of the floor's actions at one concurrency (floor.c's phases:
 * beforeClone, clone, mounts, toExec, run, after), and the CPU time of the floor and all its
 * children (the actions' processes included) per action. */
export interface FloorPhases {
  readonly concurrency: number;
  readonly actions: number;
  readonly phasesMicroseconds: Record<string, number>;
  readonly cpuMicroseconds: number;
}

/** The options of floor.c that make its actions do the kernel work of the engine's default
 * isolation (src/sandbox/defaults.ts): an inert root (nosuid, nodev), a session, a network
 * namespace, the action's user namespace (its id map as the engine writes it), the seccomp
 * filter (compiled as the engine compiles it, written to `seccompFile`), the session keyring
 * only where that filter lets actions use keys, and a cgroup per action in each of
 * `cgroupDirectories` (serve's default where the host gives it cgroups). */
export function floorOptions(seccompFile: string, cgroupDirectories: readonly string[]): string[] {
  const { network, seccomp, actionUserNamespace } = defaultIsolation;
  const options = ['inert', 'session'];
  if (network) options.push('network');
  if (actionUserNamespace !== undefined) {
    options.push(`user=${idMap(actionUserNamespace, [0])}`);
  }
  if (!seccomp.enabled || seccomp.allow.includes('keys')) options.push('keyring');
  if (seccomp.enabled) {
    writeFileSync(seccompFile, seccompProgram(seccomp));
    options.push(`seccomp=${seccompFile}`);
  }
  for (const directory of cgroupDirectories) options.push(`cgroup=${directory}`);
  return options;
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

/** The floor: `actions` namespaces actions on the input root, `concurrency` threads, with
 * floor.c's `options`; their log files are created in a new directory beneath `logs`,
 * removed afterwards. */
export async function runFloor(
  executable: string,
  root: string,
  logs: string,
  actions: number,
  concurrency: number,
  options: readonly string[],
): Promise<{ sample: Sample; phases: FloorPhases }> {
  const directory = mkdtempSync(join(logs, 'floor-'));
  try {
    const output = await load(executable, [
      ...['run', root, directory, initExecutablePath],
      ...[String(actions), String(concurrency), ...options],
    ]);
    const cpuSeconds = output.cpuSeconds + output.childrenCpuSeconds;
    return {
      sample: sample(concurrency, output, output.peakRssBytes, output.cpuSeconds * 1000),
      phases: {
        concurrency,
        actions,
        phasesMicroseconds: output.phasesMicroseconds ?? {},
        cpuMicroseconds: (cpuSeconds * 1e6) / actions,
      },
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** `actions` runs of argv launched from C (vfork-style posix_spawn), `concurrency` threads,
 * each with `fd3` (a file) opened on its fd 3 when given. The RSS reported is the largest
 * launched process's (e.g. one bwrap), not the launcher's; no runner CPU time is reported, as
 * the launched process is both runner and action. */
export async function runExec(
  executable: string,
  argv: readonly string[],
  actions: number,
  concurrency: number,
  fd3?: string,
): Promise<Sample> {
  const output = await load(executable, [
    ...['exec', String(actions), String(concurrency)],
    ...(fd3 === undefined ? [] : [`fd3=${fd3}`]),
    ...argv,
  ]);
  return sample(concurrency, output, output.childPeakRssBytes, null);
}

/** Mounts a private tmpfs at `directory` with `count` tmpfs beneath it, in the caller's mount
 * namespace; `umount -l directory` removes them all. */
export async function makeMounts(executable: string, directory: string, count: number) {
  await run(executable, ['mounts', directory, String(count)]);
}
