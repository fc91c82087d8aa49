// A runner's cgroup tree in a process of its own, for tests that SIGKILL its owner:
//   node cgroup-owner.js hold <prefix> <sleep duration>: opens a tree with that scope prefix,
//     runs `sleep <duration>` in an action cgroup of it, prints the tree's directories as
//     JSON once the sleep is in, and waits to be killed.
//   node cgroup-owner.js sweep <prefix>: opens a tree with that prefix, sweeps, prints what
//     it removed as JSON, closes the tree and exits.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openCgroupTree } from '../../src/cgroups/index.js';

const [command, scopePrefix, duration] = process.argv.slice(2);
if (scopePrefix === undefined)
  throw new Error('usage: cgroup-owner hold|sweep <prefix> [duration]');
const tree = openCgroupTree({
  scopePrefix,
  version: 'auto',
  scopeLimits: { memoryMaxBytes: null, pidsMax: null },
});
if (command === 'sweep') {
  const swept = await tree.sweep();
  tree.close();
  process.stdout.write(`${JSON.stringify(swept)}\n`);
} else {
  const cgroup = tree.create('action-1', {
    memoryMaxBytes: null,
    memoryHighBytes: null,
    swapMaxBytes: null,
    pidsMax: null,
    cpuMaxMillicores: null,
    // A CPU limit: on v1 the cgroup is on every hierarchy then, cpu's too.
    cpuWeight: 100,
  });
  // The shell joins through fds 3, 4, …, then execs the sleep without the stdout pipe: the
  // pipe's end says the sleep runs in the cgroup.
  const join = cgroup.joinDirectories
    .map((_, index) => `echo 0 > /proc/self/fd/${3 + index}/cgroup.procs`)
    .join(' && ');
  const child = spawn(
    '/bin/sh',
    ['-c', `${join} || exit 125; exec sleep ${duration} > /dev/null`],
    {
      stdio: ['ignore', 'pipe', 'inherit', ...cgroup.joinDirectories.map((handle) => handle.fd)],
    },
  );
  child.stdout?.resume();
  if (child.stdout !== null) await once(child.stdout, 'close');
  if (child.exitCode !== null) throw new Error(`the sleep's shell exited with ${child.exitCode}`);
  process.stdout.write(`${JSON.stringify({ directories: tree.directories })}\n`);
  setInterval(() => {}, 1 << 30);
}
