// The cgroup layer against the real kernel: cgroup v1 on this machine, cgroup v2 in the
// emulated guest (test/helpers/guest.ts). Processes join a cgroup the way an action's first process
// does, by writing "0" to cgroup.procs, here from a shell before it execs the workload.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { ActionCgroup, CgroupTree, CgroupUsage } from '../../src/cgroups/index.js';
import { openHandleCount } from '../../src/syscalls/index.js';
import { closeAndAssertGone, limits, MiB, needsCgroups, openTestTree } from '../helpers/cgroups.js';

interface Ran {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
}

/** Runs `script` under sh inside `cgroup`: the shell joins it, then runs the script. Resolves
 * once the shell's stdout has closed and it has exited. */
function runIn(cgroup: ActionCgroup, script: string, argv: readonly string[] = []): Promise<Ran> {
  // The directories arrive as fds 3, 4, …; a failed join ends the shell before the script.
  const join = cgroup.joinDirectories
    .map((_, index) => `echo 0 > /proc/self/fd/${3 + index}/cgroup.procs`)
    .join(' && ');
  const child = spawn('/bin/sh', ['-c', `${join} || exit 125; ${script}`, 'sh', ...argv], {
    stdio: [
      'ignore',
      'pipe',
      'inherit',
      ...cgroup.joinDirectories.map((directory) => directory.fd),
    ],
  });
  const output = child.stdout;
  if (output === null) throw new Error('no stdout pipe');
  let stdout = '';
  output.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
  });
  return new Promise((resolve, reject) => {
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let closed = false;
    const done = (): void => {
      if (exited !== undefined && closed) resolve({ ...exited, stdout });
    };
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      done();
    });
    output.on('close', () => {
      closed = true;
      done();
    });
  });
}

