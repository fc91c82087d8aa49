// A cgroup per action, in every isolation mode run as root, against the real kernel: cgroup
// v1 here, cgroup v2 in the guest (test/kernel/guest.test.ts). Each test proves that nothing of the
// action's cgroup is left, nor a mount, fd, child or handle.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CgroupTree } from '../../src/cgroups/index.js';
import {
  type ActionCgroupUsage,
  type ActionResult,
  type ActionSpec,
  actionCgroupUsage,
  defaultIsolation,
  Engine,
} from '../../src/sandbox/index.js';
import { constants, mknodat, openHandleCount } from '../../src/syscalls/index.js';
import {
  type BuildDirectory,
  makeBuildDirectory,
  populateBusyboxRoot,
} from '../helpers/busybox.js';
import { closeAndAssertGone, limits, MiB, needsCgroups, openTestTree } from '../helpers/cgroups.js';
import { compileHostileHelper } from '../helpers/hostile.js';
import { assertNothingLeft, processState } from '../helpers/leaks.js';

let build: BuildDirectory;
let tree: CgroupTree;
let actions = 0;
/** Engines that outlive a test: their removals after an action land before its checks. */
const openEngines = new Set<Engine>();

/** none mode mounts nothing: its input roots get the /dev/null and /dev/zero that bb_worker's
 * inputRootCharacterDeviceNodes makes. Without it, ash's `&` fails in the child (it opens
 * /dev/null for a background job's stdin), and a fork loop of children that die at once never
 * reaches pids.max: it runs forever. */
const noneRoots = { first: 'none-root', second: 'none-second' };

before(() => {
  if (needsCgroups !== false) return;
  build = makeBuildDirectory();
  populateBusyboxRoot(join(build.path, 'second'));
  for (const root of Object.values(noneRoots)) {
    populateBusyboxRoot(join(build.path, root));
    mknodat(null, join(build.path, root, 'dev/null'), constants.S_IFCHR | 0o666, 1, 3);
    mknodat(null, join(build.path, root, 'dev/zero'), constants.S_IFCHR | 0o666, 1, 5);
  }
  tree = openTestTree('sandbox');
  compileHostileHelper(join(build.path, 'hostile'));
  copyFileSync(join(build.path, 'hostile'), join(build.path, 'root/bin/hostile'));
});

after(() => {
  if (needsCgroups !== false) return;
  build.remove();
  closeAndAssertGone(tree);
});

function actionSpec(script: string, overrides: Partial<ActionSpec> = {}): ActionSpec {
  actions += 1;
  return {
    inputRoot: 'root',
    arguments: ['sh', '-c', script],
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath: `stdout-${actions}`,
    stderrPath: `stderr-${actions}`,
    temporaryDirectory: 'tmp',
    ...overrides,
  };
}

/** A workload that touches `megabytes` of memory at once: dd's one buffer, filled by the
 * kernel (a shell reading as much into a variable takes minutes in the emulated guest). */
function touch(megabytes: number): string {
  return `dd if=/dev/zero of=/dev/null bs=${megabytes}M count=1 2>/dev/null`;
}

interface Ran {
  readonly result: ActionResult;
  readonly usage: ActionCgroupUsage | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

async function runOn(engine: Engine, action: ActionSpec): Promise<Ran> {
  const result = await engine.run(action);
  return {
    result,
    usage: actionCgroupUsage(result),
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
    await Promise.all([...openEngines].map((engine) => engine.settled()));
    assertNoCgroupLeft();
    assertNothingLeft(state, [build.path]);
    assert.equal(openHandleCount(), handles, 'handles left open');
  });
}

