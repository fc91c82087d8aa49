// Prometheus metrics of the runner, served on /metrics by the diagnostics HTTP server.
import { realpathSync } from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { listMounts } from '../mounts/index.js';
import type { ActionResult } from '../sandbox/types.js';

/** Seconds, from 1 ms to about 1 h. */
const durationBuckets = [
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];

export type ActionOutcome = 'succeeded' | 'failed' | 'signalled' | 'error';

const outcomes: readonly ActionOutcome[] = ['succeeded', 'failed', 'signalled', 'error'];
const phases = ['setup', 'run', 'teardown'] as const;

export class RunnerMetrics {
  readonly registry = new Registry();
  /** Bound once: labelling a metric on each action hashes its labels every time. */
  readonly #actions: Record<ActionOutcome, Counter.Internal>;
  readonly #phases: Record<(typeof phases)[number], Histogram.Internal<'phase'>>;
  readonly #rpcErrors: Counter<'method' | 'code'>;
  readonly #inFlight: Gauge;

  constructor(buildDirectoryPath: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const actions = new Counter({
      name: 'chroot_runner_actions_total',
      help: 'Actions run, by outcome: succeeded (exit 0), failed (other exit codes), signalled, error (not run or not finished)',
      labelNames: ['outcome'],
      registers,
    });
    this.#actions = Object.fromEntries(
      outcomes.map((outcome) => [outcome, actions.labels({ outcome })]),
    ) as Record<ActionOutcome, Counter.Internal>;
    const durations = new Histogram({
      name: 'chroot_runner_action_duration_seconds',
      help: 'Time spent per action in each phase: setup, run, teardown',
      labelNames: ['phase'],
      buckets: durationBuckets,
      registers,
    });
    this.#phases = Object.fromEntries(
      phases.map((phase) => [phase, durations.labels({ phase })]),
    ) as Record<(typeof phases)[number], Histogram.Internal<'phase'>>;
    this.#rpcErrors = new Counter({
      name: 'chroot_runner_rpc_errors_total',
      help: 'Runner RPCs that ended with an error, by method and gRPC status code',
      labelNames: ['method', 'code'],
      registers,
    });
    this.#inFlight = new Gauge({
      name: 'chroot_runner_actions_in_flight',
      help: 'Actions running now',
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

  actionFinished(outcome: ActionOutcome, result: ActionResult | undefined): void {
    this.#inFlight.dec();
    this.#actions[outcome].inc();
    if (result === undefined) return;
    for (const phase of phases) this.#phases[phase].observe(result.timings[phase] / 1000);
  }

  rpcFailed(method: string, code: string): void {
    this.#rpcErrors.inc({ method, code });
  }
}
