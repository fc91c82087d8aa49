// The execution engine against the real kernel, on a busybox input root: special
// filesystems, isolation, errors and cancellation, in namespaces, shared and none modes.
// Every test proves afterwards that nothing is left: no mount, no fd, no child, no handle.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { mountat, unmountat } from '../../src/mounts/index.js';
import {
  ActionError,
  type ActionResult,
  defaultIsolation,
  type Engine,
  type IsolationMode,
} from '../../src/sandbox/index.js';
import {
  type DirectoryHandle,
  openDirectory,
  openDirectoryBeneath,
} from '../../src/syscalls/index.js';
import { type BuildDirectory, busyboxPath, makeBuildDirectory } from '../helpers/busybox.js';
import { type ActionSpec, openEngine, runAction, sweepStaleMounts } from '../helpers/engine.js';
import {
  leakFree as leakFreeBeneath,
  mountsBeneath,
  needsRoot,
  openFds,
} from '../helpers/leaks.js';
import { processesWithArgument, uniqueSleepDuration } from '../helpers/processes.js';

let build: BuildDirectory;
let buildDirectory: DirectoryHandle;
let actionCount = 0;

before(() => {
  if (needsRoot !== false) return;
  build = makeBuildDirectory();
  buildDirectory = openDirectory(build.path);
});

after(() => {
  if (needsRoot !== false) return;
  buildDirectory.close();
  build.remove();
});

interface Run {
  readonly result: ActionResult;
  readonly stdout: string;
  readonly stderr: string;
}

function spec(
  mode: IsolationMode,
  argv: readonly string[],
  overrides: Partial<ActionSpec> = {},
): ActionSpec {
  actionCount += 1;
  return {
    buildDirectory,
    inputRoot: 'root',
    arguments: argv,
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath: `stdout-${actionCount}`,
    stderrPath: `stderr-${actionCount}`,
    temporaryDirectory: 'tmp',
    isolation: { ...defaultIsolation, mode },
    ...overrides,
  };
}

async function run(
  mode: IsolationMode,
  argv: readonly string[],
  overrides: Partial<ActionSpec> = {},
): Promise<Run> {
  const action = spec(mode, argv, overrides);
  const result = await runAction(action);
  return {
    result,
    stdout: readFileSync(join(build.path, action.stdoutPath), 'utf8'),
    stderr: readFileSync(join(build.path, action.stderrPath), 'utf8'),
  };
}

function shell(
  mode: IsolationMode,
  script: string,
  overrides: Partial<ActionSpec> = {},
): Promise<Run> {
  return run(mode, ['sh', '-c', script], overrides);
}

/** A test that must leave nothing behind beneath the build directory (leaks.ts). */
function leakFree(name: string, body: () => Promise<void>): void {
  leakFreeBeneath(name, () => build.path, body);
}

