// `npm run bench`: the per-action overhead of chroot-runner next to the kernel's floor,
// bubblewrap and a bare Node spawn, on the same static busybox input root (issue 7).
// Writes bench/results/latest.json, latest.md and latency.png. Needs root. Installs nothing.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountsBeneath } from '../test/helpers/leaks.js';
import { latencySvg, renderPng } from './chart.js';
import { inputRootOf, loadEngine } from './engine.js';
import { compileFloor, runExec, runFloor } from './floor.js';
import { combine, type Level, median, type Sample } from './load.js';
import {
  type Contender,
  type HeapScalingRow,
  markdown,
  type Results,
  ratios,
  targets,
} from './report.js';
import { serveMissing } from './serve.js';
import type { EngineTimings, Job, LoadResult, MountScalingResult } from './worker.js';

function count(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** A comma-separated list without the spaces around its commas. */
function commaList(list: string): string {
  return list
    .split(',')
    .map((item) => item.trim())
    .join(',');
}

const settings = {
  /** Measured actions per contender and concurrency, over all rounds. */
  actions: count('BENCH_ACTIONS', 1000),
  /** Interleaved rounds of the contenders; each Level pools its rounds' latencies. */
  rounds: count('BENCH_ROUNDS', 3),
  /** Unmeasured actions before each measurement. */
  warmup: count('BENCH_WARMUP', 50),
  /** Unmeasured actions each Node runner's process runs once, before any measurement. */
  processWarmup: count('BENCH_PROCESS_WARMUP', 2000),
  /** Measured actions per point of the mount and heap scaling parts, over all rounds. */
  scalingActions: count('BENCH_SCALING_ACTIONS', 600),
  /** Interleaved rounds of the scaling parts: each point is the median of its rounds'. */
  scalingRounds: count('BENCH_SCALING_ROUNDS', 3),
  concurrencies: (process.env.BENCH_CONCURRENCY ?? '1,12,64').split(',').map(Number),
  mountCounts: [0, 100, 1000],
  heapMegabytes: [50, 500],
  /** Only these contenders and parts ("mount scaling", "heap scaling"), comma-separated. */
  only: process.env.BENCH_ONLY === undefined ? null : `,${commaList(process.env.BENCH_ONLY)},`,
  /** Where the build directory is made. By default on a tmpfs of the bench's own, so that the
   * disk's cost of creating each action's two log files does not drown the runner's. */
  buildDirectoryParent: process.env.BENCH_BUILD_DIRECTORY_PARENT ?? null,
  /** A directory for `node --cpu-prof` profiles of the engine and serve processes. */
  cpuProfileDirectory: process.env.BENCH_CPU_PROFILE ?? null,
};

const resultsDirectory = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));

/** The path of a command found on PATH. */
function findOnPath(command: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .map((directory) => join(directory, command))
    .find((path) => existsSync(path));
}

const onPath = (command: string) => findOnPath(command) !== undefined;

function debianPackageInstalled(name: string): boolean {
  try {
    return execFileSync('dpkg-query', ['--status', name], { encoding: 'utf8' }).includes(
      'Status: install ok installed',
    );
  } catch {
    return false;
  }
}

/** What is missing to run the bench, each with the Debian package that brings it. */
function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (namespaces and mounts are real here)');
  if (!onPath('cc')) missing.push('a C compiler `cc` (Debian package gcc)');
  else if (
    !existsSync(execFileSync('cc', ['-print-file-name=libc.a'], { encoding: 'utf8' }).trim())
  ) {
    missing.push('the C library for development, for the floor (Debian package libc6-dev)');
  }
  if (!onPath('bwrap')) missing.push('bwrap (Debian package bubblewrap)');
  if (!existsSync('/bin/busybox') || !debianPackageInstalled('busybox-static')) {
    missing.push('a static /bin/busybox (Debian package busybox-static)');
  }
  if (!onPath('rsvg-convert'))
    missing.push('rsvg-convert for the chart (Debian package librsvg2-bin)');
  if (!onPath('unshare') || !onPath('umount')) missing.push('unshare and umount (util-linux)');
  return missing;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function describeLevel(name: string, level: Level): string {
  return `${name.padEnd(18)} c=${String(level.concurrency).padEnd(3)} median ${level.medianMs.toFixed(2)} ms  p99 ${level.p99Ms.toFixed(2)} ms  ${level.throughput.toFixed(0)}/s`;
}

