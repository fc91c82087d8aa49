// The benchmark's report (bench/report.ts): the ratios against the peers, the targets, the
// Markdown and the README's marked section. No root, nothing measured.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Level } from '../../bench/load.js';
import {
  type Contender,
  markdown,
  type Results,
  ratios,
  replaceMarkedSection,
  targets,
} from '../../bench/report.js';

function level(concurrency: number, medianMs: number, throughput: number): Level {
  return {
    concurrency,
    actions: 100,
    medianMs,
    p99Ms: medianMs * 2,
    throughput,
    peakRssBytes: 100 * 2 ** 20,
    runnerCpuMs: 0.5,
  };
}

function contender(name: string, levels: Level[]): Contender {
  return { name, description: `${name} | with a pipe`, rssOf: 'it', levels };
}

const contenders = [
  contender('floor', [level(1, 1, 900), level(12, 7, 1700)]),
  contender('bb_runner', [level(1, 1.5, 600), level(12, 10, 1200)]),
  contender('bwrap', [level(1, 6, 160), level(12, 30, 400)]),
  contender('linux-sandbox', [level(1, 4.5, 200), level(12, 40, 300)]),
  contender('serve namespaces', [level(1, 2, 500), level(12, 12, 900), level(64, 60, 990)]),
  { name: 'node-spawn', description: 'spawn', rssOf: 'node', skipped: 'not selected' },
];

const mountScaling = {
  rows: [
    { mounts: 0, medianMs: { floor: 1, 'engine namespaces': 1.2 } },
    { mounts: 1000, medianMs: { floor: 1, 'engine namespaces': 1.26 } },
  ],
};
const heapScaling = [
  { heapMegabytes: 50, medianMs: { 'engine namespaces': 1.3 } },
  { heapMegabytes: 500, medianMs: { 'engine namespaces': 1.56 } },
];
const startup = [
  { name: 'node -e 0', command: 'node -e 0', medianMs: 40, meanMs: 41, userMs: 30, systemMs: 8 },
  {
    name: 'chroot-runner run',
    command: 'node chroot-runner.js run',
    medianMs: 60,
    meanMs: 61,
    userMs: 45,
    systemMs: 10,
  },
];

describe('bench report', () => {
  const values = ratios(contenders, heapScaling, mountScaling, startup);

  it('compares serve with bb_runner, bwrap and linux-sandbox', () => {
    assert.equal(values.serveOverBbRunnerC1, 2 / 1.5);
    assert.equal(values.throughputServeOverBbRunnerC12, 900 / 1200);
    assert.equal(values.bwrapOverServe, 3);
    assert.equal(values.linuxSandboxOverServe, 2.25);
    assert.equal(values.serveOverFloor, 2);
    assert.equal(values.throughput64Over12, 1.1);
    assert.equal(values.runStartupOverNode, 1.5);
    assert.equal(values.runStartupMs, 60);
  });

  it('leaves out what was not measured', () => {
    assert.equal(values.throughputServeOverNodeSpawn, null);
    assert.equal(values.warmFloorOverFloor, null);
  });

  it('judges each target on its side of the threshold', () => {
    const byName = new Map(targets(values).map((target) => [target.name, target]));
    assert.equal(byName.get('serveOverBbRunnerC1')?.pass, false);
    assert.equal(byName.get('throughputServeOverBbRunnerC12')?.pass, false);
    assert.equal(byName.get('bwrapOverServe')?.pass, true);
    assert.equal(byName.get('linuxSandboxOverServe')?.pass, false);
    assert.equal(byName.get('throughput64Over12')?.pass, true);
    // 1.26 / 1.2 is 5 % off, 1.56 / 1.3 is 20 % off.
    assert.equal(byName.get('mountScaling')?.pass, true);
    assert.equal(byName.get('heapScaling')?.pass, false);
  });

  const results: Results = {
    date: '2026-12-01T00:00:00.000Z',
    machine: { kernel: '6.18', cpu: 'cpu', cores: 2, memoryBytes: 1, node: 'v20' },
    settings: { actions: 100, warmup: 5, processWarmup: 10, buildDirectoryParent: null },
    contenders,
    mountScaling,
    heapScaling,
    startup,
    ratios: values,
    targets: targets(values),
  };

  it('escapes pipes in table cells, so that a description cannot split its row', () => {
    const text = markdown(results);
    const row = text.split('\n').find((line) => line.startsWith('| floor | floor'));
    assert.equal(row, '| floor | floor \\| with a pipe | it |');
    // Three cells once the escaped pipe is left out.
    assert.equal(row?.replaceAll('\\|', '').split('|').length, 5);
  });

  it('writes only the contenders and the targets into the summary', () => {
    const summary = markdown(results, { summary: true });
    assert.match(summary, /\| serve namespaces \| 64 \| 60\.00 \|/);
    assert.match(summary, /serveOverBbRunnerC1/);
    assert.doesNotMatch(summary, /one action is/);
    assert.doesNotMatch(summary, /Start-up/);
  });

  it('replaces exactly the marked section of a document', () => {
    const document = 'before\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nafter\n';
    assert.equal(
      replaceMarkedSection(document, 'new\n'),
      'before\n<!-- bench:begin -->\n\nnew\n\n<!-- bench:end -->\nafter\n',
    );
    assert.equal(replaceMarkedSection('no markers\n', 'new'), 'no markers\n');
  });
});
