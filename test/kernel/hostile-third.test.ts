// A third review's attacks (2026-12-01, on the session's first changes: network namespaces
// made ahead, the seccomp filter as a binary tree, masks cloned from templates, clone3 into
// a cgroup), tried as a hostile action would from inside its sandbox in namespaces, shared
// and rootless mode (the runner as root), in the style of test/kernel/hostile-review.test.ts:
// each case ends with nothing left and the host unchanged. Those marked `todo` are open (the
// reason says why); the others are attacks that were tried and held, kept so that they stay
// held.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn as spawnProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { defaultIsolation, Engine } from '../../src/sandbox/index.js';
import { makeFifo } from '../helpers/busybox.js';
import { closeAndAssertGone, limits, needsCgroups, openTestTree } from '../helpers/cgroups.js';
import { openEngine } from '../helpers/engine.js';
import { ownMountNamespace } from '../helpers/hostile.js';
import { HostileActions } from '../helpers/hostile-actions.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';

// The host these tests compare before and after is this file's alone.
await ownMountNamespace(import.meta.url);

type Mode = 'namespaces' | 'shared' | 'rootless';
const modes: readonly Mode[] = ['namespaces', 'shared', 'rootless'];

/** The C source of this review's attack helper. */
const thirdSource = new URL('../../../test/helpers/hostile-third.c', import.meta.url).pathname;

let third: string;
const suite = new HostileActions('chroot-runner-third-', () => ({ 'bin/third': third }));
const { contained, actionDirectory, spec, run } = suite;

before(() => {
  if (needsRoot !== false) return;
  third = join(suite.build.path, 'third');
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', third, thirdSource]);
});

/** Every refusal of the default policy as the helper names it, and its errno. */
const int80Refusals = [
  ...[
    'unshare-newuser',
    'clone-newuser',
    'ioctl-tiocsti',
    'ioctl-tioclinux',
    'add_key',
    'request_key',
    'keyctl',
    'chmod-setuid',
    'fchmod-setgid',
    'fchmodat-setuid',
    'fchmodat2-setuid',
    'mknod-setuid',
    'mknodat-setgid',
    'open-creat-setuid',
    'openat-tmpfile-setgid',
    'creat-setuid',
  ].map((name) => `${name} EPERM`),
  'openat2 ENOSYS',
  ...[
    'bpf',
    'perf_event_open',
    'userfaultfd',
    'io_uring_setup',
    'io_uring_enter',
    'io_uring_register',
    'kexec_load',
    'init_module',
    'finit_module',
    'delete_module',
    'socket-vsock',
    'open_by_handle_at',
    'socketcall-vsock',
  ].map((name) => `${name} EPERM`),
];

/** Masks of every kind this kernel has: files (a clone of /dev/null) and directories (an
 * empty tmpfs), in /proc and in /sys; world-readable, so masked for every action (the host
 * root's own files, such as /proc/kcore, are refused instead: hostile-review's R5). */
const masks = [
  '/proc/keys',
  '/proc/key-users',
  '/sys/kernel/vmcoreinfo',
  '/proc/acpi',
  '/sys/firmware',
].filter((path) => existsSync(path) && (!path.startsWith('/sys/f') || readdirSync(path).length));

