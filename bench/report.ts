// What one run of the benchmark found: the results object written as latest.json, the ratios
// and targets of issue 7, and the Markdown tables written as latest.md.
import type { FloorPhases } from './floor.js';
import type { Level } from './load.js';
import type { StartupRow } from './startup.js';
import type { EngineTimings, MountScalingResult } from './worker.js';

export interface Contender {
  readonly name: string;
  /** What one action is, and what launches it. */
  readonly description: string;
  /** Whose resident set `peakRssBytes` is. */
  readonly rssOf: string;
  readonly levels?: Level[];
  /** Sums of the engine's own timings, per concurrency. */
  readonly engineTimings?: EngineTimings[];
  /** The floor's own split of its actions' time, per concurrency. */
  readonly floorPhases?: FloorPhases[];
  readonly warnings?: string[];
  /** Why it was not measured (a missing part of the project, a failure). */
  readonly skipped?: string;
}

export interface HeapScalingRow {
  readonly heapMegabytes: number;
  readonly medianMs: Record<string, number | string>;
}

export interface Target {
  readonly name: string;
  readonly description: string;
  readonly comparison: '<=' | '>=';
  readonly threshold: number;
  readonly value: number | null;
  /** null when a figure it needs was not measured. */
  readonly pass: boolean | null;
}

export interface Results {
  readonly date: string;
  readonly machine: {
    readonly kernel: string;
    readonly cpu: string;
    readonly cores: number;
    readonly memoryBytes: number;
    readonly node: string;
  };
  readonly settings: {
    readonly actions: number;
    readonly warmup: number;
    readonly processWarmup: number;
    readonly buildDirectoryParent: string | null;
    readonly [name: string]: unknown;
  };
  readonly contenders: Contender[];
  readonly mountScaling: MountScalingResult | { skipped: string };
  readonly heapScaling: HeapScalingRow[] | { skipped: string };
  readonly startup: StartupRow[] | { skipped: string };
  readonly ratios: Record<string, number | null>;
  readonly targets: Target[];
}

function level(contenders: Contender[], name: string, concurrency: number): Level | undefined {
  return contenders
    .find((contender) => contender.name === name)
    ?.levels?.find((entry) => entry.concurrency === concurrency);
}

function ratio(numerator: number | undefined, denominator: number | undefined): number | null {
  return numerator === undefined || denominator === undefined ? null : numerator / denominator;
}

function heapMedian(rows: Results['heapScaling'], megabytes: number): number | undefined {
  if (!Array.isArray(rows)) return undefined;
  const value = rows.find((row) => row.heapMegabytes === megabytes)?.medianMs['engine namespaces'];
  return typeof value === 'number' ? value : undefined;
}

function mountMedian(scaling: Results['mountScaling'], mounts: number): number | undefined {
  if (!('rows' in scaling)) return undefined;
  const value = scaling.rows.find((row) => row.mounts === mounts)?.medianMs['engine namespaces'];
  return typeof value === 'number' ? value : undefined;
}

/** The ratios of issues 7 and 16, from the serve `namespaces` contender (the production path)
 * and the peers. */
export function ratios(
  contenders: Contender[],
  heapScaling: Results['heapScaling'],
  mountScaling: Results['mountScaling'],
  startup: Results['startup'],
): Results['ratios'] {
  const startupMedian = (name: string) =>
    Array.isArray(startup) ? startup.find((row) => row.name === name)?.medianMs : undefined;
  const serve = (concurrency: number) => level(contenders, 'serve namespaces', concurrency);
  const median1 = (name: string) => level(contenders, name, 1)?.medianMs;
  const mountCounts = 'rows' in mountScaling ? mountScaling.rows.map((row) => row.mounts) : [];
  return {
    serveOverBbRunnerC1: ratio(serve(1)?.medianMs, median1('bb_runner')),
    throughputServeOverBbRunnerC12: ratio(
      serve(12)?.throughput,
      level(contenders, 'bb_runner', 12)?.throughput,
    ),
    bwrapOverServe: ratio(median1('bwrap'), serve(1)?.medianMs),
    linuxSandboxOverServe: ratio(median1('linux-sandbox'), serve(1)?.medianMs),
    serveOverFloor: ratio(serve(1)?.medianMs, median1('floor')),
    warmFloorOverFloor: ratio(median1('floor, warm'), median1('floor')),
    throughputServeOverNodeSpawn: ratio(
      serve(12)?.throughput,
      level(contenders, 'node-spawn', 12)?.throughput,
    ),
    throughput64Over12: ratio(serve(64)?.throughput, serve(12)?.throughput),
    heapScaling: ratio(heapMedian(heapScaling, 500), heapMedian(heapScaling, 50)),
    mountScaling: ratio(
      mountMedian(mountScaling, Math.max(...mountCounts)),
      mountMedian(mountScaling, Math.min(...mountCounts)),
    ),
    servePeakRssMegabytesAt64: ratio(serve(64)?.peakRssBytes ?? undefined, 1024 * 1024),
    runStartupMs: ratio(startupMedian('chroot-runner run'), 1),
    runStartupOverNode: ratio(startupMedian('chroot-runner run'), startupMedian('node -e 0')),
  };
}

