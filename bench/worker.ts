// One measurement in its own Node process, so that each runner's peak RSS and heap are its
// own: `node dist/bench/worker.js '<job as JSON>'` prints its result as JSON on stdout.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Engine as SandboxEngine } from '../src/sandbox/index.js';
import type { IsolationMode } from '../src/sandbox/types.js';
import { mountsBeneath } from '../test/helpers/leaks.js';
import { inputRootOf, loadEngine, openEngine, trueAction } from './engine.js';
import { type FloorPhases, makeMounts, runFloor } from './floor.js';
import {
  type Action,
  closedLoop,
  cpuTime,
  median,
  peakRss,
  resetPeakRss,
  type Sample,
} from './load.js';
import { type RunnerServer, type ServeClient, startServe } from './serve.js';

export interface LoadJob {
  readonly actions: number;
  /** Unmeasured actions run first at each concurrency. */
  readonly warmup: number;
  /** Unmeasured actions the process runs once before anything is measured, at its highest
   * concurrency: a runner is a long-running process, and V8 optimises the code of each action's
   * path only after thousands of calls. */
  readonly processWarmup: number;
  readonly concurrencies: readonly number[];
}

export type Job =
  | (LoadJob & { kind: 'node-spawn'; root: string; ballastMegabytes: number })
  | (LoadJob & {
      kind: 'engine';
      buildDirectory: string;
      isolation: IsolationMode;
      ballastMegabytes: number;
    })
  | (LoadJob & {
      kind: 'serve';
      workDirectory: string;
      buildDirectory: string;
      server: RunnerServer;
      client: ServeClient;
    })
  | {
      kind: 'mounts';
      floor: string;
      /** floor.c's options of the default isolation (floorOptions). */
      floorOptions: string[];
      buildDirectory: string;
      scratch: string;
      mountCounts: readonly number[];
      /** Measured actions per point and round. */
      actions: number;
      warmup: number;
      rounds: number;
    };

/** The engine's own split of its actions' time at one concurrency, summed over `actions`. */
export interface EngineTimings {
  readonly concurrency: number;
  readonly actions: number;
  readonly setupMs: number;
  readonly runMs: number;
  readonly teardownMs: number;
}

export interface LoadResult {
  readonly samples: Sample[];
  readonly engineTimings?: EngineTimings[];
  /** The floor's phases, per concurrency. */
  readonly floorPhases?: FloorPhases[];
  /** Something wrong seen during the run (e.g. mounts left behind). */
  readonly warnings?: string[];
}

/** One action's median latency at concurrency 1 per contender, by number of extra mounts. */
export interface MountScalingResult {
  readonly rows: { mounts: number; medianMs: Record<string, number | string> }[];
}

/** Live objects held for the whole run, so that the heap (and what a fork copies) is large. */
const ballast: object[] = [];

function holdLiveObjects(megabytes: number): void {
  const target = process.memoryUsage().heapUsed + megabytes * 1024 * 1024;
  while (process.memoryUsage().heapUsed < target) {
    for (let i = 0; i < 10_000; i++) {
      ballast.push({ index: i, label: `object ${i}`, values: [i, i + 1, i + 2, i + 3] });
    }
  }
}

type Phase = 'warmup' | 'measure';

/** Runs each concurrency in turn: warm-up, reset of the peak RSS, measured actions. `action`
 * makes the actions of one phase at one concurrency; `runnerPid` is the process whose peak
 * RSS and CPU time are the runner's. */
async function measure(
  job: LoadJob,
  action: (phase: Phase, concurrency: number) => { run: Action; done(): void },
  runnerPid: number | 'self',
): Promise<Sample[]> {
  const results: Sample[] = [];
  const highest = Math.max(...job.concurrencies);
  const first = action('warmup', highest);
  await closedLoop(job.processWarmup, highest, first.run);
  first.done();
  for (const concurrency of job.concurrencies) {
    const warm = action('warmup', concurrency);
    await closedLoop(job.warmup, concurrency, warm.run);
    warm.done();
    const measured = action('measure', concurrency);
    resetPeakRss(runnerPid);
    const cpuBefore = cpuTime(runnerPid);
    const { latenciesMs, wallSeconds } = await closedLoop(job.actions, concurrency, measured.run);
    const cpuMs = cpuTime(runnerPid) - cpuBefore;
    results.push({
      concurrency,
      latenciesMs,
      wallSeconds,
      peakRssBytes: peakRss(runnerPid),
      cpuMs,
    });
    measured.done();
  }
  return results;
}

function nodeSpawnAction(root: string): Action {
  const executable = join(root, 'bin/true');
  return async () => {
    const child = spawn(executable, [], { stdio: 'ignore', env: { PATH: '/bin' } });
    const [code] = await once(child, 'exit');
    if (code !== 0) throw new Error(`${executable} exited with ${code}`);
  };
}

