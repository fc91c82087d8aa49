// A cgroup per action, in every isolation mode run as root, against the real kernel: cgroup
// v1 here, cgroup v2 in the guest (test/guest.test.ts). Each test proves that nothing of the
// action's cgroup is left, nor a mount, fd, child or handle.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CgroupLimits, CgroupTree } from '../src/cgroups/index.js';
import {
  type ActionResult,
  type ActionSpec,
  defaultIsolation,
  type IsolationMode,
  prepareSandbox,
  runAction,
} from '../src/sandbox/index.js';
import { type DirectoryHandle, openDirectory, openHandleCount } from '../src/syscalls/index.js';
import { type BuildDirectory, makeBuildDirectory, populateBusyboxRoot } from './helpers/busybox.js';
import { closeAndAssertGone, needsCgroups, openTestTree } from './helpers/cgroups.js';
import { assertNothingLeft, processState } from './helpers/leaks.js';

const MiB = 1024 * 1024;
const limits: CgroupLimits = {
  memoryMaxBytes: 64 * MiB,
  memoryHighBytes: null,
  swapMaxBytes: 0,
  pidsMax: 32,
  cpuMaxMillicores: null,
  cpuWeight: null,
};

let build: BuildDirectory;
let buildDirectory: DirectoryHandle;
let tree: CgroupTree;
let actions = 0;

before(() => {
  if (needsCgroups !== false) return;
  prepareSandbox();
  build = makeBuildDirectory();
  populateBusyboxRoot(join(build.path, 'second'));
  buildDirectory = openDirectory(build.path);
  tree = openTestTree('sandbox');
});

after(() => {
  if (needsCgroups !== false) return;
  buildDirectory.close();
  build.remove();
  closeAndAssertGone(tree);
});

function spec(
  mode: IsolationMode,
  script: string,
  overrides: Partial<ActionSpec> = {},
): ActionSpec {
  actions += 1;
  return {
    buildDirectory,
    inputRoot: 'root',
    arguments: ['sh', '-c', script],
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath: `stdout-${actions}`,
    stderrPath: `stderr-${actions}`,
    temporaryDirectory: 'tmp',
    isolation: { ...defaultIsolation, mode },
    cgroup: { tree, limits },
    ...overrides,
  };
}

async function run(
  action: ActionSpec,
): Promise<{ result: ActionResult; stdout: string; stderr: string }> {
  const result = await runAction(action);
  return {
    result,
    stdout: readFileSync(join(build.path, action.stdoutPath), 'utf8'),
    stderr: readFileSync(join(build.path, action.stderrPath), 'utf8'),
  };
}

/** No action cgroup is left in the tree's scope. */
function assertNoCgroupLeft(): void {
  for (const directory of tree.directories)
    assert.deepEqual(
      readdirSync(directory, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name),
      [],
      `cgroups left in ${directory}`,
    );
}

function leakFree(name: string, body: () => Promise<void>): void {
  it(name, { timeout: 120_000 }, async () => {
    const state = processState();
    const handles = openHandleCount();
    await body();
    assertNoCgroupLeft();
    assertNothingLeft(state, [build.path]);
    assert.equal(openHandleCount(), handles, 'handles left open');
  });
}

for (const mode of ['namespaces', 'shared', 'none'] as const) {
  describe(`a cgroup per action, ${mode} mode`, { skip: needsCgroups }, () => {
    // none mode mounts no /proc, and no /dev: the workloads below need neither.
    if (mode !== 'none')
      leakFree('runs the action in a cgroup namespace of its own cgroup', async () => {
        const { result, stdout } = await run(spec(mode, 'cat /proc/self/cgroup'));
        assert.equal(result.exitCode, 0);
        // The hierarchies the action was put in show it at its namespace's root.
        const joined = tree.version === 2 ? /^0::/ : /^\d+:(memory|pids):/;
        const lines = stdout.split('\n').filter((line) => joined.test(line));
        assert.ok(lines.length > 0, stdout);
        for (const line of lines) assert.match(line, /:\/$/, stdout);
        assert.ok(result.cgroupUsage !== undefined);
        assert.equal(result.cgroupUsage.oomKilled, false);
      });

    leakFree('stops a fork loop at pids.max, and the action ends cleanly', async () => {
      const { result, stderr } = await run(spec(mode, 'while :; do sleep 1000 & done'));
      // ash gives up at the first refused fork; the init kills the sleeps.
      assert.match(stderr, /can't fork/);
      assert.equal(result.exitCode, 2);
      assert.ok((result.cgroupUsage?.pidsLimitHits ?? 0) >= 1);
      assert.equal(result.cgroupUsage?.oomKilled, false);
    });

    leakFree('reports a memory hog over its limit as OOM, and a plain SIGKILL not', async () => {
      const hog = await run(spec(mode, 'x=$(yes | head -c 134217728)'));
      assert.equal(hog.result.cgroupUsage?.oomKilled, true);
      assert.ok((hog.result.cgroupUsage?.memoryPeakBytes ?? 0) >= 60 * MiB);
      const killed = await run(spec(mode, 'kill -KILL $$'));
      assert.equal(killed.result.terminationSignal, 'KILL');
      assert.equal(killed.result.cgroupUsage?.oomKilled, false);
    });

    if (mode !== 'none') {
      leakFree('charges /dev/shm to the action', async () => {
        const { result } = await run(spec(mode, 'head -c 100000000 /dev/zero > /dev/shm/fill'));
        assert.equal(result.cgroupUsage?.oomKilled, true);
      });
    }

    leakFree('accounts two concurrent actions each alone', async () => {
      const load = (megabytes: number): string => `x=$(yes | head -c ${megabytes * MiB})`;
      const roomy = { ...limits, memoryMaxBytes: 256 * MiB };
      const alone = [
        await run(spec(mode, load(96), { cgroup: { tree, limits: roomy } })),
        await run(spec(mode, load(16), { cgroup: { tree, limits: roomy } })),
      ];
      // Shared mode mounts into the input root: one each.
      const together = await Promise.all([
        run(spec(mode, load(96), { cgroup: { tree, limits: roomy } })),
        run(spec(mode, load(16), { cgroup: { tree, limits: roomy }, inputRoot: 'second' })),
      ]);
      for (const [index, run] of together.entries()) {
        const peak = run.result.cgroupUsage?.memoryPeakBytes ?? 0;
        const peakAlone = alone[index]?.result.cgroupUsage?.memoryPeakBytes ?? 0;
        assert.ok(
          Math.abs(peak - peakAlone) <= peakAlone * 0.05,
          `${peak} together, ${peakAlone} alone`,
        );
      }
    });

    leakFree('leaves no cgroup after a cancelled action', async () => {
      const controller = new AbortController();
      const running = run(
        spec(mode, 'sleep 1000 & echo started; wait', { signal: controller.signal }),
      );
      // The action's cgroup exists once the action runs; cancel it then.
      for (;;) {
        const names = readdirSync(tree.directories[0] ?? '');
        if (names.some((name) => name.startsWith('action-'))) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      controller.abort();
      await assert.rejects(running, { name: 'AbortError' });
    });
  });
}