function target(
  name: string,
  description: string,
  value: number | null,
  comparison: Target['comparison'],
  threshold: number,
): Target {
  const pass =
    value === null ? null : comparison === '<=' ? value <= threshold : value >= threshold;
  return { name, description, comparison, threshold, value, pass };
}

/** How far a ratio is from 1, as a fraction (for "independent of ... within 10 %"). */
const deviation = (value: number | null) => (value === null ? null : Math.abs(1 - value));

/** The targets of issue 16 (with the full default isolation), and issue 7's floor ratio. */
export function targets(ratios: Results['ratios']): Target[] {
  const value = (name: string) => ratios[name] ?? null;
  return [
    target(
      'serveOverBbRunnerC1',
      'serve (namespaces) median latency at concurrency 1 over bb_runner’s',
      value('serveOverBbRunnerC1'),
      '<=',
      1,
    ),
    target(
      'throughputServeOverBbRunnerC12',
      'serve (namespaces) throughput at concurrency 12 over bb_runner’s',
      value('throughputServeOverBbRunnerC12'),
      '>=',
      1,
    ),
    target(
      'bwrapOverServe',
      'hardened bwrap’s median latency at concurrency 1 over serve (namespaces)’s',
      value('bwrapOverServe'),
      '>=',
      3,
    ),
    target(
      'linuxSandboxOverServe',
      'linux-sandbox’s median latency at concurrency 1 over serve (namespaces)’s',
      value('linuxSandboxOverServe'),
      '>=',
      3,
    ),
    target(
      'serveOverFloor',
      'serve (namespaces) median latency at concurrency 1 over the floor’s',
      value('serveOverFloor'),
      '<=',
      1.5,
    ),
    target(
      'throughput64Over12',
      'serve (namespaces) throughput at concurrency 64 over that at 12',
      value('throughput64Over12'),
      '>=',
      0.9,
    ),
    target(
      'heapScaling',
      'how far engine (namespaces) median latency with 500 MB of live objects is from that with 50 MB, as a fraction of it',
      deviation(value('heapScaling')),
      '<=',
      0.1,
    ),
    target(
      'mountScaling',
      'how far engine (namespaces) median latency with 1000 unrelated mounts is from that with none, as a fraction of it',
      deviation(value('mountScaling')),
      '<=',
      0.1,
    ),
    target(
      'servePeakRssMegabytesAt64',
      'serve’s peak RSS at concurrency 64, in MB',
      value('servePeakRssMegabytesAt64'),
      '<=',
      150,
    ),
  ];
}

const fixed = (value: number, digits = 2) => value.toFixed(digits);
const megabytes = (bytes: number | null) => (bytes === null ? '–' : fixed(bytes / 2 ** 20, 1));
const cell = (value: number | string) =>
  typeof value === 'number' ? fixed(value) : `– (${value})`;

