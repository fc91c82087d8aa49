// A closed-loop load: `concurrency` loops each start the next action as soon as their last one
// finished, until `actions` are done. Per-action latencies, throughput, runner CPU and RSS.
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** The figures of one contender at one concurrency. */
export interface Level {
  readonly concurrency: number;
  readonly actions: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  /** Actions per second over the whole level. */
  readonly throughput: number;
  /** Peak resident set of the runner during this level, in bytes (null when not measured). */
  readonly peakRssBytes: number | null;
  /** CPU time of the runner's own process per action, in ms: not the action's processes
   * (nor, for the engine and the floor, the clone that sets the action up before exec). */
  readonly runnerCpuMs: number | null;
}

/** What one round measured of one contender at one concurrency; rounds are combined into a
 * Level. */
export interface Sample {
  readonly concurrency: number;
  readonly latenciesMs: readonly number[];
  readonly wallSeconds: number;
  readonly peakRssBytes: number | null;
  /** CPU time of the runner's own process over the round (see Level.runnerCpuMs). */
  readonly cpuMs: number | null;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error('quantile of no values');
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** One Level from the rounds' samples of one concurrency: latencies pooled, throughput over
 * the rounds' summed wall time, the highest peak RSS. */
export function combine(samples: readonly Sample[]): Level {
  const [first] = samples;
  if (first === undefined) throw new Error('no samples to combine');
  const sorted = samples.flatMap((sample) => sample.latenciesMs).sort((a, b) => a - b);
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
  const rss = samples.map((sample) => sample.peakRssBytes);
  const cpu = samples.map((sample) => sample.cpuMs);
  return {
    concurrency: first.concurrency,
    actions: sorted.length,
    medianMs: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    throughput: sorted.length / sum(samples.map((sample) => sample.wallSeconds)),
    peakRssBytes: rss.includes(null) ? null : Math.max(...(rss as number[])),
    runnerCpuMs: cpu.includes(null) ? null : sum(cpu as number[]) / sorted.length,
  };
}

/** One action: `index` counts actions, `loop` (0 ≤ loop < concurrency) names the loop that
 * runs it, so that concurrent actions can each have an input root of their own. */
export type Action = (index: number, loop: number) => Promise<void>;

/** Runs `actions` actions, at most `concurrency` at once; latencies in ms and the wall time
 * in seconds. */
export async function closedLoop(
  actions: number,
  concurrency: number,
  action: Action,
): Promise<{ latenciesMs: number[]; wallSeconds: number }> {
  const latenciesMs: number[] = [];
  let next = 0;
  async function loop(loopIndex: number): Promise<void> {
    for (let index = next++; index < actions; index = next++) {
      const start = performance.now();
      await action(index, loopIndex);
      latenciesMs.push(performance.now() - start);
    }
  }
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, actions) }, (_, i) => loop(i)));
  return { latenciesMs, wallSeconds: (performance.now() - start) / 1000 };
}

/** Peak resident set (VmHWM) of a process, in bytes. */
export function peakRss(pid: number | 'self' = 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU time a process has used so far, in ms. */
export function cpuTime(pid: number | 'self' = 'self'): number {
  if (pid === 'self') {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name, in ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const clockTicksPerSecond = 100;

/** Resets a process's VmHWM to its current RSS, so that the next level's peak is its own. */
export function resetPeakRss(pid: number | 'self' = 'self'): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}