async function measureEngine(job: Extract<Job, { kind: 'engine' }>): Promise<LoadResult> {
  const module = await loadEngine();
  if (typeof module === 'string') throw new Error(module);
  await using engine = await openEngine(module, job.buildDirectory, job.isolation);
  const engineTimings: EngineTimings[] = [];
  let round = 0;
  const samples = await measure(
    job,
    (phase, concurrency) => {
      const logs = `logs/engine-${job.isolation}-${round++}`;
      const sums = { concurrency, actions: 0, setupMs: 0, runMs: 0, teardownMs: 0 };
      const run = trueAction(engine, job.buildDirectory, logs, (timings) => {
        sums.actions++;
        sums.setupMs += timings.setup;
        sums.runMs += timings.run;
        sums.teardownMs += timings.teardown;
      });
      return {
        run,
        done() {
          rmSync(join(job.buildDirectory, logs), { recursive: true, force: true });
          if (phase === 'measure') engineTimings.push(sums);
        },
      };
    },
    'self',
  );
  return { samples, engineTimings };
}

async function measureServe(job: Extract<Job, { kind: 'serve' }>): Promise<LoadResult> {
  const server = await startServe(job.workDirectory, job.buildDirectory, job.server, job.client);
  const name = job.server.kind === 'serve' ? `serve-${job.server.isolation}` : 'bb_runner';
  try {
    let round = 0;
    const samples = await measure(
      job,
      () => {
        const logs = `logs/${name}-${job.client}-${round++}`;
        return {
          run: server.action(logs),
          done: () => rmSync(join(job.buildDirectory, logs), { recursive: true, force: true }),
        };
      },
      server.pid,
    );
    return { samples };
  } finally {
    await server.stop();
  }
}

/** Runs in a mount namespace of its own (runWorker's): the extra mounts are made there, are
 * unmounted after each point, and would vanish with the namespace anyway. The counts are
 * measured in `rounds` interleaved rounds, so that a slow spell of a shared machine does not
 * land on one count only; each figure is the median of its rounds' medians. */
async function measureMountScaling(
  job: Extract<Job, { kind: 'mounts' }>,
): Promise<MountScalingResult> {
  const module = await loadEngine();
  const root = join(job.buildDirectory, inputRootOf(0));
  const logs = join(job.buildDirectory, 'logs');
  const samples = new Map<number, Map<string, number[]>>(
    job.mountCounts.map((mounts) => [mounts, new Map()]),
  );
  const record = (mounts: number, name: string, medianMs: number) => {
    const byName = samples.get(mounts) as Map<string, number[]>;
    byName.set(name, [...(byName.get(name) ?? []), medianMs]);
  };
  const isolations = ['namespaces', 'shared'] as const;
  const engines =
    typeof module === 'string'
      ? module
      : await Promise.all(
          isolations.map((isolation) => openEngine(module, job.buildDirectory, isolation)),
        );
  await using _closeEngines = {
    [Symbol.asyncDispose]: async () => {
      if (typeof engines !== 'string') await Promise.all(engines.map((engine) => engine.close()));
    },
  };
  for (let round = 0; round < job.rounds; round++) {
    for (const mounts of job.mountCounts) {
      await makeMounts(job.floor, job.scratch, mounts);
      try {
        await runFloor(job.floor, root, logs, job.warmup, 1, job.floorOptions);
        const floor = await runFloor(job.floor, root, logs, job.actions, 1, job.floorOptions);
        record(mounts, 'floor', median(floor.sample.latenciesMs));
        if (typeof engines === 'string') continue;
        for (const [index, isolation] of isolations.entries()) {
          const directory = `logs/mounts-${round}-${mounts}-${isolation}`;
          const run = trueAction(
            engines[index] as SandboxEngine,
            job.buildDirectory,
            directory,
            () => {},
          );
          await closedLoop(job.warmup, 1, (index, loop) => run(job.actions + index, loop));
          const { latenciesMs } = await closedLoop(job.actions, 1, run);
          record(mounts, `engine ${isolation}`, median(latenciesMs));
          rmSync(join(job.buildDirectory, directory), { recursive: true, force: true });
        }
      } finally {
        await promisify(execFile)('umount', ['--lazy', job.scratch]);
      }
    }
  }
  const names = ['floor', 'engine namespaces', 'engine shared'];
  return {
    rows: job.mountCounts.map((mounts) => ({
      mounts,
      medianMs: Object.fromEntries(
        names.map((name) => {
          const medians = samples.get(mounts)?.get(name);
          return [name, medians === undefined ? String(engines) : median(medians)];
        }),
      ),
    })),
  };
}

/** Adds a warning when the runner left mounts beneath the build directory. The parent runs
 * this process in a mount namespace of its own, so that they vanish with it. */
function withLeftMounts(buildDirectory: string, result: LoadResult): LoadResult {
  const left = mountsBeneath(buildDirectory);
  if (left.length === 0) return result;
  const warning = `${left.length} mounts left beneath the build directory after the run, e.g. ${left[0]}`;
  return { ...result, warnings: [...(result.warnings ?? []), warning] };
}

async function main(job: Job): Promise<LoadResult | MountScalingResult> {
  switch (job.kind) {
    case 'node-spawn': {
      holdLiveObjects(job.ballastMegabytes);
      const action = nodeSpawnAction(job.root);
      return { samples: await measure(job, () => ({ run: action, done() {} }), 'self') };
    }
    case 'engine':
      holdLiveObjects(job.ballastMegabytes);
      return withLeftMounts(job.buildDirectory, await measureEngine(job));
    case 'serve':
      return withLeftMounts(job.buildDirectory, await measureServe(job));
    case 'mounts':
      return measureMountScaling(job);
  }
}

try {
  const result = await main(JSON.parse(process.argv[2] as string) as Job);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (error) {
  // One readable reason for the report; the parent shows it instead of a stack.
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