/** A cell's text with its pipes escaped, so that a description cannot split its row. */
const escapeCell = (text: string) => text.replaceAll('|', '\\|');

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(' | ')} |`),
  ].join('\n');
}

/** Replaces what is between `<!-- bench:begin -->` and `<!-- bench:end -->` in `document`
 * with `content`; the document unchanged when it has no such markers. */
export function replaceMarkedSection(document: string, content: string): string {
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const from = document.indexOf(begin);
  const to = document.indexOf(end, from);
  if (from < 0 || to < 0) return document;
  return `${document.slice(0, from + begin.length)}\n\n${content.trim()}\n\n${document.slice(to)}`;
}

/** The results as Markdown: everything, or with `summary` only the measurement line, the
 * table of every contender and the targets (the README's). */
export function markdown(results: Results, { summary = false } = {}): string {
  const { machine } = results;
  const { settings } = results;
  const buildDirectory =
    settings.buildDirectoryParent === null
      ? 'a tmpfs'
      : `a directory in ${settings.buildDirectoryParent}`;
  const sections: string[] = [
    `Measured ${results.date} on ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}; ${settings.short === true ? 'a short run (BENCH_SHORT=1): ' : ''}${settings.actions} actions per contender and concurrency, after ${settings.warmup} unmeasured (and ${settings.processWarmup} once per Node runner process, before its first level); the build directory on ${buildDirectory}.`,
  ];

  const rows: string[][] = [];
  for (const contender of results.contenders) {
    if (contender.levels === undefined) {
      rows.push([contender.name, '–', '–', '–', '–', '–', `skipped: ${contender.skipped ?? ''}`]);
      continue;
    }
    for (const entry of contender.levels) {
      rows.push([
        contender.name,
        String(entry.concurrency),
        fixed(entry.medianMs),
        fixed(entry.p99Ms),
        fixed(entry.throughput, 0),
        entry.runnerCpuMs === null ? '–' : fixed(entry.runnerCpuMs),
        megabytes(entry.peakRssBytes),
      ]);
    }
  }
  sections.push(
    table(
      [
        'contender',
        'concurrency',
        'median ms',
        'p99 ms',
        'actions/s',
        'runner CPU ms/action',
        'peak RSS MB',
      ],
      rows,
    ),
  );
  const warnings = results.contenders.flatMap((contender) =>
    (contender.warnings ?? []).map((warning) => `- ${contender.name}: ${warning}`),
  );
  if (warnings.length > 0) sections.push(`Warnings:\n\n${warnings.join('\n')}`);
  const targetsTable = table(
    ['target', 'value', 'wanted', 'result'],
    results.targets.map((entry) => [
      `${entry.name}: ${entry.description}`,
      entry.value === null ? '–' : fixed(entry.value),
      `${entry.comparison} ${entry.threshold}`,
      entry.pass === null ? 'not measured' : entry.pass ? 'pass' : '**FAIL**',
    ]),
  );
  if (summary) return `${[...sections, targetsTable].join('\n\n')}\n`;

  sections.push(
    table(
      ['contender', 'one action is', 'peak RSS is that of'],
      results.contenders.map((contender) => [
        contender.name,
        contender.description,
        contender.rssOf,
      ]),
    ),
  );

  sections.push(targetsTable);

  const timings = results.contenders.filter((contender) => contender.engineTimings !== undefined);
  if (timings.length > 0) {
    sections.push(
      'Where the engine’s time goes (its own setup/run/teardown split, mean ms per action):',
      table(
        ['contender', 'concurrency', 'setup', 'run', 'teardown'],
        timings.flatMap((contender) =>
          (contender.engineTimings ?? []).map((entry) => [
            contender.name,
            String(entry.concurrency),
            fixed(entry.setupMs / entry.actions),
            fixed(entry.runMs / entry.actions),
            fixed(entry.teardownMs / entry.actions),
          ]),
        ),
      ),
    );
  }

  const floors = results.contenders.filter((contender) => contender.floorPhases !== undefined);
  if (floors.length > 0) {
    const names = Object.keys(floors[0]?.floorPhases?.[0]?.phasesMicroseconds ?? {});
    sections.push(
      'Where the floor’s time goes (floor.c’s phases, mean µs per action; CPU is that of the floor and all its children, the actions’ processes included):',
      table(
        ['contender', 'concurrency', ...names, 'CPU'],
        floors.flatMap((contender) =>
          (contender.floorPhases ?? []).map((entry) => [
            contender.name,
            String(entry.concurrency),
            ...names.map((name) => fixed(entry.phasesMicroseconds[name] ?? 0, 0)),
            fixed(entry.cpuMicroseconds, 0),
          ]),
        ),
      ),
    );
  }

  if ('rows' in results.mountScaling && results.mountScaling.rows.length > 0) {
    const names = Object.keys(results.mountScaling.rows[0]?.medianMs ?? {});
    sections.push(
      'Median latency (ms, concurrency 1) by number of unrelated mounts in the runner’s mount namespace:',
      table(
        ['mounts', ...names],
        results.mountScaling.rows.map((row) => [
          String(row.mounts),
          ...names.map((name) => cell(row.medianMs[name] ?? '')),
        ]),
      ),
    );
  } else if ('skipped' in results.mountScaling) {
    sections.push(`Mount scaling: skipped (${results.mountScaling.skipped}).`);
  }

  if (Array.isArray(results.startup)) {
    sections.push(
      'Start-up of one action in one process (hyperfine, one run; CPU is the process’s and its children’s):',
      table(
        ['command', 'median ms', 'mean ms', 'user CPU ms', 'system CPU ms'],
        results.startup.map((row) => [
          `${row.name}: \`${row.command}\``,
          fixed(row.medianMs, 1),
          fixed(row.meanMs, 1),
          fixed(row.userMs, 1),
          fixed(row.systemMs, 1),
        ]),
      ),
    );
  } else {
    sections.push(`Start-up: skipped (${results.startup.skipped}).`);
  }

  if (Array.isArray(results.heapScaling) && results.heapScaling.length > 0) {
    const names = Object.keys(results.heapScaling[0]?.medianMs ?? {});
    sections.push(
      'Median latency (ms, concurrency 1) by live objects held in the runner’s heap:',
      table(
        ['live objects', ...names],
        results.heapScaling.map((row) => [
          `${row.heapMegabytes} MB`,
          ...names.map((name) => cell(row.medianMs[name] ?? '')),
        ]),
      ),
    );
  } else if ('skipped' in results.heapScaling) {
    sections.push(`Heap scaling: skipped (${results.heapScaling.skipped}).`);
  }
  return `${sections.join('\n\n')}\n`;
}
