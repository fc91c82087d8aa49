// Prometheus metrics of the runner, served on /metrics by the diagnostics HTTP server.
import { realpathSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { listMounts } from '../mounts/index.js';
import { actionCgroupUsage } from '../sandbox/index.js';
import type { ActionResult } from '../sandbox/types.js';
import { GrpcServerMetrics } from './grpc-metrics.js';

/** Seconds, from 1 ms to about 1 h. */
const durationBuckets = [
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];

/** How an action ended: it ran and exited 0, exited otherwise, or was killed by a signal; or it
 * did not run or finish, by the gRPC code it was answered with (INVALID_ARGUMENT, CANCELLED,
 * DEADLINE_EXCEEDED, UNAVAILABLE, INTERNAL, ...). */
export type ActionOutcome = RanOutcome | keyof typeof status;

export type RanOutcome = 'succeeded' | 'failed' | 'signalled';
const ranOutcomes: readonly RanOutcome[] = ['succeeded', 'failed', 'signalled'];
const phases = ['setup', 'run', 'teardown'] as const;
type PhaseDurations = Record<(typeof phases)[number], Histogram.Internal<'phase' | 'outcome'>>;

export class RunnerMetrics {
  readonly registry = new Registry();
  readonly grpc = new GrpcServerMetrics(this.registry);
  readonly #actionsTotal: Counter<'outcome'>;
  /** Bound once: labelling a metric on each action hashes its labels every time. */
  readonly #actions = new Map<ActionOutcome, Counter.Internal>();
  readonly #phases: Record<RanOutcome, PhaseDurations>;
  readonly #inFlight: Gauge;
  readonly #atLimit: Record<'oom_kill' | 'pids', Counter.Internal>;
  readonly #memoryPeak: Histogram;

  constructor(buildDirectoryPath: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#actionsTotal = new Counter({
      name: 'chroot_runner_actions_total',
      help: 'Actions, by outcome: succeeded (exit 0), failed (other exit codes), signalled, or the gRPC code of a Run that did not run or finish its action (INVALID_ARGUMENT, CANCELLED, INTERNAL, ...)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ranOutcomes) this.#actionCounter(outcome);
    const durations = new Histogram({
      name: 'chroot_runner_action_duration_seconds',
      help: 'Time spent per action that ran, in each phase (setup, run, teardown), by outcome',
      labelNames: ['phase', 'outcome'],
      buckets: durationBuckets,
      registers,
    });
    const byPhase = (outcome: RanOutcome) =>
      Object.fromEntries(phases.map((phase) => [phase, durations.labels({ phase, outcome })]));
    this.#phases = Object.fromEntries(
      ranOutcomes.map((outcome) => [outcome, byPhase(outcome)]),
    ) as Record<RanOutcome, PhaseDurations>;
    this.#inFlight = new Gauge({
      name: 'chroot_runner_actions_in_flight',
      help: 'Actions running now',
      registers,
    });
    const atLimit = new Counter({
      name: 'chroot_runner_actions_at_limit_total',
      help: 'Actions with a cgroup that reached a limit: oom_kill (the OOM killer killed a process of the action at its memory limit), pids (a fork refused at pids.max)',
      labelNames: ['limit'],
      registers,
    });
    this.#atLimit = {
      oom_kill: atLimit.labels({ limit: 'oom_kill' }),
      pids: atLimit.labels({ limit: 'pids' }),
    };
    for (const counter of Object.values(this.#atLimit)) counter.inc(0);
    this.#memoryPeak = new Histogram({
      name: 'chroot_runner_action_memory_peak_bytes',
      help: "Most memory an action's cgroup was charged at once (page cache and tmpfs included)",
      // 1 MiB to 64 GiB, by powers of 4.
      buckets: Array.from({ length: 9 }, (_, power) => 2 ** (20 + 2 * power)),
      registers,
    });
    // The runner's own mount namespace: the mounts of `shared` actions; namespaces mode mounts
    // in each action's namespace, which the kernel removes with the action.
    new Gauge({
      name: 'chroot_runner_mounts_attached',
      help: 'Mounts attached beneath the build directory in the runner’s mount namespace',
      registers,
      collect() {
        // Resolved at each scrape: the build directory may be mounted over, or not exist yet.
        let directory: string;
        try {
          directory = realpathSync.native(buildDirectoryPath);
        } catch {
          this.set(0);
          return;
        }
        this.set(listMounts(directory).filter((mount) => mount.mountPoint !== directory).length);
      },
    });
  }

  actionStarted(): void {
    this.#inFlight.inc();
  }

  #actionCounter(outcome: ActionOutcome): Counter.Internal {
    let counter = this.#actions.get(outcome);
    if (counter === undefined) {
      counter = this.#actionsTotal.labels({ outcome });
      counter.inc(0);
      this.#actions.set(outcome, counter);
    }
    return counter;
  }

  /** An action that ran to its end; `result` is the engine's, when the response came from it. */
  actionRan(outcome: RanOutcome, result: ActionResult | undefined): void {
    this.#inFlight.dec();
    this.#actionCounter(outcome).inc();
    if (result === undefined) return;
    const durations = this.#phases[outcome];
    for (const phase of phases) durations[phase].observe(result.timings[phase] / 1000);
    const usage = actionCgroupUsage(result);
    if (usage === undefined) return;
    this.#memoryPeak.observe(usage.memoryPeakBytes);
    if (usage.oomKilled) this.#atLimit.oom_kill.inc();
    if (usage.pidsLimitHits > 0) this.#atLimit.pids.inc();
  }

  /** A Run answered with an error: the action did not run, or did not finish. */
  actionFailed(code: status): void {
    this.#inFlight.dec();
    this.#actionCounter((status[code] ?? 'UNKNOWN') as keyof typeof status).inc();
  }
}