async function rejectsWith(
  promise: Promise<unknown>,
  kind: ActionError['kind'],
  message: RegExp,
): Promise<ActionError> {
  const error = await promise.then(
    () => assert.fail('expected the action to be refused'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof ActionError, `expected an ActionError, got ${error}`);
  assert.equal(error.kind, kind, error.message);
  assert.match(error.message, message);
  return error;
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`runAction in ${mode} mode`, () => {
    leakFree('/proc/self/exe resolves', async () => {
      const { result, stdout } = await run(mode, ['readlink', '/proc/self/exe']);
      assert.equal(result.exitCode, 0);
      assert.equal(stdout, '/bin/busybox\n');
    });

    leakFree('/sys is read-only', async () => {
      const { result, stderr } = await shell(mode, 'touch /sys/x');
      assert.equal(result.exitCode, 1);
      assert.match(stderr, /Read-only file system/);
    });

    leakFree(
      '/dev/null and /dev/urandom are character devices; nothing lands in the input root',
      async () => {
        const { result, stdout } = await shell(
          mode,
          'test -c /dev/null && test -c /dev/urandom && echo hi > /dev/null && head -c 4 /dev/urandom | wc -c',
        );
        assert.equal(result.exitCode, 0);
        assert.equal(stdout.trim(), '4');
        assert.deepEqual(readdirSync(join(build.path, 'root/dev')), []);
      },
    );

    leakFree('/dev/stdin and /dev/fd resolve', async () => {
      const { result, stdout } = await shell(
        mode,
        'echo piped | cat /dev/stdin; ls /dev/fd/ | head -n 3',
      );
      assert.equal(result.exitCode, 0);
      assert.equal(stdout, 'piped\n0\n1\n2\n');
    });

    leakFree('the working directory is entered inside the input root', async () => {
      const { stdout } = await run(mode, ['pwd'], { workingDirectory: 'usr/bin' });
      assert.equal(stdout, '/usr/bin\n');
    });

    leakFree("the environment is exactly the request's", async () => {
      const { stdout } = await run(mode, ['env'], { environment: { PATH: '/bin', A: 'b c' } });
      assert.deepEqual(stdout.split('\n').sort(), ['', 'A=b c', 'PATH=/bin']);
    });

    leakFree('exit codes come back', async () => {
      const { result } = await shell(mode, 'exit 3');
      assert.equal(result.exitCode, 3);
      assert.equal(result.terminationSignal, null);
    });

    leakFree('a signal that killed the action comes back by name', async () => {
      const { result } = await shell(mode, 'kill -SEGV $$');
      assert.equal(result.exitCode, null);
      assert.equal(result.terminationSignal, 'SEGV');
    });

    leakFree("stdout and stderr land in their files; resource usage is the action's", async () => {
      const { result, stdout, stderr } = await shell(mode, 'echo out; echo err >&2');
      assert.equal(stdout, 'out\n');
      assert.equal(stderr, 'err\n');
      // The runner's own peak RSS (tens of MB) must not leak into the action's figures.
      assert.ok(result.resourceUsage.maximumResidentSetSizeBytes > 0);
      assert.ok(result.resourceUsage.maximumResidentSetSizeBytes < 16 * 1024 * 1024);
    });

    leakFree("the request's temporary directory is /tmp", async () => {
      const { result } = await shell(mode, `echo ${mode} > /tmp/written`);
      assert.equal(result.exitCode, 0);
      assert.equal(readFileSync(join(build.path, 'tmp/written'), 'utf8'), `${mode}\n`);
    });

    leakFree('a background process is gone when the action returns', async () => {
      const marker = `31${mode === 'namespaces' ? 1 : 2}37`;
      const { result } = await shell(mode, `sleep ${marker} & echo started`);
      assert.equal(result.exitCode, 0);
      assert.deepEqual(processesWithArgument(marker), []);
    });

    leakFree('the action runs with the requested credentials', async () => {
      const { stdout } = await shell(mode, 'id -u; id -g; id -G', {
        credentials: { uid: 65534, gid: 65534, additionalGroups: [65533] },
      });
      assert.equal(stdout, '65534\n65534\n65534 65533\n');
    });

    leakFree('aborting kills the whole tree and rejects with an AbortError', async () => {
      const fifo = join(build.path, 'tmp', `ready-${mode}`);
      // Node has no mkfifo; the action opens the fifo once it has started its background job.
      execFileSync(busyboxPath, ['mkfifo', '-m', '666', fifo]);
      const controller = new AbortController();
      const marker = uniqueSleepDuration();
      const running = runAction(
        spec(mode, ['sh', '-c', `sleep ${marker} & echo > /tmp/ready-${mode}; wait`], {
          signal: controller.signal,
        }),
      );
      await readFile(fifo);
      controller.abort();
      await assert.rejects(running, { name: 'AbortError' });
      assert.deepEqual(processesWithArgument(marker), []);
    });

    leakFree('a timeout does the same', async () => {
      const marker = uniqueSleepDuration();
      await assert.rejects(run(mode, ['sleep', marker], { signal: AbortSignal.timeout(100) }), {
        name: 'AbortError',
      });
      assert.deepEqual(processesWithArgument(marker), []);
    });

    leakFree('a missing working directory is reported with the failed step intact', async () => {
      const error = await rejectsWith(
        run(mode, ['true'], { workingDirectory: 'missing' }),
        'invalidArgument',
        /working directory "missing"/,
      );
      assert.equal(error.cause?.code, 'ENOENT');
      assert.equal(error.cause?.syscall, 'openat2');
      assert.equal(error.cause?.path, 'missing');
    });

    leakFree('a symlink as mountpoint is refused and names it', async () => {
      const root = join(build.path, `hostile-${mode}`);
      mkdirSync(join(root, 'bin'), { recursive: true });
      symlinkSync('../../../../etc', join(root, 'proc'));
      try {
        const error = await rejectsWith(
          run(mode, ['/bin/true'], { inputRoot: `hostile-${mode}` }),
          'invalidArgument',
          /\/proc/,
        );
        assert.equal(error.cause?.code, 'ELOOP');
      } finally {
        rmSync(root, { recursive: true });
      }
    });
  });
}

