// `npm run bench:cgroup`: what a cgroup per action costs the engine. The same action (the
// input root's `true`, namespaces mode, all special filesystems) with and without a cgroup
// of its own, one at a time, in interleaved rounds; the medians and their ratio, and the CPU
// time per action of the runner and its reaped children (/proc/self/stat: utime, stime,
// cutime, cstime; kernel work in kworkers, such as a removed cgroup's offlining, not counted).
// On v2 where the runner clones into the cgroup (clone3), a third variant joins it with the
// child's first step instead, as v1 does: what entering at clone time saves.
//
//   BENCH_ACTIONS (default 200 per round and variant), BENCH_ROUNDS (default 5)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CgroupLimits, openCgroupTree } from '../src/cgroups/index.js';
import { populateBusyboxRoot } from '../src/cli/busybox-root.js';
import { type ActionSpec, defaultIsolation, Engine } from '../src/sandbox/index.js';
import { cloneIntoCgroup } from '../src/syscalls/process.js';

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

/** CPU time of this process and its reaped children, in milliseconds (clock ticks of 10 ms). */
function cpuMilliseconds(): number {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 to 17 of stat(5), counted from the state (field 3) here.
  return fields.slice(11, 15).reduce((sum, ticks) => sum + Number(ticks), 0) * 10;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const path = mkdtempSync(join(tmpdir(), 'chroot-runner-bench-cgroup-'));
  populateBusyboxRoot(join(path, 'root'));
  const tree = openCgroupTree({
    scopePrefix: 'chroot-runner-bench',
    version: 'auto',
    scopeLimits: { memoryMaxBytes: null, pidsMax: null },
  });
  const isolation = { ...defaultIsolation, mode: 'namespaces' as const };
  const engines = new Map([
    ['without', await Engine.open({ buildDirectory: path, isolation })],
    ['with', await Engine.open({ buildDirectory: path, isolation, cgroups: { tree, limits } })],
  ]);
  if (tree.version === 2 && cloneIntoCgroup().available) {
    engines.set(
      'joined',
      await Engine.open({
        buildDirectory: path,
        isolation,
        cgroups: { tree, limits, enterAtClone: false },
      }),
    );
  }
  const latencies = new Map([...engines.keys()].map((variant) => [variant, [] as number[]]));
  const cpu = new Map([...engines.keys()].map((variant) => [variant, 0]));
  let index = 0;
  const once = async (variant: string): Promise<number> => {
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
    const engine = engines.get(variant);
    if (engine === undefined) throw new Error(`no engine for ${variant}`);
    const result = await engine.run(spec);
    const elapsed = performance.now() - started;
    if (result.exitCode !== 0) throw new Error(`true exited with ${result.exitCode}`);
    return elapsed;
  };
  try {
    for (let warmup = 0; warmup < 20; warmup++) {
      for (const variant of engines.keys()) await once(variant);
    }
    const variants = [...engines.keys()];
    for (let round = 0; round < rounds; round++) {
      // A block pays for the refill of the previous block's network namespace pool: the
      // order turns each round.
      for (const offset of variants.keys()) {
        const variant = variants[(round + offset) % variants.length] ?? 'without';
        const cpuBefore = cpuMilliseconds();
        for (let action = 0; action < actions; action++) {
          latencies.get(variant)?.push(await once(variant));
        }
        cpu.set(variant, (cpu.get(variant) ?? 0) + cpuMilliseconds() - cpuBefore);
      }
    }
  } finally {
    for (const engine of engines.values()) await engine.close();
    tree.close();
    rmSync(path, { recursive: true, force: true });
  }
  const medianOf = (variant: string): number => median(latencies.get(variant) ?? []);
  const cpuOf = (variant: string): number => (cpu.get(variant) ?? 0) / (rounds * actions);
  const without = medianOf('without');
  const withCgroup = medianOf('with');
  process.stdout.write(
    `cgroup v${tree.version}, ${rounds} rounds of ${actions} actions each, concurrency 1\n` +
      `engine namespaces median: ${without.toFixed(2)} ms without a cgroup, ${withCgroup.toFixed(2)} ms with (${(((withCgroup - without) / without) * 100).toFixed(1)} %, ${(withCgroup - without).toFixed(2)} ms per action)\n` +
      `CPU per action: ${cpuOf('without').toFixed(2)} ms without, ${cpuOf('with').toFixed(2)} ms with (${(cpuOf('with') - cpuOf('without')).toFixed(2)} ms for the cgroup)\n`,
  );
  if (engines.has('joined')) {
    const joined = medianOf('joined');
    process.stdout.write(
      `cloned into the cgroup (clone3) against joining it (first step): median ${withCgroup.toFixed(2)} against ${joined.toFixed(2)} ms (${(withCgroup - joined).toFixed(2)} ms), CPU ${cpuOf('with').toFixed(2)} against ${cpuOf('joined').toFixed(2)} ms per action\n`,
    );
  }
}

await main();