for (const mode of ['namespaces', 'shared', 'none'] as const) {
  describe(`a cgroup per action, ${mode} mode`, { skip: needsCgroups }, () => {
    let engine: Engine;
    let roomyEngine: Engine;
    before(async () => {
      // The guest's runner runs chrooted (test/helpers/guest.ts), and the kernel refuses a
      // user namespace to a chrooted process: there shared mode, which does not pivot first,
      // opts out as an operator must (Engine.open refuses it otherwise).
      const { actionUserNamespace: _, ...withoutUserNamespace } = defaultIsolation;
      // No network namespaces nor cgroups made ahead: these engines outlive each test, and
      // what a pool holds would count as left (the pool's own test is below).
      const isolation = {
        ...(mode === 'shared' && process.env.CHROOT_RUNNER_GUEST === '1'
          ? withoutUserNamespace
          : defaultIsolation),
        mode,
        preparedNetworkNamespaces: 0,
      };
      engine = await Engine.open({
        buildDirectory: build.path,
        isolation,
        cgroups: { tree, limits, preparedAhead: 0 },
      });
      roomyEngine = await Engine.open({
        buildDirectory: build.path,
        isolation,
        cgroups: { tree, limits: { ...limits, memoryMaxBytes: 256 * MiB }, preparedAhead: 0 },
      });
      openEngines.add(engine).add(roomyEngine);
    });
    after(async () => {
      openEngines.clear();
      await engine.close();
      await roomyEngine.close();
    });
    const roots = mode === 'none' ? noneRoots : { first: 'root', second: 'second' };
    const spec = (script: string, overrides: Partial<ActionSpec> = {}): ActionSpec =>
      actionSpec(script, { inputRoot: roots.first, ...overrides });
    const run = (action: ActionSpec): Promise<Ran> => runOn(engine, action);
    // none mode mounts no /proc, and no /dev: the workloads below need neither.
    if (mode !== 'none')
      leakFree('runs the action in a cgroup namespace of its own cgroup', async () => {
        const { result, usage, stdout } = await run(spec('cat /proc/self/cgroup'));
        assert.equal(result.exitCode, 0);
        // The hierarchies the action was put in show it at its namespace's root.
        const joined = tree.version === 2 ? /^0::/ : /^\d+:(memory|pids):/;
        const lines = stdout.split('\n').filter((line) => joined.test(line));
        assert.ok(lines.length > 0, stdout);
        for (const line of lines) assert.match(line, /:\/$/, stdout);
        assert.ok(usage !== undefined);
        assert.equal(usage.oomKilled, false);
      });

    leakFree('stops a fork loop at pids.max, and the action ends cleanly', async () => {
      const { result, usage, stderr } = await run(spec('while :; do sleep 1000 & done'));
      // ash gives up at the first refused fork; the init kills the sleeps when it exits.
      assert.match(stderr, /can't fork/);
      assert.equal(result.exitCode, 2);
      assert.ok((usage?.pidsLimitHits ?? 0) >= 1);
      assert.equal(usage?.oomKilled, false);
    });

    leakFree('reports a memory hog over its limit as OOM, and a plain SIGKILL not', async () => {
      const hog = await run(spec(touch(128)));
      assert.equal(hog.usage?.oomKilled, true);
      assert.ok((hog.usage?.memoryPeakBytes ?? 0) >= 60 * MiB);
      const killed = await run(spec('kill -KILL $$'));
      assert.equal(killed.result.terminationSignal, 'KILL');
      assert.equal(killed.usage?.oomKilled, false);
    });

    if (mode !== 'none') {
      leakFree('charges /dev/shm to the action', async () => {
        const { usage } = await run(spec('head -c 100000000 /dev/zero > /dev/shm/fill'));
        assert.equal(usage?.oomKilled, true);
      });
    }

    leakFree('accounts two concurrent actions each alone', async () => {
      const alone = [
        await runOn(roomyEngine, spec(touch(96))),
        await runOn(roomyEngine, spec(touch(16))),
      ];
      // Shared mode mounts into the input root: one each.
      const together = await Promise.all([
        runOn(roomyEngine, spec(touch(96))),
        runOn(roomyEngine, spec(touch(16), { inputRoot: roots.second })),
      ]);
      for (const [index, run] of together.entries()) {
        const peak = run.usage?.memoryPeakBytes ?? 0;
        const peakAlone = alone[index]?.usage?.memoryPeakBytes ?? 0;
        assert.ok(
          Math.abs(peak - peakAlone) <= peakAlone * 0.05,
          `${peak} together, ${peakAlone} alone`,
        );
      }
    });

    leakFree('leaves no cgroup after a cancelled action', async () => {
      const controller = new AbortController();
      const running = run(spec('sleep 1000 & wait', { signal: controller.signal }));
      // Engine.run prepares (makes the cgroup) before its first await.
      const names = readdirSync(tree.directories[0] ?? '');
      assert.equal(names.filter((name) => name.startsWith('action-')).length, 1);
      controller.abort();
      await assert.rejects(running, { name: 'AbortError' });
    });
  });
}

describe("how an action's first process enters its cgroup (namespaces mode)", {
  skip: needsCgroups,
}, () => {
  /** An engine whose actions' cgroups admit `pidsMax` processes. */
  function engineFor(pidsMax: number, enterAtClone?: boolean): Promise<Engine> {
    return Engine.open({
      buildDirectory: build.path,
      isolation: { ...defaultIsolation, mode: 'namespaces', preparedNetworkNamespaces: 0 },
      cgroups: {
        tree,
        limits: { ...limits, pidsMax },
        ...(enterAtClone === undefined ? {} : { enterAtClone }),
      },
    });
  }

  /** What becomes of an action whose cgroup admits no process (pids.max 0): the kernel
   * checks the limit at fork, never when a process joins. */
  async function refusal(enterAtClone?: boolean): Promise<string> {
    const engine = await engineFor(0, enterAtClone);
    try {
      await runOn(engine, actionSpec('true'));
      return 'ran';
    } catch (error) {
      const { syscall, code } = error as NodeJS.ErrnoException;
      return syscall === undefined ? (error as Error).message : `${syscall} ${code}`;
    } finally {
      await engine.close();
    }
  }

  // EAGAIN, by its other name.
  const joined = /^The action's init failed: (EAGAIN|EWOULDBLOCK)$/;

  leakFree(
    'v2: made in its cgroup by clone3, which pids.max 0 refuses; v1: joins it first',
    async () => {
      // Joined, the first process is in the cgroup before the init forks the action: that fork
      // is refused.
      assert.match(await refusal(), tree.version === 2 ? /^clone3 EAGAIN$/ : joined);
    },
  );

  leakFree('joins its cgroup with its first step where told not to clone into it', async () => {
    // On v2 the init forks the action's main process from the runner's cgroup, which it moved
    // to for memory.oom.group's sake, and the process moves back before it execs.
    assert.match(await refusal(false), tree.version === 2 ? /^ran$/ : joined);
    const engine = await engineFor(limits.pidsMax ?? 32, false);
    try {
      const { result, stdout } = await runOn(engine, actionSpec('cat /proc/self/cgroup'));
      assert.equal(result.exitCode, 0);
      assert.match(stdout, tree.version === 2 ? /^0::\/$/m : /^\d+:pids:\/$/m);
      // memory.oom.group's kill of the whole action spares the init, which reports it.
      const hog = await runOn(engine, actionSpec(touch(128)));
      assert.equal(hog.usage?.oomKilled, true);
    } finally {
      await engine.close();
    }
  });
});

describe('cgroups made ahead (namespaces mode)', { skip: needsCgroups }, () => {
  /** The cgroups in the tree's scope, alike on every hierarchy that holds any (on v1, cpu
   * only for a CPU limit). */
  function cgroupsInScope(): string[] {
    const [first, ...others] = tree.directories
      .map((directory) =>
        readdirSync(directory, { withFileTypes: true })
          .filter((entry) => entry.isDirectory())
          .map((entry) => entry.name)
          .sort(),
      )
      .filter((names) => names.length > 0);
    for (const names of others) assert.deepEqual(names, first);
    return first ?? [];
  }

  const recycles = (): boolean => tree.version === 1;

  /** The default isolation, with `preparedAhead` cgroups kept ready. */
  function pooledEngine(preparedAhead: number): Promise<Engine> {
    return Engine.open({
      buildDirectory: build.path,
      isolation: { ...defaultIsolation, preparedNetworkNamespaces: 0 },
      cgroups: { tree, limits, preparedAhead },
    });
  }

  leakFree('serves one action at a time, refills, and removes all at close', async () => {
    const engine = await pooledEngine(2);
    try {
      const ahead = cgroupsInScope();
      assert.equal(ahead.length, 2, `made ahead: ${ahead}`);
      const seen = [...ahead];
      for (let action = 0; action < 3; action++) {
        const { result, stdout } = await runOn(engine, actionSpec('cat /proc/self/cgroup'));
        assert.equal(result.exitCode, 0);
        // At its cgroup namespace's root: in a cgroup of its own.
        assert.match(stdout, tree.version === 2 ? /^0::\/$/m : /^\d+:pids:\/$/m, stdout);
        await engine.settled();
        // v1: the action's cgroup is back in the pool; v2: gone, and the pool full again
        // with a new one.
        const now = cgroupsInScope();
        assert.equal(now.length, 2, `after action ${action}: ${now}`);
        seen.push(...now);
      }
      assert.equal(new Set(seen).size, recycles() ? 2 : 2 + 3);
    } finally {
      await engine.close();
    }
    assert.deepEqual(cgroupsInScope(), []);
  });

  leakFree('accounts each action alone in a cgroup that served others', async () => {
    const engine = await pooledEngine(1);
    try {
      const names = new Set<string>();
      const run = async (script: string): Promise<ActionCgroupUsage> => {
        names.add(cgroupsInScope().join());
        const { usage } = await runOn(engine, actionSpec(script));
        await engine.settled();
        assert.ok(usage !== undefined);
        return usage;
      };
      const forks = await run('while :; do sleep 1000 & done');
      assert.ok(forks.pidsLimitHits >= 1);
      const hog = await run(touch(128));
      assert.equal(hog.oomKilled, true);
      assert.ok(hog.memoryPeakBytes >= 60 * MiB);
      const busy = await run('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
      const quiet = await run('true');
      // Nothing of the earlier actions: no refused fork, no OOM kill, a small peak, and a
      // fraction of the busy loop's CPU time.
      assert.equal(quiet.pidsLimitHits, 0);
      assert.equal(quiet.oomKilled, false);
      assert.equal(quiet.memoryLimitHits, 0);
      assert.ok(quiet.memoryPeakBytes < 8 * MiB, `${quiet.memoryPeakBytes}`);
      const cpu = (usage: ActionCgroupUsage): bigint =>
        usage.cpuUserNanoseconds + usage.cpuSystemNanoseconds;
      assert.ok(cpu(busy) > 0n);
      assert.ok(cpu(quiet) * 4n < cpu(busy), `${cpu(quiet)} against ${cpu(busy)}`);
      // v1: all in the one cgroup the pool keeps.
      if (recycles()) assert.equal(names.size, 1, [...names].join(' '));
      // The pages of a file an action wrote stay charged to its cgroup: too many for the next
      // action's peak (memoryLeftoverForReuseBytes), which gets a new cgroup.
      await run('head -c 16000000 /dev/zero > kept');
      rmSync(join(build.path, 'root/kept'));
      const next = await run('true');
      assert.ok(next.memoryPeakBytes < 8 * MiB, `${next.memoryPeakBytes}`);
      if (recycles()) assert.equal(names.size, 2, [...names].join(' '));
    } finally {
      await engine.close();
    }
    assert.deepEqual(cgroupsInScope(), []);
  });
});

describe('a uid-0 action cannot reach cgroups outside its own (namespaces mode)', {
  skip: needsCgroups,
}, () => {
  const victim = `victim-${process.pid}`;
  /** Runs the attack (test/helpers/hostile.c cgroup-escape) against a cgroup made beside the
   * action's on every hierarchy, and returns what it printed once the victim proved empty. */
  /** The attack with the seccomp entries `allow` allowed. `SETFCAP` kept too lets a nested
   * user namespace map its uid 0 to the action's (without it the kernel refuses that map), so
   * that what lies beyond, the cgroup namespace, is attacked too. */
  async function attack(allow: readonly string[], setfcap = false): Promise<string> {
    const engine = await Engine.open({
      buildDirectory: build.path,
      isolation: {
        ...defaultIsolation,
        mode: 'namespaces',
        seccomp: { ...defaultIsolation.seccomp, allow },
        keepCapabilities: setfcap
          ? [...defaultIsolation.keepCapabilities, 'SETFCAP']
          : defaultIsolation.keepCapabilities,
      },
      cgroups: { tree, limits },
    });
    const victims = tree.directories.map((directory) => join(directory, victim));
    for (const directory of victims) mkdirSync(directory);
    try {
      const { result, stdout, stderr } = await runOn(
        engine,
        actionSpec(`ls -A /sys/fs/cgroup | wc -l; hostile cgroup-escape ${victims[0]?.slice(1)}`),
      );
      assert.equal(result.exitCode, 0, stderr);
      for (const directory of victims) {
        assert.equal(readFileSync(join(directory, 'cgroup.procs'), 'utf8'), '', directory);
      }
      return stdout;
    } finally {
      for (const directory of victims) rmdirSync(directory);
      await engine.close();
    }
  }

  leakFree('mounts no cgroup hierarchy, and sees none in /sys/fs/cgroup', async () => {
    const stdout = await attack([]);
    assert.match(stdout, /^0\n/, stdout);
    for (const hierarchy of ['cgroup2', 'pids', 'memory']) {
      assert.match(stdout, new RegExp(`^direct-${hierarchy}-mount-refused EPERM$`, 'm'), stdout);
    }
    assert.match(stdout, /^userns-refused EPERM$/m, stdout);
  });

  leakFree(
    'in a nested user and cgroup namespace (user namespaces allowed), sees only its own cgroup',
    async () => {
      const stdout = await attack(['user_namespaces'], true);
      assert.match(stdout, /^userns$/m, stdout);
      assert.doesNotMatch(stdout, /joined-victim|killed-victim/, stdout);
      // Each mount the kernel allowed shows the action's own cgroup at its root: the victim,
      // beside it, is in none.
      assert.match(stdout, /^nested-\w+-join-refused ENOENT$/m, stdout);
    },
  );

  leakFree(
    'in a nested user namespace (user namespaces allowed), cannot map its uid 0 (no CAP_SETFCAP)',
    async () => {
      const stdout = await attack(['user_namespaces']);
      assert.match(stdout, /^uid_map-refused EPERM$/m, stdout);
      assert.doesNotMatch(stdout, /joined-victim|killed-victim/, stdout);
    },
  );

  leakFree('cannot lift its own limits, user namespaces allowed', async () => {
    // Its uid 0 is its own user namespace's, not the owner of its cgroup's files (the host's
    // root): the write is refused though its cgroup is the root of its own mount.
    const stdout = await attack(['user_namespaces'], true);
    assert.doesNotMatch(stdout, /own-limit-lifted/, stdout);
    for (const hierarchy of tree.version === 2 ? ['cgroup2'] : ['pids', 'memory']) {
      assert.match(
        stdout,
        new RegExp(`^nested-${hierarchy}-own-limit-refused (EACCES|EPERM)$`, 'm'),
        stdout,
      );
    }
  });
});