for (const mode of modes) {
  describe(`a hostile action stays inside, third review (${mode})`, () => {
    contained(
      'T1. the filter refuses through the i386 entry (int 0x80) what it refuses on x86_64',
      {},
      async () => {
        const stdout = await run(spec(mode, actionDirectory(), 'third int80-refusals'));
        // clone3 is ENOSYS on x86_64 too; as a 32-bit call it is tried without arguments.
        const lines = stdout.split('\n').filter((line) => line !== '' && line !== 'clone3 ENOSYS');
        assert.deepEqual(lines.sort(), [...int80Refusals].sort(), stdout);
      },
    );

    contained(
      'T2. a 32-bit program still creates an ordinary socket (socketcall), only vsock refused',
      {
        todo:
          'libseccomp turns the vsock rule (socket, domain 40) into socketcall(SYS_SOCKET) on x86, ' +
          'whose domain is in memory: every socket of a 32-bit glibc program (it uses socketcall) ' +
          'is refused EPERM, AF_UNIX and AF_INET too; the choice (refuse vsock there, or 32-bit ' +
          'sockets) is the policy owner’s',
      },
      async () => {
        const stdout = await run(spec(mode, actionDirectory(), 'third socketcall-socket 1'));
        assert.equal(stdout, 'socketcall-socket 1 ok\n');
      },
    );

    contained(
      'T3. in a user namespace of its own it cannot unmount a mask or make one writable (the masks share one template)',
      {},
      async () => {
        assert.ok(masks.length >= 3, `this kernel has too few masked places: ${masks}`);
        const action = spec(mode, actionDirectory(), `third nested-masks ${masks.join(' ')}`, {
          isolation: {
            ...defaultIsolation,
            mode,
            seccomp: { enabled: true, allow: ['user_namespaces'] },
          },
        });
        const stdout = await run(action);
        // A chrooted process (shared mode) is refused a user namespace by the kernel.
        const expected = mode === 'shared' ? /^unshare-refused EPERM\n$/ : /^nested-done\n$/;
        assert.match(stdout, expected, stdout);
      },
    );

    // namespaces mode's /dev is one filesystem, the template namespace's, for all the engine's
    // actions: what one wrote there, every later one would find.
    if (mode === 'namespaces')
      contained(
        "T3b. /dev, shared by the engine's actions, takes no write from any: not as the host's root, nor in a user namespace of its own",
        {},
        async () => {
          // The host's ids (no user namespace of its own): uid 0 with Docker's capabilities.
          const { actionUserNamespace: _, ...hostIds } = defaultIsolation;
          await using engine = await openEngine(suite.buildDirectory, {
            ...hostIds,
            mode,
            seccomp: { enabled: true, allow: ['user_namespaces'] },
          });
          const attack =
            'touch /dev/planted 2>/dev/null && echo touched; ' +
            'mkdir /dev/planted-directory 2>/dev/null && echo made; ' +
            'ln -s /proc/self/fd/1 /dev/planted-link 2>/dev/null && echo linked; ' +
            'chmod 600 /dev/null 2>/dev/null && echo chmod; ' +
            'touch /dev/zero 2>/dev/null && echo touched-zero; ' +
            'mount -o remount,rw /dev 2>/dev/null && echo remounted; ' +
            'umount -l /dev 2>/dev/null && echo unmounted; ' +
            'third nested-masks /dev';
          const look = 'ls -a /dev | grep planted; stat -c %a /dev/null; true';
          const outputs: string[] = [];
          for (const script of [attack, look]) {
            const {
              buildDirectory: _b,
              isolation: _i,
              ...action
            } = spec(mode, actionDirectory(), script);
            assert.equal((await engine.run(action)).exitCode, 0);
            outputs.push(await readFile(join(suite.build.path, action.stdoutPath), 'utf8'));
          }
          // A clone of /dev alone is refused: the mounts inside it are locked to it there.
          assert.deepEqual(outputs, ['open_tree-failed /dev EINVAL\nnested-done\n', '666\n']);
        },
      );

    // Rootless mode makes its network namespace inside the action's own user namespace: no pool.
    if (mode !== 'rootless')
      contained(
        'T4. a network namespace made ahead is entered by one action only, and holds nothing of before',
        {},
        async () => {
          await using engine = await openEngine(suite.buildDirectory, {
            ...defaultIsolation,
            mode,
            preparedNetworkNamespaces: 2,
          });
          const name = actionDirectory((_root, directory) => {
            for (const fifo of ['ready', 'gate']) makeFifo(join(directory, 'tmp', fifo));
          });
          const {
            buildDirectory: _,
            isolation: __,
            ...holding
          } = spec(mode, name, 'third abstract-hold /tmp/ready /tmp/gate');
          const tmp = join(suite.build.path, name, 'tmp');
          const held = engine.run(holding);
          // Whatever else an action sees of its network: only loopback, no socket of another.
          const look =
            'tail -n +3 /proc/net/dev | cut -d: -f1; tail -n +2 /proc/net/unix | wc -l; ' +
            'third abstract-hold';
          const seen: string[] = [];
          const preparedAhead: unknown[] = [];
          try {
            await readFile(join(tmp, 'ready'), 'utf8');
            for (let index = 0; index < 3; index++) {
              const {
                buildDirectory: _b,
                isolation: _i,
                ...other
              } = spec(mode, actionDirectory(), look);
              const result = await engine.run(other);
              assert.equal(result.exitCode, 0);
              preparedAhead.push(result.usage?.network?.preparedAhead);
              seen.push(await readFile(join(suite.build.path, other.stdoutPath), 'utf8'));
            }
          } finally {
            await writeFile(join(tmp, 'gate'), 'go\n');
          }
          assert.equal((await held).exitCode, 0);
          assert.equal(
            await readFile(join(suite.build.path, holding.stdoutPath), 'utf8'),
            'bound\nreleased\n',
          );
          // The pool's namespaces, not only clones' own (the engine waits for no refill).
          assert.ok(preparedAhead.includes(true), `${preparedAhead}`);
          for (const stdout of seen) assert.match(stdout, /^ *lo\n0\nbound\n$/, stdout);
          await engine.settled();
        },
      );
  });
}

