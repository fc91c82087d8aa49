// `npm run soak`: the mixed soak of test/system/soak.test.ts in every mode (namespaces, shared,
// rootless; SOAK_MODES selects some), SOAK_ACTIONS actions each (default 10,000), one mode after
// another, then a verdict on flatness per mode. Writes bench/results/soak.json (every block's
// figures and the verdicts; a mode not run this time keeps its last verdict) and prints a table.
//
// The rule (README, "Soak"): a mode is flat when, over the blocks of actions, the last quarter's
// median CPU per action (serve's own and its reaped actions', over the CPU per unit of a fixed
// control workload measured in the same block) and median RSS are within 10 % of the second
// quarter's. CPU, not wall time: on this shared machine other suites stretch a block's wall time
// by ×2–×100, while CPU per action counts only the work done, so the runner's growth (a mount
// table, a list, a cgroup tree that every action walks) shows and the neighbours' load does not;
// over the control's, because that load still inflates a unit of work's CPU by tens of percent.
// Medians: growth with N moves every block of a quarter, a burst of page reclaim moves one. Wall
// time is shown, not judged. The final block, which also waits for the last actions to drain
// (deadlines of 1 s among them), is shown but not judged.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const modes = (process.env.SOAK_MODES ?? 'namespaces,shared,rootless').split(',');
const actions = process.env.SOAK_ACTIONS ?? '10000';
const tolerance = 0.1;
const results = new URL('../../bench/results/soak.json', import.meta.url).pathname;
const testFile = new URL('../test/system/soak.test.js', import.meta.url).pathname;

interface Block {
  readonly seconds: number;
  readonly rssMB: number;
  readonly serveCpuMsPerAction: number;
  readonly reapedCpuMsPerAction: number;
  readonly controlCpuMsPerUnit: number | null;
}

interface ModeReport {
  readonly mode: string;
  readonly total: number;
  readonly seconds: number;
  readonly blocks: readonly Block[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

type Flatness = ReturnType<typeof flatness>;

interface Verdict {
  readonly mode: string;
  readonly measured: string;
  readonly commit: string;
  readonly actions: number;
  readonly flat: boolean;
  readonly reason?: string;
  /** serve's and its reaped actions' CPU per action over the control's per unit: judged. */
  readonly cpu?: Flatness;
  /** Not judged: the two parts of that ratio. */
  readonly rawCpu?: Flatness;
  readonly control?: Flatness;
  readonly rss?: Flatness;
  /** Not judged: wall time also measures the machine's other load. */
  readonly time?: Flatness;
  readonly report?: ModeReport;
}

/** The second and last quarters' medians of a block figure, their ratio and whether it is flat. */
function flatness(blocks: readonly Block[], figure: (block: Block) => number) {
  const quarter = Math.floor(blocks.length / 4);
  const quarterMedian = (quarterBlocks: readonly Block[]) =>
    median(quarterBlocks.map(figure).filter((value) => Number.isFinite(value)));
  const second = quarterMedian(blocks.slice(quarter, 2 * quarter));
  const last = quarterMedian(blocks.slice(blocks.length - quarter));
  const ratio = last / second;
  return { second, last, ratio: Number(ratio.toFixed(3)), flat: ratio <= 1 + tolerance };
}

function verdictOf(
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
  const cpu = flatness(steady, (block) => cpuPerAction(block) / (block.controlCpuMsPerUnit ?? NaN));
  const rawCpu = flatness(steady, cpuPerAction);
  const control = flatness(steady, (block) => block.controlCpuMsPerUnit ?? NaN);
  const rss = flatness(steady, (block) => block.rssMB);
  const time = flatness(steady, (block) => block.seconds);
  return { mode, ...stamp, flat: cpu.flat && rss.flat, cpu, rawCpu, control, rss, time, report };
}

/** The verdicts of the last run of each mode, kept when this run does not run it. */
function previousVerdicts(): Verdict[] {
  try {
    return JSON.parse(readFileSync(results, 'utf8')).verdicts ?? [];
  } catch {
    return [];
  }
}

const stamp = {
  measured: new Date().toISOString(),
  commit: execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(),
  actions: Number(actions),
};
const reportDirectory = mkdtempSync(join(tmpdir(), 'chroot-runner-soak-report-'));
try {
  const run = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-reporter=spec', testFile],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        SOAK_ACTIONS: actions,
        SOAK_MODES: modes.join(','),
        SOAK_REPORT: reportDirectory,
      },
    },
  );
  const verdicts = modes.map((mode) => {
    let report: ModeReport | undefined;
    try {
      report = JSON.parse(readFileSync(join(reportDirectory, `${mode}.json`), 'utf8'));
    } catch {
      report = undefined;
    }
    return verdictOf(mode, report, stamp);
  });
  const kept = previousVerdicts().filter((verdict) => !modes.includes(verdict.mode));
  writeFileSync(results, `${JSON.stringify({ verdicts: [...kept, ...verdicts] }, null, 2)}\n`);
  process.stdout.write(
    '\n| mode | actions | minutes | CPU per action in control units | RSS MB | ' +
      'not judged: CPU ms/action, serve + reaped | control ms/unit | block s | flat |\n' +
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n',
  );
  for (const verdict of verdicts) {
    const { time, rss, cpu, rawCpu, control, report } = verdict;
    if (
      time === undefined ||
      rss === undefined ||
      cpu === undefined ||
      rawCpu === undefined ||
      control === undefined ||
      report === undefined
    ) {
      process.stdout.write(`| ${verdict.mode} | | | | | | | | **FAIL**: ${verdict.reason} |\n`);
      continue;
    }
    const figure = (flat: Flatness, digits: number) =>
      `${flat.second.toFixed(digits)} → ${flat.last.toFixed(digits)} (×${flat.ratio})`;
    process.stdout.write(
      `| ${verdict.mode} | ${report.total} | ${(report.seconds / 60).toFixed(1)} | ` +
        `${figure(cpu, 3)} | ${figure(rss, 1)} | ${figure(rawCpu, 2)} | ${figure(control, 3)} | ` +
        `${figure(time, 2)} | ` +
        `${verdict.flat ? 'pass' : '**FAIL**'} |\n`,
    );
  }
  process.stdout.write(`\nEach figure: 2nd quarter's median → last quarter's (ratio).\n`);
  process.stdout.write(`Blocks and verdicts: ${results}\n`);
  const flat = verdicts.every((verdict) => verdict.flat);
  process.exitCode = run.status === 0 && flat ? 0 : 1;
} finally {
  rmSync(reportDirectory, { recursive: true, force: true });
}
