// Cloning a plan's child straight into a cgroup v2 (clone3's CLONE_INTO_CGROUP through
// native/clone3-*.S), against the real kernel: here on the unified hierarchy (no controllers
// on this host), and in the guest (test/kernel/guest.test.ts) with the pids controller. The
// cgroups are made beneath the runner's own unified cgroup, and removed.
import assert from 'node:assert/strict';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroupLayout } from '../../src/cgroups/index.js';
import { defaultIsolation, Engine } from '../../src/sandbox/index.js';
import { cwd, PlanBuilder, runnerStep } from '../../src/sandbox/plan.js';
import { constants, openDirectory, openHandleCount } from '../../src/syscalls/index.js';
import { cloneIntoCgroup, spawn, watchExit } from '../../src/syscalls/process.js';
import { makeBuildDirectory } from '../helpers/busybox.js';
import { uniqueScope } from '../helpers/cgroups.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';

const unified = needsRoot === false ? cgroupLayout().unified : null;
const skip = needsRoot || (unified === null && 'no unified cgroup hierarchy here');
const hasPids = unified?.controllers.includes('pids') === true;

/** `cat /proc/self/cgroup` as a plan's child, its stdout in `output`, cloned into `cgroup`
 * (a v2 directory's fd) or, for -1, joining `join` with its first step instead. */
function catOwnCgroup(output: number, cgroup: number, join?: number): PlanBuilder {
  const plan = new PlanBuilder();
  const step = runnerStep('cat');
  plan.cgroupFd = cgroup;
  if (join !== undefined) plan.writeFile(step, plan.inherit(join), 'cgroup.procs', '0');
  const cat = plan.open(step, cwd, '/bin/cat', { flags: constants.O_PATH, resolve: 0 });
  plan.dup2(step, plan.inherit(output), 1);
  plan.exec(step, cat, ['cat', '/proc/self/cgroup'], []);
  return plan;
}