describe('the cgroup layer', { skip: needsCgroups }, () => {
  let tree: CgroupTree;
  let handles: number;
  before(() => {
    handles = openHandleCount();
    tree = openTestTree('layer');
  });
  after(() => {
    closeAndAssertGone(tree);
    assert.equal(openHandleCount(), handles, 'handles left open');
  });

  it('sets the limits it is given', async () => {
    const cgroup = tree.create('limits', { ...limits, cpuMaxMillicores: 1500, cpuWeight: 200 });
    try {
      const ran = await runIn(
        cgroup,
        tree.version === 2
          ? 'cat /proc/self/cgroup; d=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $d/memory.max $d/pids.max $d/cpu.max $d/cpu.weight $d/memory.oom.group'
          : 'cat /proc/self/cgroup',
      );
      assert.equal(ran.code, 0);
      if (tree.version === 2) {
        assert.match(ran.stdout, /\n67108864\n32\n150000 100000\n200\n1\n$/);
      } else {
        for (const directory of tree.directories) {
          const hierarchy = directory.split('/')[4];
          assert.match(ran.stdout, new RegExp(`:${hierarchy}:.*/limits\\n`));
        }
        const memory = tree.directories.find((d) => d.includes('/memory/')) ?? '';
        assert.equal(readFileSync(`${memory}/limits/memory.limit_in_bytes`, 'utf8'), '67108864\n');
        const cpu = tree.directories.find((d) => d.includes('/cpu/')) ?? '';
        assert.equal(readFileSync(`${cpu}/limits/cpu.cfs_quota_us`, 'utf8'), '150000\n');
        assert.equal(readFileSync(`${cpu}/limits/cpu.shares`, 'utf8'), '2048\n');
      }
    } finally {
      await cgroup.remove();
    }
  });

  it('stops a fork loop at pids.max and kills what it forked', async () => {
    const cgroup = tree.create('forks', limits);
    try {
      // Every child sleeps; the loop ends at the first refused fork and reports the count.
      const ran = await runIn(
        cgroup,
        `exec python3 -c '
import os, signal, sys
n = 0
while n < 1000:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os.close(1)
        signal.pause()
    n += 1
print(n)'`,
      );
      assert.equal(ran.code, 0);
      // pids.max counts the forking process too.
      assert.equal(Number(ran.stdout), 31);
      const usage = cgroup.usage();
      assert.ok(usage.pidsLimitHits >= 1, `pids.events max: ${usage.pidsLimitHits}`);
    } finally {
      await cgroup.remove();
    }
  });

  it('reports a memory hog over its limit as OOM-killed, and a plain SIGKILL not', async () => {
    const hog = tree.create('hog', limits);
    const killed = tree.create('killed', limits);
    try {
      const ran = await runIn(hog, 'exec dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null');
      assert.equal(ran.signal, 'SIGKILL');
      const usage = hog.usage();
      assert.ok(usage.oomKills >= 1, `oom kills: ${usage.oomKills}`);
      if (usage.version === 2) {
        assert.ok(usage.memoryLimitHits >= 1);
        assert.ok(usage.oomEvents >= 1);
      }
      const plain = await runIn(killed, 'kill -KILL $$');
      assert.equal(plain.signal, 'SIGKILL');
      assert.equal(killed.usage().oomKills, 0);
      assert.equal(killed.usage().oomEvents, 0);
    } finally {
      await hog.remove();
      await killed.remove();
    }
  });

  it('charges tmpfs pages to the cgroup that wrote them', async () => {
    const roomy = tree.create('tmpfs', { ...limits, memoryMaxBytes: 256 * MiB });
    const tight = tree.create('tmpfs-full', limits);
    const file = `/dev/shm/chroot-runner-test-${process.pid}-shm`;
    try {
      const ran = await runIn(roomy, 'head -c 100000000 /dev/zero > "$1"', [file]);
      assert.equal(ran.code, 0);
      const peak = roomy.usage().memoryPeakBytes;
      assert.ok(peak >= 100_000_000, `peak ${peak}`);
      const full = await runIn(tight, 'exec head -c 100000000 /dev/zero > "$1"', [`${file}-2`]);
      assert.equal(full.signal, 'SIGKILL');
      assert.ok(tight.usage().oomKills >= 1);
    } finally {
      rmSync(file, { force: true });
      rmSync(`${file}-2`, { force: true });
      await roomy.remove();
      await tight.remove();
    }
  });

  it('accounts each of two concurrent cgroups alone', async () => {
    // A fixed amount of work each: memory touched, and CPU burnt in user space.
    const work = (megabytes: number, rounds: number): string =>
      `exec python3 -c 'b = bytearray(${megabytes} * 1024 * 1024)
for _ in range(${rounds}):
    sum(range(100000))'`;
    const measure = async (
      names: readonly string[],
      loads: readonly string[],
    ): Promise<CgroupUsage[]> => {
      const cgroups = names.map((name) =>
        tree.create(name, { ...limits, memoryMaxBytes: 512 * MiB }),
      );
      try {
        const ran = await Promise.all(
          cgroups.map((cgroup, index) => runIn(cgroup, loads[index] ?? '')),
        );
        for (const result of ran) assert.equal(result.code, 0);
        return cgroups.map((cgroup) => cgroup.usage());
      } finally {
        for (const cgroup of cgroups) await cgroup.remove();
      }
    };
    const heavy = work(200, 200);
    const light = work(20, 20);
    const [heavyAlone] = await measure(['heavy-alone'], [heavy]);
    const [lightAlone] = await measure(['light-alone'], [light]);
    const [heavyTogether, lightTogether] = await measure(['heavy', 'light'], [heavy, light]);
    assert.ok(heavyAlone && lightAlone && heavyTogether && lightTogether);
    const near = (label: string, together: number, alone: number, tolerance: number): void => {
      assert.ok(
        Math.abs(together - alone) <= alone * tolerance,
        `${label}: ${together} together, ${alone} alone`,
      );
    };
    near('heavy memory peak', heavyTogether.memoryPeakBytes, heavyAlone.memoryPeakBytes, 0.05);
    near('light memory peak', lightTogether.memoryPeakBytes, lightAlone.memoryPeakBytes, 0.05);
    // CPU time of the same work varies with the machine's load (and under emulation with
    // the host's, where python3's start-up alone is seconds), so each must only be its own:
    // accounting shared between the two would make them equal.
    const cpu = (usage: CgroupUsage): number =>
      Number(usage.cpuUserNanoseconds + usage.cpuSystemNanoseconds);
    for (const [heavyUsage, lightUsage] of [
      [heavyAlone, lightAlone],
      [heavyTogether, lightTogether],
    ] as const) {
      assert.ok(cpu(heavyUsage) > cpu(lightUsage), `CPU ${cpu(heavyUsage)} vs ${cpu(lightUsage)}`);
    }
    if (heavyTogether.pressure !== null)
      assert.ok(heavyTogether.pressure.cpu.someMicroseconds >= 0n);
  });

  it('kills every process in a cgroup, and sweep removes what a crashed runner left', async () => {
    const cgroup = tree.create('left', limits);
    // A daemon that outlives the shell, as one an action started would outlive its init.
    const ran = await runIn(
      cgroup,
      'sleep 1000 > /dev/null 2>&1 & sleep 1000 > /dev/null 2>&1 & echo started',
    );
    assert.equal(ran.stdout, 'started\n');
    const { joinDirectories, initMoves } = cgroup;
    for (const handle of [...joinDirectories, ...Object.values(initMoves ?? {})]) handle.close();
    assert.deepEqual(await tree.sweep(), ['left']);
    assert.deepEqual(await tree.sweep(), []);
  });
});
