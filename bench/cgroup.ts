// `npm run bench:cgroup`: what a cgroup per action costs the engine. The same action (the
// input root's `true`, namespaces mode, all special filesystems) with and without a cgroup
// of its own, one at a time, in interleaved rounds; the medians and their ratio.
//
//   BENCH_ACTIONS (default 200 per round and variant), BENCH_ROUNDS (default 5)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CgroupLimits, openCgroupTree } from '../src/cgroups/index.js';
import { populateBusyboxRoot } from '../src/cli/busybox-root.js';
import { type ActionSpec, defaultIsolation, Engine } from '../src/sandbox/index.js';

const actions = Number(process.env.BENCH_ACTIONS ?? 200);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);

/** The configuration's defaults, but for the memory limit (any will do). */
const limits: CgroupLimits = {
  memoryMaxBytes: 1024 * 1024 * 1024,
  memoryHighBytes: null,
  swapMaxBytes: 0,
  pidsMax: 4096,
  cpuMaxMillicores: null,
  cpuWeight: null,
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const path = mkdtempSync(join(tmpdir(), 'chroot-runner-bench-cgroup-'));
  populateBusyboxRoot(join(path, 'root'));
  const tree = openCgroupTree({ scope: `chroot-runner-bench-${process.pid}`, version: 'auto' });
  const isolation = { ...defaultIsolation, mode: 'namespaces' as const };
  const plain = await Engine.open({ buildDirectory: path, isolation });
  const withCgroups = await Engine.open({
    buildDirectory: path,
    isolation,
    cgroups: { tree, limits },
  });
  const latencies = { without: [] as number[], with: [] as number[] };
  let index = 0;
  const once = async (cgroup: boolean): Promise<number> => {
    index += 1;
    const spec: ActionSpec = {
      inputRoot: 'root',
      arguments: ['/bin/true'],
      environment: { PATH: '/bin' },
      workingDirectory: '',
      stdoutPath: `${index}.stdout`,
      stderrPath: `${index}.stderr`,
    };
    const started = performance.now();
    const result = await (cgroup ? withCgroups : plain).run(spec);
    const elapsed = performance.now() - started;
    if (result.exitCode !== 0) throw new Error(`true exited with ${result.exitCode}`);
    return elapsed;
  };
  try {
    for (let warmup = 0; warmup < 20; warmup++) {
      await once(false);
      await once(true);
    }
    for (let round = 0; round < rounds; round++) {
      for (const variant of ['without', 'with'] as const) {
        for (let action = 0; action < actions; action++) {
          latencies[variant].push(await once(variant === 'with'));
        }
      }
    }
  } finally {
    await plain.close();
    await withCgroups.close();
    await tree.sweep();
    tree.close();
    rmSync(path, { recursive: true, force: true });
  }
  const without = median(latencies.without);
  const withCgroup = median(latencies.with);
  process.stdout.write(
    `cgroup v${tree.version}, ${rounds} rounds of ${actions} actions each, concurrency 1\n` +
      `engine namespaces median: ${without.toFixed(2)} ms without a cgroup, ${withCgroup.toFixed(2)} ms with (${(((withCgroup - without) / without) * 100).toFixed(1)} %, ${(withCgroup - without).toFixed(2)} ms per action)\n`,
  );
}

await main();