describe('runAction in namespaces mode only', () => {
  leakFree("/proc lists only the action's processes", async () => {
    const { stdout } = await run('namespaces', ['ls', '-1', '/proc']);
    // The init (1) and ls (2).
    assert.deepEqual(
      stdout.split('\n').filter((entry) => /^\d+$/.test(entry)),
      ['1', '2'],
    );
  });

  leakFree('a uid-0 action cannot mount, mknod a block device or write /proc/sys', async () => {
    const { stdout } = await shell(
      'namespaces',
      'mount -t tmpfs none /tmp 2>/dev/null || echo no-mount; ' +
        'mknod /tmp/disk b 8 0 2>/dev/null || echo no-mknod; ' +
        '(echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo no-sysctl',
    );
    assert.equal(stdout, 'no-mount\nno-mknod\nno-sysctl\n');
  });
});

describe('runAction settings', () => {
  leakFree('by default a new network namespace with only loopback, up', async () => {
    const { stdout } = await shell(
      'namespaces',
      'ls /sys/class/net; cat /sys/class/net/lo/operstate',
    );
    assert.match(stdout, /^lo\n(unknown|up)\n$/);
  });

  leakFree('network false: the runner’s network namespace', async () => {
    const { stdout } = await shell('namespaces', 'readlink /proc/self/ns/net', {
      isolation: { ...defaultIsolation, network: false },
    });
    assert.equal(stdout, `${readlinkSync('/proc/self/ns/net')}\n`);
  });

  /** The action's network namespace, whether it was made ahead, and its interfaces. */
  async function networkOf(
    engine: Engine,
    mode: IsolationMode,
  ): Promise<{ namespace: string; preparedAhead: unknown; interfaces: string }> {
    const action = spec(mode, [
      'sh',
      '-c',
      // /proc/net, not /sys: shared mode's sysfs is the runner's mount, of its namespace.
      "readlink /proc/self/ns/net; sed -n '3,$s/:.*//p' /proc/net/dev | tr -d ' '; ifconfig lo | grep -o UP",
    ]);
    const result = await engine.run(action);
    assert.equal(result.exitCode, 0);
    const [namespace = '', ...interfaces] = readFileSync(
      join(build.path, action.stdoutPath),
      'utf8',
    ).split('\n');
    return {
      namespace,
      preparedAhead: result.usage?.network?.preparedAhead,
      interfaces: interfaces.join('\n'),
    };
  }

  // Only lo, up.
  const onlyLoopbackUp = /^lo\nUP\n$/;

  for (const mode of ['namespaces', 'shared'] as const) {
    leakFree(`${mode}: actions in a row enter different namespaces made ahead`, async () => {
      await using engine = await openEngine(buildDirectory, {
        ...defaultIsolation,
        mode,
        preparedNetworkNamespaces: 2,
      });
      const first = await networkOf(engine, mode);
      const second = await networkOf(engine, mode);
      for (const network of [first, second]) {
        assert.equal(network.preparedAhead, true);
        assert.match(network.interfaces, onlyLoopbackUp);
        assert.notEqual(network.namespace, readlinkSync('/proc/self/ns/net'));
      }
      assert.notEqual(first.namespace, second.namespace);
    });
  }

  leakFree('preparedNetworkNamespaces 0: each action clones its own', async () => {
    await using engine = await openEngine(buildDirectory, {
      ...defaultIsolation,
      preparedNetworkNamespaces: 0,
    });
    const network = await networkOf(engine, 'namespaces');
    assert.equal(network.preparedAhead, false);
    assert.match(network.interfaces, onlyLoopbackUp);
    assert.notEqual(network.namespace, readlinkSync('/proc/self/ns/net'));
  });

  leakFree('an exhausted pool falls back to the clone flag, never waits', async () => {
    await using engine = await openEngine(buildDirectory, {
      ...defaultIsolation,
      preparedNetworkNamespaces: 1,
    });
    // Engine.run prepares before its first await: the first takes the only namespace, and
    // the refill cannot land before the others have prepared.
    const networks = await Promise.all([1, 2, 3].map(() => networkOf(engine, 'namespaces')));
    assert.deepEqual(
      networks.map((network) => network.preparedAhead),
      [true, false, false],
    );
    for (const network of networks) assert.match(network.interfaces, onlyLoopbackUp);
    assert.equal(new Set(networks.map((network) => network.namespace)).size, 3);
  });

  leakFree('the pool holds its namespaces until the engine is closed, then none', async () => {
    const namespaces = () =>
      [...openFds().values()].filter((target) => target.startsWith('net:[')).length;
    const before = namespaces();
    const engine = await openEngine(buildDirectory, {
      ...defaultIsolation,
      preparedNetworkNamespaces: 3,
    });
    try {
      assert.equal(namespaces(), before + 3);
      await networkOf(engine, 'namespaces');
    } finally {
      await engine.close();
    }
    assert.equal(namespaces(), before);
  });

  leakFree(
    'after settled, the runner holds the same fds after every round of actions',
    async () => {
      await using engine = await openEngine(buildDirectory, {
        ...defaultIsolation,
        preparedNetworkNamespaces: 2,
      });
      // What each fd is: the pool's namespaces are new ones each round, under any numbers.
      const held = () =>
        [...openFds().values()].map((target) => target.replace(/^net:\[\d+\]$/, 'net')).sort();
      let between: string[] | undefined;
      for (let round = 0; round < 3; round++) {
        // More at once than the pool holds: some enter one made ahead, the others clone their
        // own; some fail, one is refused after its namespace was taken.
        const outcomes = await Promise.allSettled(
          ['true', 'exit 3', 'true', 'exit 3', 'true', 'true'].map((script, index) =>
            engine.run(
              spec('namespaces', index === 5 ? ['no-such-program'] : ['sh', '-c', script]),
            ),
          ),
        );
        assert.deepEqual(
          outcomes.map((outcome) =>
            outcome.status === 'fulfilled' ? outcome.value.exitCode : 'rejected',
          ),
          [0, 3, 0, 3, 0, 'rejected'],
        );
        // The refills the takes started land after the results; the engine says when.
        await engine.settled();
        const fds = held();
        if (between === undefined) between = fds;
        else assert.deepEqual(fds, between, `round ${round}`);
      }
    },
  );

  leakFree(
    "the masks' templates live in the template namespace until the engine is closed",
    async () => {
      const namespaces = () =>
        [...openFds().values()].filter((target) => target.startsWith('mnt:[')).length;
      const before = namespaces();
      const engine = await openEngine(buildDirectory, defaultIsolation);
      const masked = ['/proc/acpi', '/sys/firmware'].filter(
        (path) => existsSync(path) && readdirSync(path).length > 0,
      );
      try {
        assert.equal(namespaces(), before + 1);
        // Two actions' directory masks: clones of one template, so one filesystem for all.
        const devices = [];
        for (let i = 0; i < 2; i++) {
          const action = spec('namespaces', ['stat', '-c', '%d', ...masked]);
          assert.equal((await engine.run(action)).exitCode, 0);
          const stdout = readFileSync(join(build.path, action.stdoutPath), 'utf8');
          devices.push(...stdout.trim().split('\n'));
        }
        assert.equal(devices.length, masked.length * 2);
        if (masked.length > 0) assert.equal(new Set(devices).size, 1, devices.join(' '));
      } finally {
        await engine.close();
      }
      assert.equal(namespaces(), before);
    },
  );

  leakFree('procfs options reach the mount', async () => {
    const { stdout } = await shell(
      'namespaces',
      'test -e /proc/sys || echo no-sys; test -e /proc/self/exe && echo self',
      {
        isolation: {
          ...defaultIsolation,
          filesystems: { ...defaultIsolation.filesystems, procOptions: { subset: 'pid' } },
        },
      },
    );
    assert.equal(stdout, 'no-sys\nself\n');
  });

  for (const mode of ['namespaces', 'shared'] as const) {
    leakFree(`missing mountpoints are created, or named when that is off (${mode})`, async () => {
      const root = join(build.path, `bare-${mode}`);
      mkdirSync(join(root, 'bin'), { recursive: true });
      execFileSync('cp', [busyboxPath, join(root, 'bin/sh')]);
      try {
        const isolation = { ...defaultIsolation, mode };
        const noCreate = {
          ...isolation,
          filesystems: { ...isolation.filesystems, createMountpoints: false },
        };
        const error = await rejectsWith(
          run(mode, ['/bin/sh', '-c', 'true'], { inputRoot: `bare-${mode}`, isolation: noCreate }),
          'invalidArgument',
          /mountpoint \/proc/,
        );
        assert.equal(error.cause?.code, 'ENOENT');
        const { stdout } = await run(mode, ['/bin/sh', '-c', 'echo /proc/self/fd/*'], {
          inputRoot: `bare-${mode}`,
          isolation,
        });
        assert.match(stdout, /\/proc\/self\/fd\/0/);
        assert.deepEqual(readdirSync(root).sort(), ['bin', 'dev', 'proc', 'sys', 'tmp']);
      } finally {
        rmSync(root, { recursive: true });
      }
    });
  }

  for (const mode of ['namespaces', 'shared'] as const) {
    leakFree(`a setup step the kernel refuses is the runner's error, named (${mode})`, async () => {
      const error = await rejectsWith(
        run(mode, ['true'], {
          isolation: {
            ...defaultIsolation,
            mode,
            filesystems: { ...defaultIsolation.filesystems, procOptions: { bogus: 'x' } },
          },
        }),
        'internal',
        /^Failed to mount proc at \/proc: EINVAL/,
      );
      assert.equal(error.cause?.syscall, 'fsconfig');
    });
  }

  leakFree('an environment that cannot be passed on is refused', async () => {
    await rejectsWith(
      run('namespaces', ['true'], { environment: { PATH: '/bin', 'A=B': 'c' } }),
      'invalidArgument',
      /environment variable/,
    );
  });
});

