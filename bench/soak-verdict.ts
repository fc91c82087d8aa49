// The verdict of `npm run soak` on one mode's blocks of actions.
//
// The rule (README, "Soak"): a mode is flat when, over the blocks of actions, the last quarter's
// median RSS is within 10 % of the second quarter's, and so is its median CPU per action (serve's
// own and its reaped actions'), either as measured or over the CPU per unit of a fixed control
// workload measured in the same block: growth must show in both to fail. CPU, not wall time: on
// this shared machine other suites stretch a block's wall time by ×2–×7, while CPU per action
// counts only the work done, so the runner's growth (a mount table, a list, a cgroup tree that
// every action walks) shows and the neighbours' load mostly does not. That load still inflates
// a unit of work's CPU by tens of percent when it lasts: the control measures by how much, but
// tracks serve's CPU only in part (a correlation of 0.66–0.8 per block in the 100,000-action
// runs), so over the control alone a quieter last quarter reads as growth, and raw alone a
// busier one. Medians: growth with N moves every block of a quarter, a burst of page reclaim
// moves one. Wall time is shown, not judged. The final block, which also waits for the last
// actions to drain (deadlines of 1 s among them), is shown but not judged.

import { median } from './load.js';

const tolerance = 0.1;

export interface Block {
  readonly seconds: number;
  readonly rssMB: number;
  readonly serveCpuMsPerAction: number;
  readonly reapedCpuMsPerAction: number;
  readonly controlCpuMsPerUnit: number | null;
}

export interface ModeReport {
  readonly mode: string;
  /** Actions run; fewer than `requested` when SOAK_BUDGET_MINUTES stopped the run. */
  readonly total: number;
  readonly requested?: number;
  readonly seconds: number;
  readonly blocks: readonly Block[];
}

export type Flatness = ReturnType<typeof flatness>;

export interface Verdict {
  readonly mode: string;
  readonly measured: string;
  readonly commit: string;
  readonly actions: number;
  readonly flat: boolean;
  readonly reason?: string;
  /** serve's and its reaped actions' CPU per action, and that over the control's CPU per
   * unit: not flat when neither is. */
  readonly cpu?: Flatness;
  readonly relativeCpu?: Flatness;
  /** Not judged: the control's CPU per unit. */
  readonly control?: Flatness;
  readonly rss?: Flatness;
  /** Not judged: wall time also measures the machine's other load. */
  readonly time?: Flatness;
  readonly report?: ModeReport;
}

/** The second and last quarters' medians of a block figure, their ratio and whether it is flat. */
export function flatness(blocks: readonly Block[], figure: (block: Block) => number) {
  const quarter = Math.floor(blocks.length / 4);
  const quarterMedian = (quarterBlocks: readonly Block[]) => {
    const values = quarterBlocks.map(figure).filter((value) => Number.isFinite(value));
    return values.length === 0 ? Number.NaN : median(values);
  };
  const second = quarterMedian(blocks.slice(quarter, 2 * quarter));
  const last = quarterMedian(blocks.slice(blocks.length - quarter));
  const ratio = last / second;
  return { second, last, ratio: Number(ratio.toFixed(3)), flat: ratio <= 1 + tolerance };
}

export function verdictOf(
  mode: string,
  report: ModeReport | undefined,
  stamp: { measured: string; commit: string; actions: number },
): Verdict {
  if (report === undefined)
    return { mode, ...stamp, flat: false, reason: 'the soak did not finish' };
  if (report.blocks.length < 5) {
    return { mode, ...stamp, flat: false, reason: `only ${report.blocks.length} blocks`, report };
  }
  const steady = report.blocks.slice(0, -1);
  const cpuPerAction = (block: Block) => block.serveCpuMsPerAction + block.reapedCpuMsPerAction;
  const cpu = flatness(steady, cpuPerAction);
  const relativeCpu = flatness(
    steady,
    (block) => cpuPerAction(block) / (block.controlCpuMsPerUnit ?? NaN),
  );
  const control = flatness(steady, (block) => block.controlCpuMsPerUnit ?? NaN);
  const rss = flatness(steady, (block) => block.rssMB);
  const time = flatness(steady, (block) => block.seconds);
  const requested = report.requested ?? report.total;
  const stopped = report.total < requested;
  return {
    ...(stopped
      ? { reason: `stopped by its time budget after ${report.total} of ${requested}` }
      : {}),
    mode,
    ...stamp,
    // Growth must show in both: in CPU per action, and in it over the control's.
    flat: Number.isFinite(relativeCpu.ratio) && (cpu.flat || relativeCpu.flat) && rss.flat,
    cpu,
    relativeCpu,
    control,
    rss,
    time,
    report,
  };
}