describe('a child cloned into a cgroup (clone3, CLONE_INTO_CGROUP)', { skip }, () => {
  let scratch: string;
  let made = 0;
  /** Whether this test enabled the pids controller for the runner's cgroup's children. */
  let enabledPids = false;
  const subtreeControl = join(unified?.directory ?? '/nonexistent', 'cgroup.subtree_control');
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'chroot-runner-test-'));
    if (hasPids && !readFileSync(subtreeControl, 'utf8').split(/\s/).includes('pids')) {
      writeFileSync(subtreeControl, '+pids');
      enabledPids = true;
    }
  });
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
    if (enabledPids) writeFileSync(subtreeControl, '-pids');
  });

  /** A new cgroup beneath the runner's unified cgroup, and its path as /proc/self/cgroup
   * shows it. */
  function makeCgroup(): { directory: string; shown: string } {
    made += 1;
    const name = uniqueScope(`clone3-${made}`);
    const directory = join(unified?.directory ?? '/nonexistent', name);
    mkdirSync(directory);
    const own = readFileSync('/proc/self/cgroup', 'utf8').match(/^0::(.*)$/m)?.[1] ?? '';
    return { directory, shown: `0::${own === '/' ? '' : own}/${name}` };
  }

  /** Runs `body` with a cgroup and an output file, then proves both gone and nothing left. */
  function leakFree(
    name: string,
    body: (cgroup: { directory: string; shown: string }, output: string) => Promise<void>,
    options: { skip?: string | false } = {},
  ): void {
    it(name, { timeout: 60_000, ...options }, async () => {
      const state = processState();
      const handles = openHandleCount();
      const cgroup = makeCgroup();
      try {
        await body(cgroup, join(scratch, `output-${made}`));
      } finally {
        rmdirSync(cgroup.directory);
      }
      assertNothingLeft(state, [scratch]);
      assert.equal(openHandleCount(), handles, 'handles left open');
    });
  }

  /** Spawns the plan, waits for its exit through its pidfd, and returns its exit. */
  async function run(plan: PlanBuilder): Promise<number | null> {
    const child = await spawn(plan.build());
    try {
      return (await watchExit(child.pidfd, child.pid, undefined)).exitCode;
    } finally {
      child.pidfd.close();
    }
  }

  it('is what the addon found on this kernel (Linux ≥ 5.7, x86_64 or aarch64)', () => {
    assert.deepEqual(cloneIntoCgroup(), {
      available: true,
      detail: 'clone3 with CLONE_INTO_CGROUP',
    });
  });

  leakFree(
    'is in the cgroup with no step that joins it, and its pidfd works',
    async (cgroup, output) => {
      const directory = openDirectory(cgroup.directory);
      const file = openSync(output, 'w');
      try {
        const plan = catOwnCgroup(file, directory.fd);
        assert.equal(await run(plan), 0);
      } finally {
        closeSync(file);
        directory.close();
      }
      assert.match(readFileSync(output, 'utf8'), new RegExp(`^${cgroup.shown}$`, 'm'));
    },
  );

  leakFree(
    'is charged to the cgroup from its fork on: pids.max 0 refuses the clone, not a join',
    async (cgroup, output) => {
      writeFileSync(join(cgroup.directory, 'pids.max'), '0');
      const directory = openDirectory(cgroup.directory);
      const file = openSync(output, 'w');
      try {
        await assert.rejects(spawn(catOwnCgroup(file, directory.fd).build()), {
          code: 'EAGAIN',
          syscall: 'clone3',
        });
        // Joining after a clone in the runner's cgroup moves the child in: the kernel checks
        // pids.max at fork only.
        assert.equal(await run(catOwnCgroup(file, -1, directory.fd)), 0);
      } finally {
        closeSync(file);
        directory.close();
      }
      assert.match(readFileSync(output, 'utf8'), new RegExp(`^${cgroup.shown}$`, 'm'));
    },
    { skip: !hasPids && "the runner's unified cgroup has no pids controller here" },
  );

  leakFree('fails as a system error of clone3 into a directory that is no cgroup', async () => {
    const directory = openDirectory(scratch);
    try {
      await assert.rejects(spawn(catOwnCgroup(1, directory.fd).build()), {
        code: 'EBADF',
        syscall: 'clone3',
      });
    } finally {
      directory.close();
    }
  });

  it('is not used where a seccomp profile refuses clone3 (ENOSYS, as Docker’s does)', async () => {
    // The action's own filter refuses clone3 so: the runner's own code, run as an action on
    // the runner's files, finds it out.
    const state = processState();
    const build = makeBuildDirectory();
    const engine = await Engine.open({
      buildDirectory: build.path,
      isolation: {
        ...defaultIsolation,
        mode: 'namespaces',
        chrootIntoInputRoot: false,
        preparedNetworkNamespaces: 0,
      },
    });
    try {
      const process = new URL('../../src/syscalls/process.js', import.meta.url).href;
      const probe = `const { cloneIntoCgroup } = await import(${JSON.stringify(process)});
        console.log(JSON.stringify(cloneIntoCgroup()));`;
      const result = await engine.run({
        inputRoot: 'root',
        arguments: [globalThis.process.execPath, '--input-type=module', '-e', probe],
        environment: {},
        workingDirectory: '',
        stdoutPath: 'stdout',
        stderrPath: 'stderr',
      });
      const stderr = readFileSync(join(build.path, 'stderr'), 'utf8');
      assert.equal(result.exitCode, 0, stderr);
      assert.deepEqual(JSON.parse(readFileSync(join(build.path, 'stdout'), 'utf8')), {
        available: false,
        detail: 'clone3 refused with ENOSYS (Linux < 5.3, or a seccomp profile that refuses it)',
      });
    } finally {
      await engine.close();
      build.remove();
    }
    assertNothingLeft(state, []);
  });
});