describe('runAction in shared mode only', () => {
  leakFree('an input root that another action has mounted into is refused', async () => {
    await using engine = await openEngine(buildDirectory, { ...defaultIsolation, mode: 'shared' });
    // Engine.run mounts before its first await, so the first action holds the root here.
    const first = engine.run(spec('shared', ['true']));
    await rejectsWith(
      engine.run(spec('shared', ['true'])),
      'invalidArgument',
      /in use by another action/,
    );
    assert.equal((await first).exitCode, 0);
    assert.equal((await run('shared', ['true'])).result.exitCode, 0);
  });

  leakFree(
    'a mount detached behind its back fails the unmount, named by its mountpoint',
    async () => {
      await using engine = await openEngine(buildDirectory, {
        ...defaultIsolation,
        mode: 'shared',
      });
      // The action has started (its stdin, the sandbox's /dev/null, is open) before /dev is
      // detached, and ends only after: a FIFO in the input root gates both.
      const gate = join(build.path, 'root/gate');
      execFileSync('mkfifo', ['-m', '666', gate]);
      try {
        const running = engine.run(spec('shared', ['sh', '-c', 'echo > /gate; cat /gate']));
        readFileSync(gate);
        execFileSync('umount', ['--lazy', join(build.path, 'root/dev')]);
        writeFileSync(gate, '');
        // Detaching /dev took what is mounted inside it along; the innermost fails first.
        await rejectsWith(running, 'internal', /^Failed to unmount: EINVAL: .*, umount2 'shm'$/);
      } finally {
        rmSync(gate);
      }
    },
  );
});

