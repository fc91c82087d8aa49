// The cgroup layer against the real kernel: cgroup v1 on this machine, cgroup v2 in the
// emulated guest (test/helpers/guest.ts). Processes join a cgroup the way an action's first process
// does, by writing "0" to cgroup.procs, here from a shell before it execs the workload.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { readKeyed } from '../../src/cgroups/files.js';
import {
  type ActionCgroup,
  type CgroupTree,
  type CgroupUsage,
  openCgroupTree,
} from '../../src/cgroups/index.js';
import { openHandleCount } from '../../src/syscalls/index.js';
import {
  closeAndAssertGone,
  limits,
  MiB,
  needsCgroups,
  openTestTree,
  unboundedScope,
  uniqueScope,
} from '../helpers/cgroups.js';
import { processesWithArgument, uniqueSleepDuration } from '../helpers/processes.js';

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

/** Forks children that sleep until a fork is refused, then prints how many it made. */
const forkLoop = `exec python3 -c '
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
print(n)'`;

/** test/helpers/cgroup-owner.ts, compiled. */
const owner = new URL('../helpers/cgroup-owner.js', import.meta.url).pathname;

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
    // Without a CPU limit, v1's cpu hierarchy (where it is not cpuacct's) has no cgroup to
    // join: cpuacct accounts the CPU time.
    const unlimited = tree.create('unlimited', limits);
    try {
      const cpu = tree.directories.find((d) => d.includes('/cpu/'));
      if (tree.version === 1 && cpu !== undefined) {
        assert.equal(existsSync(`${cpu}/unlimited`), false);
        assert.equal(unlimited.joinDirectories.length, tree.directories.length - 1);
      }
    } finally {
      await unlimited.remove();
    }
  });

  it('stops a fork loop at pids.max and kills what it forked', async () => {
    const cgroup = tree.create('forks', limits);
    try {
      // Every child sleeps; the loop ends at the first refused fork and reports the count.
      const ran = await runIn(cgroup, forkLoop);
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

  it("sweeps a SIGKILLed owner's scope, its actions' cgroups and processes, not a live one's", async () => {
    const scopePrefix = uniqueScope('owners');
    const live = openCgroupTree({ scopePrefix, version: 'auto', scopeLimits: unboundedScope });
    const liveAction = live.create('action-1', { ...limits, cpuWeight: 100 });
    const mark = uniqueSleepDuration();
    const killed = spawn(process.execPath, [owner, 'hold', scopePrefix, mark], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(
        createInterface({ input: killed.stdout as NodeJS.ReadableStream }),
        'line',
      )) as [string];
      const { directories } = JSON.parse(line) as { directories: string[] };
      killed.kill('SIGKILL');
      await once(killed, 'exit');
      // What the killed owner left: its scope, its action's cgroup and the sleep in it.
      const sleeping = processesWithArgument(mark);
      assert.equal(sleeping.length, 1);
      for (const directory of directories) {
        assert.ok(readdirSync(`${directory}/action-1`).includes('cgroup.procs'), directory);
      }
      const sweeper = spawn(process.execPath, [owner, 'sweep', scopePrefix], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      sweeper.stdout?.setEncoding('utf8').on('data', (text: string) => {
        output += text;
      });
      const [code] = await once(sweeper, 'close');
      assert.equal(code, 0);
      assert.deepEqual(JSON.parse(output), [basename(directories[0] ?? '')]);
      for (const directory of directories) assert.equal(existsSync(directory), false, directory);
      assert.deepEqual(processesWithArgument(mark), []);
      // The live owner's scope and action cgroup are untouched.
      for (const directory of live.directories) assert.ok(existsSync(`${directory}/action-1`));
    } finally {
      killed.kill('SIGKILL');
      await liveAction.remove();
      closeAndAssertGone(live);
    }
  });

  it('gives each tree a process opens with one prefix a scope of its own (the demo opens several)', () => {
    const scopePrefix = uniqueScope('twice');
    const first = openCgroupTree({ scopePrefix, version: 'auto', scopeLimits: unboundedScope });
    try {
      const second = openCgroupTree({ scopePrefix, version: 'auto', scopeLimits: unboundedScope });
      try {
        for (const directory of [...first.directories, ...second.directories]) {
          assert.ok(existsSync(directory), directory);
        }
        assert.notDeepEqual(first.directories, second.directories);
      } finally {
        closeAndAssertGone(second);
      }
    } finally {
      closeAndAssertGone(first);
    }
  });

  it("bounds all actions together at the scope's pids.max and memory limit", async () => {
    const bounded = openTestTree('bounded', { memoryMaxBytes: 512 * MiB, pidsMax: 40 });
    const first = bounded.create('first', limits);
    const second = bounded.create('second', limits);
    try {
      const scope = (controller: string): string =>
        bounded.directories.find((directory) => directory.includes(`/${controller}`)) ??
        bounded.directories[0] ??
        '';
      const memoryFile = bounded.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
      assert.equal(readFileSync(`${scope('memory')}/${memoryFile}`, 'utf8'), `${512 * MiB}\n`);
      // Each loop's children stay until the cgroup is removed: the first holds 31 of the
      // scope's 40 (its own limit, 32, less itself), so the second, with itself, gets 8.
      const firstLoop = await runIn(first, forkLoop);
      const secondLoop = await runIn(second, forkLoop);
      assert.equal(firstLoop.code, 0);
      assert.equal(secondLoop.code, 0);
      assert.deepEqual([Number(firstLoop.stdout), Number(secondLoop.stdout)], [31, 8]);
      // The refused fork counts in the forking action's pids.events on v1 and cgroup2 before
      // 6.12, in the scope's (whose limit it hit) on cgroup2 since.
      const scopeHits = readKeyed(`${scope('pids')}/pids.events`).get('max') ?? 0n;
      assert.ok(second.usage().pidsLimitHits + Number(scopeHits) >= 1, 'no refused fork counted');
    } finally {
      await first.remove();
      await second.remove();
      closeAndAssertGone(bounded);
    }
  });
});