/** Runs a worker job in its own Node process, in a mount namespace of its own (a slave of
 * the host's): the mount-scaling part's mounts, and any mount a runner under test leaves
 * behind, stay out of the host's namespace and vanish with the process. */
async function runWorker<T>(job: Job): Promise<T> {
  const profile =
    settings.cpuProfileDirectory !== null && (job.kind === 'engine' || job.kind === 'serve')
      ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDirectory]
      : [];
  const node = [process.execPath, ...profile, workerScript, JSON.stringify(job)];
  return new Promise((resolve, reject) => {
    execFile(
      'unshare',
      ['--mount', '--propagation', 'slave', ...node],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) resolve(JSON.parse(stdout) as T);
        else reject(new Error(stderr.trim() === '' ? error.message : stderr.trim()));
      },
    );
  });
}

/** The first line of an error, and the first line naming an error beneath it (a child's). */
function reason(error: unknown): string {
  const lines = (error instanceof Error ? error.message : String(error)).split('\n');
  const cause = lines.slice(1).find((line) => /^\w*Error\b/.test(line.trim()));
  return [lines[0], cause?.trim()].filter((line) => line !== undefined).join(': ');
}

function selected(name: string): boolean {
  // Matched as a run of whole items, so that a name with a comma can be selected ("floor, no
  // init" selects "floor" too).
  return settings.only === null || settings.only.includes(`,${commaList(name)},`);
}

/** A contender: what it is, and how to measure one round of it. */
interface Measurement {
  readonly contender: Pick<Contender, 'name' | 'description' | 'rssOf'>;
  /** Why it cannot be measured at all (a part of the project that does not exist yet). */
  readonly missing?: string | null;
  /** Measures `actions` actions at each concurrency. */
  measure(actions: number): Promise<LoadResult>;
}

/** Sums of the engine's timings per concurrency over all rounds. */
function combineTimings(results: readonly LoadResult[]): EngineTimings[] | undefined {
  if (!results.some((result) => result.engineTimings !== undefined)) return undefined;
  return settings.concurrencies.map((concurrency) => {
    const total = { concurrency, actions: 0, setupMs: 0, runMs: 0, teardownMs: 0 };
    for (const timings of results.flatMap((result) => result.engineTimings ?? [])) {
      if (timings.concurrency !== concurrency) continue;
      total.actions += timings.actions;
      total.setupMs += timings.setupMs;
      total.runMs += timings.runMs;
      total.teardownMs += timings.teardownMs;
    }
    return total;
  });
}

/** Measures every contender in interleaved rounds (each round runs each contender at every
 * concurrency), so that a slow spell of a shared machine is spread over all of them; each
 * Level pools its rounds' latencies. A contender that fails is reported as skipped. */
async function measureContenders(measurements: readonly Measurement[]): Promise<Contender[]> {
  const actions = Math.ceil(settings.actions / settings.rounds);
  const results = new Map<string, LoadResult[] | string>();
  for (const { contender, missing } of measurements) {
    const skipped = selected(contender.name) ? missing : 'not selected (BENCH_ONLY)';
    results.set(contender.name, skipped ?? []);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    log(`round ${round} of ${settings.rounds}`);
    for (const { contender, measure } of measurements) {
      const done = results.get(contender.name);
      if (typeof done === 'string' || done === undefined) continue;
      try {
        const result = await measure(actions);
        done.push(result);
        for (const sample of result.samples) log(describeLevel(contender.name, combine([sample])));
      } catch (error) {
        log(`${contender.name}: not measured: ${reason(error)}`);
        results.set(contender.name, reason(error));
      }
    }
  }
  return measurements.map(({ contender }): Contender => {
    const done = results.get(contender.name) ?? 'not measured';
    if (typeof done === 'string') return { ...contender, skipped: done };
    const samples = done.flatMap((result) => result.samples);
    const warnings = [...new Set(done.flatMap((result) => result.warnings ?? []))];
    for (const warning of warnings) log(`${contender.name}: ${warning}`);
    return {
      ...contender,
      levels: settings.concurrencies.map((concurrency) =>
        combine(samples.filter((sample) => sample.concurrency === concurrency)),
      ),
      engineTimings: combineTimings(done),
      warnings,
    };
  });
}