describe('runAction in none mode', () => {
  leakFree('/proc/self/exe does not resolve', async () => {
    const { result } = await run('none', ['readlink', '/proc/self/exe']);
    assert.equal(result.exitCode, 1);
  });
});

describe('runAction refuses requests', () => {
  leakFree('no arguments', async () => {
    await rejectsWith(
      run('namespaces', []),
      'invalidArgument',
      /Insufficient number of command arguments/,
    );
  });

  leakFree('a missing input root', async () => {
    await rejectsWith(
      run('namespaces', ['true'], { inputRoot: 'missing' }),
      'invalidArgument',
      /input root directory "missing"/,
    );
  });

  leakFree('a log path outside the build directory', async () => {
    await rejectsWith(
      run('namespaces', ['true'], { stdoutPath: 'hello/../../../../../../etc/passwd' }),
      'invalidArgument',
      /stdout path .*Path resolves to a location outside the build directory/,
    );
  });

  leakFree('an existing log file', async () => {
    writeFileSync(join(build.path, 'existing'), '');
    await rejectsWith(
      run('namespaces', ['true'], { stderrPath: 'existing' }),
      'invalidArgument',
      /stderr path "existing"/,
    );
  });

  leakFree('a working directory outside the input root', async () => {
    await rejectsWith(
      run('namespaces', ['true'], { workingDirectory: 'bin/../..' }),
      'invalidArgument',
      /outside the input root/,
    );
  });

  leakFree('an executable not in PATH', async () => {
    await rejectsWith(
      run('namespaces', ['nope'], { environment: { PATH: '/usr/bin:bin' } }),
      'invalidArgument',
      /^Cannot find executable "nope" in search paths "\/usr\/bin:bin"$/,
    );
    const logs = { stdoutPath: 'refused-stdout', stderrPath: 'refused-stderr' };
    await rejectsWith(
      run('namespaces', ['true'], { environment: {}, ...logs }),
      'invalidArgument',
      /^Cannot find executable "true" in search paths ""$/,
    );
    // As bb_runner: the program is looked up before the log files are created.
    assert.equal(existsSync(join(build.path, logs.stdoutPath)), false, 'stdout file created');
    assert.equal(existsSync(join(build.path, logs.stderrPath)), false, 'stderr file created');
  });

  leakFree('a relative PATH entry is taken against the working directory', async () => {
    const { stdout } = await run('namespaces', ['pwd'], {
      environment: { PATH: '../bin' },
      workingDirectory: 'usr',
    });
    assert.equal(stdout, '/usr\n');
  });

  for (const mode of ['namespaces', 'shared', 'none'] as const) {
    leakFree(`programs that cannot be started, in ${mode} mode`, async () => {
      const notExecutable = join(build.path, 'root/bin/picture.jpg');
      writeFileSync(notExecutable, Buffer.from([0xff, 0xd8, 0xff, 0xe0]));
      chmodSync(notExecutable, 0o755);
      const cases: [string, string][] = [
        ['/bin/missing', 'ENOENT'],
        ['/etc', 'EACCES'],
        ['/bin/picture.jpg', 'ENOEXEC'],
      ];
      for (const [program, code] of cases) {
        const error = await rejectsWith(
          run(mode, [program]),
          'invalidArgument',
          /^Failed to start process: /,
        );
        assert.equal(error.cause?.code, code);
      }
    });
  }
});

