// `npm run bench`: the per-action cost of chroot-runner next to the kernel's floor and the
// peers operators compare it with (upstream bb_runner, Bazel's linux-sandbox, a hardened
// bubblewrap) and a bare Node spawn, on the same static busybox input root (issues 7 and 16).
// Writes bench/results/latest.json, latest.md and latency.png. Needs root; installs the
// Debian packages it needs and builds bb_runner (bench/peers.ts).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CgroupsUnavailable, type CgroupTree, openCgroupTree } from '../src/cgroups/index.js';
import { mountsBeneath } from '../test/helpers/leaks.js';
import { latencySvg, renderPng } from './chart.js';
import { inputRootOf, loadEngine } from './engine.js';
import type { FloorPhases } from './floor.js';
import { compileFloor, floorOptions, runExec, runFloor } from './floor.js';
import { combine, type Level, median, type Sample } from './load.js';
import {
  bbRunnerExecutable,
  findOnPath,
  hardenedBwrapArguments,
  installDebianPackages,
  linuxSandboxArguments,
  linuxSandboxPath,
} from './peers.js';
import {
  type Contender,
  type HeapScalingRow,
  markdown,
  type Results,
  ratios,
  replaceMarkedSection,
  targets,
} from './report.js';
import { serveMissing } from './serve.js';
import { measureStartup } from './startup.js';
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

/** BENCH_SHORT=1: every contender and part, with fewer actions (the defaults below after
 * the `short ?`), for a whole run in minutes rather than most of an hour; each BENCH_
 * variable still overrides its own. */
const short = process.env.BENCH_SHORT === '1';

const settings = {
  short,
  /** Measured actions per contender and concurrency, over all rounds. */
  actions: count('BENCH_ACTIONS', short ? 300 : 1000),
  /** Interleaved rounds of the contenders; each Level pools its rounds' latencies. */
  rounds: count('BENCH_ROUNDS', short ? 2 : 3),
  /** Unmeasured actions before each measurement. */
  warmup: count('BENCH_WARMUP', short ? 20 : 50),
  /** Unmeasured actions each Node runner's process runs once, before any measurement. */
  processWarmup: count('BENCH_PROCESS_WARMUP', short ? 500 : 2000),
  /** Measured actions per point of the mount and heap scaling parts, over all rounds. */
  scalingActions: count('BENCH_SCALING_ACTIONS', short ? 120 : 600),
  /** Interleaved rounds of the scaling parts: each point is the median of its rounds'. */
  scalingRounds: count('BENCH_SCALING_ROUNDS', short ? 2 : 3),
  concurrencies: (process.env.BENCH_CONCURRENCY ?? '1,12,64').split(',').map(Number),
  mountCounts: [0, 100, 1000],
  /** Runs of each command of the start-up part. */
  startupRuns: count('BENCH_STARTUP_RUNS', short ? 20 : 50),
  /** Sandboxes in the pool of the warm floor. */
  warmPool: count('BENCH_WARM_POOL', 4),
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
const readme = fileURLToPath(new URL('../../README.md', import.meta.url));
const performanceDocument = fileURLToPath(new URL('../../docs/performance.md', import.meta.url));
const biome = fileURLToPath(new URL('../../node_modules/.bin/biome', import.meta.url));
const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));

const onPath = (command: string) => findOnPath(command) !== undefined;

/** The Debian packages the bench needs: the floor's compiler and C library, the input root's
 * busybox, the chart's renderer, two of the peers, the start-up part's hyperfine. */
const debianPackages = [
  'gcc',
  'libc6-dev',
  'busybox-static',
  'librsvg2-bin',
  'bubblewrap',
  'bazel-bootstrap',
  'hyperfine',
];

/** Installs what is missing, then names what the bench cannot run without. A missing peer is
 * not among them: it is reported as skipped. */
