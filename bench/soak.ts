// `npm run soak`: the mixed soak of test/soak.test.ts in every mode (namespaces, shared,
// rootless; SOAK_MODES selects some), SOAK_ACTIONS actions each (default 10,000), then a
// verdict on flatness per mode: the last quarter's mean per-block time and RSS within 10 % of
// the second quarter's. The final block, which also waits for the last actions to drain
// (deadlines of 1 s among them), is reported but not judged. Writes bench/results/soak.json
// (every block's figures and the verdicts) and prints a table.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const modes = (process.env.SOAK_MODES ?? 'namespaces,shared,rootless').split(',');
const actions = process.env.SOAK_ACTIONS ?? '10000';
const tolerance = 0.1;
const results = new URL('../../bench/results/soak.json', import.meta.url).pathname;
const testFile = new URL('../test/soak.test.js', import.meta.url).pathname;

interface Block {
  readonly seconds: number;
  readonly rssMB: number;
  readonly serveCpuMsPerAction: number;
}

interface ModeReport {
  readonly mode: string;
  readonly total: number;
  readonly seconds: number;
  readonly blocks: readonly Block[];
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

type Flatness = ReturnType<typeof flatness>;

interface Verdict {
  readonly mode: string;
  readonly flat: boolean;
  readonly reason?: string;
  readonly time?: Flatness;
  readonly rss?: Flatness;
  /** Not judged: shown because wall time also measures the machine's other load. */
  readonly cpu?: Flatness;
  readonly report?: ModeReport;
}

/** The second and last quarters' means of a block figure, their ratio and whether it is flat. */
function flatness(blocks: readonly Block[], figure: keyof Block) {
  const quarter = Math.floor(blocks.length / 4);
  const second = mean(blocks.slice(quarter, 2 * quarter).map((block) => block[figure]));
  const last = mean(blocks.slice(blocks.length - quarter).map((block) => block[figure]));
  const ratio = last / second;
  return { second, last, ratio: Number(ratio.toFixed(3)), flat: ratio <= 1 + tolerance };
}

const reportDirectory = mkdtempSync(join(tmpdir(), 'chroot-runner-soak-report-'));
try {
  const run = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=1', '--test-reporter=spec', testFile],
    {
      stdio: 'inherit',
      env: { ...process.env, SOAK_ACTIONS: actions, SOAK_REPORT: reportDirectory },
    },
  );
  const verdicts: Verdict[] = [];
  for (const mode of modes) {
    let report: ModeReport;
    try {
      report = JSON.parse(readFileSync(join(reportDirectory, `${mode}.json`), 'utf8'));
    } catch {
      verdicts.push({ mode, flat: false, reason: 'the soak did not finish' });
      continue;
    }
    if (report.blocks.length < 5) {
      verdicts.push({ mode, flat: false, reason: `only ${report.blocks.length} blocks`, report });
      continue;
    }
    const steady = report.blocks.slice(0, -1);
    const time = flatness(steady, 'seconds');
    const rss = flatness(steady, 'rssMB');
    const cpu = flatness(steady, 'serveCpuMsPerAction');
    verdicts.push({ mode, flat: time.flat && rss.flat, time, rss, cpu, report });
  }
  writeFileSync(
    results,
    `${JSON.stringify({ measured: new Date().toISOString(), actions: Number(actions), verdicts }, null, 2)}\n`,
  );
  process.stdout.write(
    '\n| mode | actions | minutes | block s (2nd → last quarter) | RSS MB (2nd → last quarter) | ' +
      'serve CPU ms/action (2nd → last quarter) | flat |\n| --- | --- | --- | --- | --- | --- | --- |\n',
  );
  for (const verdict of verdicts) {
    const { time, rss, cpu, report } = verdict;
    if (time === undefined || rss === undefined || cpu === undefined || report === undefined) {
      process.stdout.write(`| ${verdict.mode} | | | | | | **FAIL**: ${verdict.reason} |\n`);
      continue;
    }
    process.stdout.write(
      `| ${verdict.mode} | ${report.total} | ${(report.seconds / 60).toFixed(1)} | ` +
        `${time.second.toFixed(2)} → ${time.last.toFixed(2)} (×${time.ratio}) | ` +
        `${rss.second.toFixed(1)} → ${rss.last.toFixed(1)} (×${rss.ratio}) | ` +
        `${cpu.second.toFixed(2)} → ${cpu.last.toFixed(2)} (×${cpu.ratio}) | ` +
        `${verdict.flat ? 'pass' : '**FAIL**'} |\n`,
    );
  }
  process.stdout.write(`\nBlocks and verdicts: ${results}\n`);
  const flat = verdicts.every((verdict) => verdict.flat);
  process.exitCode = run.status === 0 && flat ? 0 : 1;
} finally {
  rmSync(reportDirectory, { recursive: true, force: true });
}