/** Set in the bench's own process once it runs in its mount namespace. */
const namespaceVariable = 'CHROOT_RUNNER_BENCH_NAMESPACE';

async function main(): Promise<void> {
  const missing = missingPrerequisites();
  if (missing.length > 0) {
    log(`npm run bench needs:\n${missing.map((item) => `  - ${item}`).join('\n')}`);
    process.exitCode = 1;
    return;
  }
  if (process.env[namespaceVariable] === undefined) {
    // The whole bench runs in a mount namespace of its own, a slave of the host's: its tmpfs,
    // and whatever a runner under test leaves mounted, go away with it.
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'slave', process.execPath, fileURLToPath(import.meta.url)],
      { stdio: 'inherit', env: { ...process.env, [namespaceVariable]: '1' } },
    );
    const [code] = await once(child, 'exit');
    process.exitCode = code ?? 1;
    return;
  }
  // Imported only now: the helper runs busybox as it loads.
  const { populateBusyboxRoot } = await import('../test/helpers/busybox.js');
  const parent = settings.buildDirectoryParent ?? tmpdir();
  const work = mkdtempSync(join(parent, 'chroot-runner-bench-'));
  const onTmpfs = settings.buildDirectoryParent === null;
  if (onTmpfs)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'chroot-runner-bench', work]);
  try {
    const results = await measureAll(work, populateBusyboxRoot);
    process.stdout.write(markdown(results));
    if (settings.only !== null) {
      log('a partial run (BENCH_ONLY): bench/results/ left as it was');
      return;
    }
    mkdirSync(resultsDirectory, { recursive: true });
    writeFileSync(join(resultsDirectory, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(resultsDirectory, 'latest.md'), markdown(results));
    const svg = join(work, 'latency.svg');
    const { machine } = results;
    const title = `chroot-runner per-action latency — ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}`;
    writeFileSync(svg, latencySvg(results.contenders, title));
    await renderPng(svg, join(resultsDirectory, 'latency.png'));
    log(`wrote ${resultsDirectory}latest.json, latest.md and latency.png`);
  } finally {
    const left = mountsBeneath(work).filter((point) => point !== work);
    if (left.length > 0) {
      log(`mounts left beneath ${work} (gone with the bench's namespace):\n${left.join('\n')}`);
      process.exitCode = 1;
    }
    // Detaching the tmpfs detaches everything beneath it; never recurse into a mounted
    // procfs or /dev on disk.
    if (onTmpfs) execFileSync('umount', ['--lazy', work]);
    if (onTmpfs || left.length === 0) rmSync(work, { recursive: true, force: true });
  }
}

