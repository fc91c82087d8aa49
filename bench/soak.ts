// `npm run soak`: the mixed soak of test/system/soak.test.ts in every mode (namespaces, shared,
// rootless; SOAK_MODES selects some), SOAK_ACTIONS actions each (default 10,000), one mode after
// another, then a verdict on flatness per mode (bench/soak-verdict.ts, where the rule is and
// why). Writes bench/results/soak.json (every block's figures and the verdicts; a mode not run
// this time keeps its last verdict) and prints a table. SOAK_JUDGE=stored runs nothing and
// judges the stored blocks of the selected modes again (after a change to the rule).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Flatness, type ModeReport, type Verdict, verdictOf } from './soak-verdict.js';

const modes = (process.env.SOAK_MODES ?? 'namespaces,shared,rootless').split(',');
const actions = process.env.SOAK_ACTIONS ?? '10000';
const results = new URL('../../bench/results/soak.json', import.meta.url).pathname;
const testFile = new URL('../test/system/soak.test.js', import.meta.url).pathname;

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
  // SOAK_JUDGE=stored: no run; the stored blocks of the selected modes judged again.
  const stored = process.env.SOAK_JUDGE === 'stored' ? previousVerdicts() : undefined;
  const run =
    stored !== undefined
      ? { status: 0 }
      : spawnSync(
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
    const previous = stored?.find((verdict) => verdict.mode === mode);
    if (previous !== undefined) {
      const { measured, commit, actions: requested } = previous;
      return verdictOf(mode, previous.report, { measured, commit, actions: requested });
    }
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
    '\n| mode | actions | minutes | CPU ms/action, serve + reaped | over the control | RSS MB | ' +
      'not judged: control ms/unit | block s | flat |\n' +
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n',
  );
  for (const verdict of verdicts) {
    const { time, rss, cpu, relativeCpu, control, report } = verdict;
    if (
      time === undefined ||
      rss === undefined ||
      cpu === undefined ||
      relativeCpu === undefined ||
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
        `${figure(cpu, 2)} | ${figure(relativeCpu, 3)} | ${figure(rss, 1)} | ${figure(control, 3)} | ` +
        `${figure(time, 2)} | ` +
        `${verdict.flat ? 'pass' : '**FAIL**'}${verdict.reason === undefined ? '' : `: ${verdict.reason}`} |\n`,
    );
  }
  process.stdout.write(`\nEach figure: 2nd quarter's median → last quarter's (ratio).\n`);
  process.stdout.write(`Blocks and verdicts: ${results}\n`);
  const flat = verdicts.every((verdict) => verdict.flat && verdict.reason === undefined);
  process.exitCode = run.status === 0 && flat ? 0 : 1;
} finally {
  rmSync(reportDirectory, { recursive: true, force: true });
}