describe('sweepStaleMounts', () => {
  leakFree('detaches what shared mode mounts in input roots, and nothing else', async () => {
    // What a killed runner leaves: mounts whose handles are gone.
    using root = openDirectoryBeneath(buildDirectory, 'root');
    mountat(root, 'proc', { fstype: 'proc' }).close();
    const dev = mountat(root, 'dev', { fstype: 'tmpfs' });
    mountat(
      dev,
      'pts',
      { fstype: 'devpts', options: { newinstance: true } },
      { createMountpoint: true },
    ).close();
    dev.close();
    // An input root bound onto itself nosuid,nodev, with the special mounts beneath the bind.
    mkdirSync(join(build.path, 'bound/proc'), { recursive: true });
    using unbound = openDirectoryBeneath(buildDirectory, 'bound');
    const bound = mountat(unbound, '.', {
      bind: unbound,
      recursive: true,
      attributes: { nosuid: true, nodev: true },
      propagation: 'private',
    });
    mountat(bound, 'proc', { fstype: 'proc' }).close();
    bound.close();
    // Not ours: kept, and so is a directory bound onto itself without nosuid,nodev.
    mkdirSync(join(build.path, 'other'), { recursive: true });
    const other = mountat(buildDirectory, 'other', { fstype: 'tmpfs' });
    mkdirSync(join(build.path, 'self'), { recursive: true });
    using unboundSelf = openDirectoryBeneath(buildDirectory, 'self');
    const self = mountat(unboundSelf, '.', { bind: unboundSelf });
    try {
      assert.deepEqual(
        await sweepStaleMounts(build.path, { ...defaultIsolation, mode: 'shared' }),
        ['root/proc', 'root/dev', 'bound'],
      );
      assert.deepEqual(mountsBeneath(build.path), [
        join(build.path, 'other'),
        join(build.path, 'self'),
      ]);
    } finally {
      unmountat(self);
      unmountat(other);
    }
  });
});