async function measureAll(
  work: string,
  populateBusyboxRoot: (root: string) => void,
): Promise<Results> {
  const buildDirectory = join(work, 'build');
  // One input root per concurrent action, as bb_worker gives each action its own.
  for (let loop = 0; loop < Math.max(...settings.concurrencies); loop++) {
    populateBusyboxRoot(join(buildDirectory, inputRootOf(loop)));
  }
  const root = join(buildDirectory, inputRootOf(0));
  const floor = join(work, 'floor');
  await compileFloor(floor);
  const { warmup, processWarmup, concurrencies } = settings;
  const logs = join(buildDirectory, 'logs');
  mkdirSync(logs);
  const floorRounds = (direct: boolean) => async (actions: number) => {
    const samples: Sample[] = [];
    for (const concurrency of concurrencies) {
      await runFloor(floor, root, logs, warmup, concurrency, direct);
      samples.push(await runFloor(floor, root, logs, actions, concurrency, direct));
    }
    return { samples };
  };
  const bwrapArguments = [
    ...['--bind', root, '/', '--proc', '/proc', '--dev', '/dev'],
    ...['--unshare-pid', '--unshare-ipc', '--unshare-uts', '/bin/true'],
  ];
  const engine = await loadEngine();
  const engineMissing = typeof engine === 'string' ? engine : null;
  const serveAbsent = serveMissing();
  const serverNodeArguments =
    settings.cpuProfileDirectory === null
      ? []
      : ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDirectory];

  const contenders = await measureContenders([
    {
      contender: {
        name: 'floor',
        description:
          'bench/floor.c: the engine’s namespaces-mode steps in C (log files, clone(CLONE_VM|CLONE_VFORK) into new PID, IPC, UTS namespaces, a copy of an empty mount namespace with the input root attached, proc, sys, /dev mounts and nodes, pivot_root, caps, the engine’s own init (native/init.c) as PID 1, which forks and execs true, wait4); N C threads',
        rssOf: 'the C program',
      },
      measure: floorRounds(false),
    },
    {
      contender: {
        name: 'floor, no init',
        description:
          'as floor, but /bin/true is exec’d as PID 1 instead of the init: what the init (its exec and its fork) costs',
        rssOf: 'the C program',
      },
      measure: floorRounds(true),
    },
    {
      contender: {
        name: 'bwrap',
        description: `\`bwrap ${bwrapArguments.join(' ').replace(root, 'ROOT')}\`, launched from C (posix_spawn, N threads) so Node’s spawn is not counted`,
        rssOf: 'one bwrap process (the largest)',
      },
      async measure(actions) {
        const argv = [findOnPath('bwrap') as string, ...bwrapArguments];
        const samples: Sample[] = [];
        for (const concurrency of concurrencies) {
          await runExec(floor, argv, warmup, concurrency);
          samples.push(await runExec(floor, argv, actions, concurrency));
        }
        return { samples };
      },
    },
    {
      contender: {
        name: 'node-spawn',
        description: 'child_process.spawn of ROOT/bin/true from Node, no isolation',
        rssOf: 'the Node process',
      },
      measure: (actions) =>
        runWorker({
          kind: 'node-spawn',
          root,
          ballastMegabytes: 0,
          actions,
          warmup,
          processWarmup,
          concurrencies,
        }),
    },
    ...(['namespaces', 'shared'] as const).map(
      (isolation): Measurement => ({
        contender: {
          name: `engine ${isolation}`,
          description: `Engine.run() of the TypeScript API, isolation \`${isolation}\`, true with /proc, /sys, /dev; N concurrent calls in one Node process`,
          rssOf: 'the Node process running the engine',
        },
        missing: engineMissing,
        measure: (actions) =>
          runWorker({
            kind: 'engine',
            buildDirectory,
            isolation,
            ballastMegabytes: 0,
            actions,
            warmup,
            processWarmup,
            concurrencies,
          }),
      }),
    ),
    ...(
      [
        ['serve namespaces', 'namespaces', 'http2'],
        ['serve shared', 'shared', 'http2'],
        ['serve namespaces (grpc-js client)', 'namespaces', 'grpc-js'],
      ] as const
    ).map(
      ([name, isolation, client]): Measurement => ({
        contender: {
          name,
          description: `\`chroot-runner serve --isolation ${isolation}\` as its own process; Run over its unix socket from ${client === 'http2' ? 'a minimal gRPC client on node:http2 (bench/http2-client.ts, standing in for bb_worker’s Go client)' : 'a @grpc/grpc-js client'} in another process, N calls in flight`,
          rssOf: 'the serve process (VmHWM)',
        },
        missing: serveAbsent,
        measure: (actions) =>
          runWorker({
            kind: 'serve',
            workDirectory: work,
            buildDirectory,
            isolation,
            serverNodeArguments,
            client,
            actions,
            warmup,
            processWarmup,
            concurrencies,
          }),
      }),
    ),
  ]);

  let mountScaling: Results['mountScaling'] = { skipped: 'not selected (BENCH_ONLY)' };
  if (selected('mount scaling'))
    mountScaling = await measureMountScaling(work, floor, buildDirectory);
  const heapScaling = selected('heap scaling')
    ? await measureHeapScaling(root, buildDirectory, engineMissing)
    : { skipped: 'not selected (BENCH_ONLY)' };
  const ratioValues = ratios(contenders, heapScaling);
  return {
    date: new Date().toISOString(),
    machine: {
      kernel: release(),
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      cores: cpus().length,
      memoryBytes: totalmem(),
      node: process.version,
    },
    settings,
    contenders,
    mountScaling,
    heapScaling,
    ratios: ratioValues,
    targets: targets(ratioValues),
  };
}