async function missingPrerequisites(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['root (namespaces and mounts are real here)'];
  await installDebianPackages(debianPackages, log);
  const missing: string[] = [];
  if (!onPath('cc')) missing.push('a C compiler `cc` (Debian package gcc)');
  else if (
    !existsSync(execFileSync('cc', ['-print-file-name=libc.a'], { encoding: 'utf8' }).trim())
  ) {
    missing.push('the C library for development, for the floor (Debian package libc6-dev)');
  }
  if (!existsSync('/bin/busybox')) {
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

/** The floor's phases per concurrency over all rounds, each the mean over their actions. */
function combinePhases(results: readonly LoadResult[]): FloorPhases[] | undefined {
  const all = results.flatMap((result) => result.floorPhases ?? []);
  if (all.length === 0) return undefined;
  return settings.concurrencies.map((concurrency) => {
    const rounds = all.filter((phases) => phases.concurrency === concurrency);
    const actions = rounds.reduce((total, phases) => total + phases.actions, 0);
    const mean = (value: (phases: FloorPhases) => number) =>
      rounds.reduce((total, phases) => total + value(phases) * phases.actions, 0) / actions;
    const names = Object.keys(rounds[0]?.phasesMicroseconds ?? {});
    return {
      concurrency,
      actions,
      phasesMicroseconds: Object.fromEntries(
        names.map((name) => [name, mean((phases) => phases.phasesMicroseconds[name] ?? 0)]),
      ),
      cpuMicroseconds: mean((phases) => phases.cpuMicroseconds),
    };
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
      floorPhases: combinePhases(done),
      warnings,
    };
  });
}

/** Set in the bench's own process once it runs in its mount namespace. */
const namespaceVariable = 'CHROOT_RUNNER_BENCH_NAMESPACE';

async function main(): Promise<void> {
  if (process.env[namespaceVariable] === undefined) {
    const missing = await missingPrerequisites();
    if (missing.length > 0) {
      log(`npm run bench needs:\n${missing.map((item) => `  - ${item}`).join('\n')}`);
      process.exitCode = 1;
      return;
    }
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
    // The README's table and docs/performance.md's figures, between their bench markers.
    for (const [document, content] of [
      [readme, markdown(results, { summary: true })],
      [performanceDocument, markdown(results)],
    ] as const) {
      writeFileSync(document, replaceMarkedSection(readFileSync(document, 'utf8'), content));
    }
    // Aligned as the linter wants Markdown tables.
    execFileSync(biome, ['format', '--write', readme, performanceDocument], { stdio: 'ignore' });
    log(
      `wrote ${resultsDirectory}latest.json, latest.md, latency.png, README.md and docs/performance.md`,
    );
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
  const floorRounds = (options: readonly string[]) => async (actions: number) => {
    const samples: Sample[] = [];
    const floorPhases: FloorPhases[] = [];
    for (const concurrency of concurrencies) {
      await runFloor(floor, root, logs, warmup, concurrency, options);
      const { sample, phases } = await runFloor(floor, root, logs, actions, concurrency, options);
      samples.push(sample);
      floorPhases.push(phases);
    }
    return { samples, floorPhases };
  };
  const execRounds = (argv: readonly string[], fd3?: string) => async (actions: number) => {
    const samples: Sample[] = [];
    for (const concurrency of concurrencies) {
      await runExec(floor, argv, warmup, concurrency, fd3);
      samples.push(await runExec(floor, argv, actions, concurrency, fd3));
    }
    return { samples };
  };
  // The floor's cgroups, where serve's default (cgroups.mode auto) would make its actions'.
  const floorCgroups = openFloorCgroups();
  const seccompFile = join(work, 'seccomp.bpf');
  const isolation = floorOptions(seccompFile, floorCgroups?.directories ?? []);
  // bwrap loads the same filter from its fd 3 (--seccomp 3), where the default has one.
  const bwrapSeccomp = existsSync(seccompFile) ? seccompFile : undefined;
  const bwrapArguments = hardenedBwrapArguments(root, bwrapSeccomp === undefined ? undefined : 3);
  const described = (options: readonly string[]) =>
    options.length === 0
      ? 'no option'
      : `options ${[...new Set(options.map((option) => option.replace(/=.*/s, '')))].join(' ')}`;
  const engine = await loadEngine();
  const engineMissing = typeof engine === 'string' ? engine : null;
  const serveAbsent = serveMissing();
  const serverNodeArguments =
    settings.cpuProfileDirectory === null
      ? []
      : ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDirectory];
  let bbRunner: string | { missing: string } = { missing: 'not selected (BENCH_ONLY)' };
  if (selected('bb_runner')) {
    bbRunner = await bbRunnerExecutable(log).catch((error) => ({ missing: reason(error) }));
  }
  const bwrap = findOnPath('bwrap');
  const relative = (argv: readonly string[]) => argv.join(' ').replaceAll(root, 'ROOT');

  const contenders = await measureContenders([
    {
      contender: {
        name: 'floor',
        description: `bench/floor.c (${described(isolation)}): the kernel work of serve’s default isolation, step for step, in C: log files, ${floorCgroups === undefined ? '' : 'a cgroup of its own on each hierarchy (made, joined, listed, removed; no limits written), '}clone(CLONE_VM) into new PID, IPC, UTS and network namespaces, a new session, loopback up, a copy of an empty mount namespace with the input root attached, proc, sys, /dev mounts and nodes, pivot_root, then a user namespace of its own whose id maps the parent writes while the child waits (no CLONE_VFORK then, as the engine), caps, uid 0 inside, the keyring where seccomp allows keys, the seccomp filter, the engine’s own init (native/init.c) as PID 1, which forks and execs true, wait4; N C threads`,
        rssOf: 'the C program',
      },
      measure: floorRounds(isolation),
    },
    {
      contender: {
        name: 'floor, no init',
        description:
          'as floor, but /bin/true is exec’d as PID 1 instead of the init: what the init (its exec and its fork) costs',
        rssOf: 'the C program',
      },
      measure: floorRounds([...isolation, 'direct']),
    },
    {
      contender: {
        name: 'floor, warm',
        description: `as floor, from a pool of ${settings.warmPool} warm sandboxes (floor.c’s warm option): each prepared ahead by a thread of its own (namespaces, mount namespace, proc, sys, /dev on a staging tmpfs, cgroups joined) and used once; an action attaches its input root, moves the prepared mounts in, pivots and execs. An action that finds the pool empty prepares its own`,
        rssOf: 'the C program',
      },
      measure: floorRounds([...isolation, `warm=${settings.warmPool}`]),
    },
    {
      contender: {
        name: 'bb_runner',
        description:
          'upstream bb_runner (bb-remote-execution at the version test/buildbarn/go pins), chrootIntoInputRoot: it execs `/usr/bin/env -- /bin/true` chrooted into the input root, no namespaces, no mounts; Run over its unix socket from the serve contender’s client (bench/http2-client.ts) in another process, N calls in flight',
        rssOf: 'the bb_runner process (VmHWM)',
      },
      missing: typeof bbRunner === 'string' ? null : bbRunner.missing,
      measure: (actions) =>
        runWorker({
          kind: 'serve',
          workDirectory: work,
          buildDirectory,
          server: { kind: 'bb_runner', executable: bbRunner as string },
          client: 'http2',
          actions,
          warmup,
          processWarmup,
          concurrencies,
        }),
    },
    {
      contender: {
        name: 'bwrap',
        description: `\`bwrap ${relative(bwrapArguments)}\` (hardened as our default isolation, as far as bwrap goes${bwrapSeccomp === undefined ? '' : '; fd 3 is our default’s seccomp filter, opened for each bwrap, which loads it without SECCOMP_FILTER_FLAG_SPEC_ALLOW: the kernel forces speculation mitigations on it'}), launched from C (posix_spawn, N threads) so that no runner’s spawn is counted`,
        rssOf: 'one bwrap process (the largest)',
      },
      missing: bwrap === undefined ? 'bwrap is not installed (Debian package bubblewrap)' : null,
      measure: execRounds([bwrap as string, ...bwrapArguments], bwrapSeccomp),
    },
    {
      contender: {
        name: 'linux-sandbox',
        description: `Bazel’s linux-sandbox (Debian’s bazel-bootstrap): \`linux-sandbox ${relative(linuxSandboxArguments(root))}\`, launched from C as bwrap is`,
        rssOf: 'one linux-sandbox process (the largest)',
      },
      missing: existsSync(linuxSandboxPath)
        ? null
        : `${linuxSandboxPath} is not there (Debian package bazel-bootstrap)`,
      measure: execRounds([linuxSandboxPath, ...linuxSandboxArguments(root)]),
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
            server: { kind: 'serve', isolation, nodeArguments: serverNodeArguments },
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
    mountScaling = await measureMountScaling(work, floor, isolation, buildDirectory);
  let startup: Results['startup'] = { skipped: 'not selected (BENCH_ONLY)' };
  if (selected('start-up')) {
    log('start-up (hyperfine)');
    startup = await measureStartup(root, work, settings.startupRuns).catch((error) => ({
      skipped: reason(error),
    }));
  }
  const heapScaling = selected('heap scaling')
    ? await measureHeapScaling(root, buildDirectory, engineMissing)
    : { skipped: 'not selected (BENCH_ONLY)' };
  floorCgroups?.close();
  const ratioValues = ratios(contenders, heapScaling, mountScaling, startup);
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
    startup,
    ratios: ratioValues,
    targets: targets(ratioValues),
  };
}

/** A cgroup tree as serve opens one by default, or undefined where serve's actions would
 * get no cgroup either. */
function openFloorCgroups(): CgroupTree | undefined {
  try {
    return openCgroupTree({ scope: `chroot-runner-bench-floor-${process.pid}`, version: 'auto' });
  } catch (error) {
    if (error instanceof CgroupsUnavailable) return undefined;
    throw error;
  }
}

/** One action's latency (concurrency 1) with 0, 100 and 1000 unrelated mounts in the
 * runner's mount namespace: the worker's own namespace, so the host never sees them. */
async function measureMountScaling(
  work: string,
  floor: string,
  isolation: string[],
  buildDirectory: string,
): Promise<Results['mountScaling']> {
  log('mount scaling (in a mount namespace of its own)');
  try {
    const scratch = join(work, 'mounts');
    mkdirSync(scratch);
    const result = await runWorker<MountScalingResult>({
      kind: 'mounts',
      floor,
      floorOptions: isolation,
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