describe('a runner killed while an action is set up, third review', () => {
  it('T5. takes the action with it: a child whose runner died before its parent death signal was set does not run on', {
    skip: needsRoot,
  }, async () => {
    const state = processState();
    const directory = join(suite.build.path, 'orphaned');
    mkdirSync(directory, { recursive: true });
    const started = join(directory, 'started');
    const gate = join(directory, 'gate');
    for (const fifo of [started, gate]) makeFifo(fifo);
    const script = new URL('../helpers/orphaned-plan.js', import.meta.url).pathname;
    const runner: ChildProcess = spawnProcess(process.execPath, [script, started, gate], {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    });
    const output = runner.stdio[3];
    if (output === null || output === undefined) throw new Error('no fd 3');
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve) => {
      output.on('data', (chunk: Buffer) => chunks.push(chunk));
      output.on('end', resolve);
    });
    const exited = new Promise((resolve) => runner.once('exit', resolve));
    // Its stdio closed too, not only its exit: nothing of it is left for the next test.
    const closed = new Promise((resolve) => runner.once('close', resolve));
    // The child is between its clone and its parent death signal: its runner dies.
    await (await open(started, 'r')).close();
    runner.kill('SIGKILL');
    await exited;
    await (await open(gate, 'w')).close();
    // Every writer of the pipe has closed it: the runner (dead) and the child (exited).
    await ended;
    await closed;
    assert.equal(Buffer.concat(chunks).toString(), '', 'the action ran on without its runner');
    assertNothingLeft(state, [suite.build.path]);
  });
});

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`its cgroup, made ahead, third review (${mode})`, () => {
    contained(
      'T6. its daemon dies with it, its cgroup made ahead is its alone and empty after it',
      async (t) => {
        if (needsCgroups !== false) return t.skip(needsCgroups);
        const tree = openTestTree(`third-${mode}`);
        /** The cgroups in the tree's scope, the same on every hierarchy. */
        const inScope = () => {
          const [first = [], ...others] = tree.directories.map((directory) =>
            readdirSync(directory, { withFileTypes: true })
              .filter((entry) => entry.isDirectory())
              .map((entry) => entry.name)
              .sort(),
          );
          for (const names of others) assert.deepEqual(names, first);
          return first;
        };
        try {
          const engine = await Engine.open({
            buildDirectory: suite.build.path,
            isolation: { ...defaultIsolation, mode, preparedNetworkNamespaces: 0 },
            // A CPU weight, so that v1's cpu hierarchy holds the action's cgroups too.
            cgroups: { tree, limits: { ...limits, cpuWeight: 100 }, preparedAhead: 2 },
          });
          try {
            const ahead = inScope();
            assert.equal(ahead.length, 2, `${ahead}`);
            // A daemon of its own session, stdio elsewhere: the result does not wait for it.
            const {
              buildDirectory: _,
              isolation: __,
              ...action
            } = spec(
              mode,
              actionDirectory(),
              'setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo started',
            );
            const result = await engine.run(action);
            assert.equal(result.exitCode, 0);
            await engine.settled();
            const after = inScope();
            // One of those made ahead was the action's: on v2 removed once its daemon died,
            // and a new one took its place; on v1 given back to the pool, empty (or removed,
            // had the action left charges). The other waits either way.
            const kept = after.filter((name) => ahead.includes(name)).length;
            if (tree.version === 2) assert.equal(kept, 1, `${after}`);
            else assert.ok(kept >= 1, `${after}`);
            assert.equal(after.length, 2, `${after}`);
            for (const directory of tree.directories) {
              for (const name of after) {
                const procs = readFileSync(join(directory, name, 'cgroup.procs'), 'utf8');
                assert.equal(procs, '', `${directory}/${name} holds processes`);
              }
            }
          } finally {
            await engine.close();
          }
          assert.deepEqual(inScope(), []);
        } finally {
          closeAndAssertGone(tree);
        }
      },
    );
  });
}