/** One action's latency (concurrency 1) with 0, 100 and 1000 unrelated mounts in the
 * runner's mount namespace: the worker's own namespace, so the host never sees them. */
async function measureMountScaling(
  work: string,
  floor: string,
  buildDirectory: string,
): Promise<Results['mountScaling']> {
  log('mount scaling (in a mount namespace of its own)');
  try {
    const scratch = join(work, 'mounts');
    mkdirSync(scratch);
    const result = await runWorker<MountScalingResult>({
      kind: 'mounts',
      floor,
      buildDirectory,
      scratch,
      mountCounts: settings.mountCounts,
      actions: Math.ceil(settings.scalingActions / settings.scalingRounds),
      warmup: settings.warmup,
      rounds: settings.scalingRounds,
    });
    for (const row of result.rows) log(`  ${row.mounts} mounts: ${JSON.stringify(row.medianMs)}`);
    return result;
  } catch (error) {
    log(`mount scaling not measured: ${reason(error)}`);
    return { skipped: reason(error) };
  }
}

/** One action's latency (concurrency 1) with 50 and 500 MB of live objects in the heap of
 * the process that launches it, in interleaved rounds (a process per point and round). */
async function measureHeapScaling(
  root: string,
  buildDirectory: string,
  engineMissing: string | null,
): Promise<HeapScalingRow[]> {
  log('heap scaling');
  const load = {
    actions: Math.ceil(settings.scalingActions / settings.scalingRounds),
    warmup: settings.warmup,
    // At concurrency 1 a long warm-up would take minutes; the two heaps' points get the same.
    processWarmup: settings.warmup,
    concurrencies: [1],
  };
  const jobs = (ballastMegabytes: number): [string, Job][] => [
    ['node-spawn', { kind: 'node-spawn', root, ballastMegabytes, ...load }],
    [
      'engine namespaces',
      { kind: 'engine', buildDirectory, isolation: 'namespaces', ballastMegabytes, ...load },
    ],
  ];
  const samples = new Map<string, number[] | string>();
  for (let round = 0; round < settings.scalingRounds; round++) {
    for (const heapMegabytes of settings.heapMegabytes) {
      for (const [name, job] of jobs(heapMegabytes)) {
        const key = `${heapMegabytes} ${name}`;
        const previous = samples.get(key) ?? [];
        if (typeof previous === 'string') continue;
        if (name === 'engine namespaces' && engineMissing !== null) {
          samples.set(key, engineMissing);
          continue;
        }
        try {
          const result = await runWorker<LoadResult>(job);
          samples.set(key, [...previous, median((result.samples[0] as Sample).latenciesMs)]);
        } catch (error) {
          samples.set(key, reason(error));
        }
      }
    }
  }
  return settings.heapMegabytes.map((heapMegabytes) => {
    const medianMs: Record<string, number | string> = {};
    for (const [name] of jobs(heapMegabytes)) {
      const values = samples.get(`${heapMegabytes} ${name}`) ?? 'not measured';
      medianMs[name] = typeof values === 'string' ? values : median(values);
    }
    log(`  ${heapMegabytes} MB: ${JSON.stringify(medianMs)}`);
    return { heapMegabytes, medianMs };
  });
}

await main();
