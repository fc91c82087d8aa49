// Hostile input roots, requests and actions against the engine (runAction), in namespaces and
// shared mode. Every case ends with proof that nothing outside the input root changed: the
// host's whole mount table, /dev, /, kernel settings and a canary directory outside, plus no
// fd, child or handle left. See SECURITY.md for the threat model these cases cover.
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { ActionError, type ActionResult, defaultIsolation } from '../../src/sandbox/index.js';
import {
  constants,
  type DirectoryHandle,
  mknodat,
  openHandleCount,
} from '../../src/syscalls/index.js';
import type { BuildDirectory } from '../helpers/busybox.js';
import { type ActionSpec, runAction } from '../helpers/engine.js';
import {
  assertHostUnchanged,
  type HostSnapshot,
  mountsOutside,
  openHostileFixture,
  Swapper,
} from '../helpers/hostile.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';

type Mode = 'namespaces' | 'shared' | 'rootless';
const modes: readonly Mode[] = ['namespaces', 'shared', 'rootless'];

let build: BuildDirectory;
let buildDirectory: DirectoryHandle;
let canary: string;
let helper: string;
let host: HostSnapshot;
let roots = 0;
let logs = 0;

before(() => {
  if (needsRoot !== false) return;
  ({ build, buildDirectory, canary, helper, host } = openHostileFixture('chroot-runner-hostile-'));
});

after(() => {
  if (needsRoot !== false) return;
  buildDirectory.close();
  build.remove();
});

/** A test after which nothing outside the input roots has changed and nothing is left. */
function contained(name: string, body: (t: TestContext) => Promise<void>): void {
  it(name, { skip: needsRoot, timeout: 120_000 }, async (t) => {
    const state = processState();
    const handles = openHandleCount();
    await body(t);
    assertNothingLeft(state, [build.path]);
    assert.equal(openHandleCount(), handles, 'handles left open');
    assertHostUnchanged(host, canary, build.path);
  });
}

/** A fresh action directory `<name>/{root,tmp}` with a busybox root (and the attack helper at
 * /bin/hostile); `shape` makes it hostile. */
function actionDirectory(shape: (root: string, directory: string) => void = () => {}): string {
  const name = `action-${roots++}`;
  const directory = join(build.path, name);
  populateBusyboxRoot(join(directory, 'root'));
  copyFileSync(helper, join(directory, 'root/bin/hostile'));
  mkdirSync(join(directory, 'tmp'));
  shape(join(directory, 'root'), directory);
  return name;
}

function spec(
  mode: Mode,
  name: string,
  argv: readonly string[],
  overrides: Partial<ActionSpec> = {},
): ActionSpec {
  logs++;
  return {
    buildDirectory,
    inputRoot: `${name}/root`,
    arguments: argv,
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath: `${name}/stdout-${logs}`,
    stderrPath: `${name}/stderr-${logs}`,
    temporaryDirectory: `${name}/tmp`,
    isolation: { ...defaultIsolation, mode },
    ...overrides,
  };
}

type Outcome = { result: ActionResult; stdout: string; stderr: string } | { error: ActionError };

async function attempt(action: ActionSpec): Promise<Outcome> {
  try {
    const result = await runAction(action);
    const read = (path: string) => readFileSync(join(build.path, path), 'utf8');
    return { result, stdout: read(action.stdoutPath), stderr: read(action.stderrPath) };
  } catch (error) {
    assert.ok(error instanceof ActionError, `expected an ActionError, got ${String(error)}`);
    return { error };
  }
}

async function refused(action: ActionSpec, message: RegExp, code?: string): Promise<ActionError> {
  const outcome = await attempt(action);
  assert.ok(
    'error' in outcome,
    `expected a refusal, but the action ran: ${'stderr' in outcome ? outcome.stderr : ''}`,
  );
  assert.match(outcome.error.message, message);
  if (code !== undefined) assert.equal(outcome.error.cause?.code, code, outcome.error.message);
  return outcome.error;
}

async function ran(action: ActionSpec): Promise<{ stdout: string; stderr: string }> {
  const outcome = await attempt(action);
  assert.ok(
    'result' in outcome,
    `expected the action to run: ${'error' in outcome ? outcome.error.message : ''}`,
  );
  assert.equal(outcome.result.exitCode, 0, outcome.stderr);
  return outcome;
}

const mountpoints = ['proc', 'sys', 'dev', 'tmp'] as const;

/** Symlink targets that would redirect a mount out of the input root. */
function symlinkTargets(): [string, string][] {
  return [
    ['/', '/'],
    ['/etc', '/etc'],
    ['/dev', '/dev'],
    ['../../..', '../../..'],
    ['the canary', canary],
    ['a file', 'bin/busybox'],
  ];
}

for (const mode of modes) {
  describe(`hostile input roots (${mode})`, () => {
    contained('a mountpoint that is a symlink is refused, whatever it points at', async () => {
      for (const mountpoint of mountpoints) {
        for (const [label, target] of symlinkTargets()) {
          const name = actionDirectory((root) => {
            rmdirSync(join(root, mountpoint));
            symlinkSync(target, join(root, mountpoint));
          });
          const error = await refused(
            spec(mode, name, ['/bin/true']),
            new RegExp(`mountpoint /${mountpoint} `),
            'ELOOP',
          );
          assert.equal(error.kind, 'invalidArgument', `${mountpoint} → ${label}`);
        }
      }
    });

    contained('dev/pts and dev/shm as symlinks are covered by the fresh /dev', async () => {
      for (const inner of ['pts', 'shm']) {
        for (const [, target] of symlinkTargets()) {
          const name = actionDirectory((root) => symlinkSync(target, join(root, 'dev', inner)));
          const { stdout } = await ran(
            spec(mode, name, [
              'sh',
              '-c',
              'test -c /dev/pts/ptmx && test -d /dev/shm -a ! -L /dev/shm && echo fresh',
            ]),
          );
          assert.equal(stdout, 'fresh\n');
        }
      }
    });

    contained('a mountpoint that is a file, FIFO, socket or device node is refused', async () => {
      const kinds: [string, number, number][] = [
        ['file', constants.S_IFREG, 0],
        ['fifo', constants.S_IFIFO, 0],
        ['socket', constants.S_IFSOCK, 0],
        ['character device', constants.S_IFCHR, (1 << 8) | 3],
      ];
      for (const mountpoint of mountpoints) {
        for (const [label, type, device] of kinds) {
          const name = actionDirectory((root) => {
            rmdirSync(join(root, mountpoint));
            mknodat(null, join(root, mountpoint), type | 0o644, device >> 8, device & 0xff);
          });
          const error = await refused(
            spec(mode, name, ['/bin/true']),
            new RegExp(`mountpoint /${mountpoint} .*ENOTDIR`),
            'ENOTDIR',
          );
          assert.equal(error.kind, 'invalidArgument', `${mountpoint} as ${label}`);
        }
      }
    });

    contained('a symlink in the working directory’s parents resolves inside the root', async () => {
      const name = actionDirectory((root) => {
        symlinkSync('/', join(root, 'up'));
        symlinkSync('../../..', join(root, 'climb'));
        symlinkSync(canary, join(root, 'canary'));
      });
      const write = ['sh', '-c', 'pwd; touch written'];
      assert.equal(
        (await ran(spec(mode, name, write, { workingDirectory: 'up/etc' }))).stdout,
        '/etc\n',
      );
      assert.ok(existsSync(join(build.path, name, 'root/etc/written')));
      assert.equal(
        (
          await ran(
            spec(mode, name, write, {
              workingDirectory: 'climb/etc',
              stdoutPath: `${name}/o2`,
              stderrPath: `${name}/e2`,
            }),
          )
        ).stdout,
        '/etc\n',
      );
      await refused(
        spec(mode, name, write, {
          workingDirectory: 'canary',
          stdoutPath: `${name}/o3`,
          stderrPath: `${name}/e3`,
        }),
        /working directory "canary"/,
        'ENOENT',
      );
    });

    contained(
      'a symlink in the parents of a log path, the temporary directory or the input root is refused',
      async () => {
        const name = actionDirectory((_, directory) => {
          symlinkSync(canary, join(directory, 'out'));
          symlinkSync('root', join(directory, 'rootlink'));
          symlinkSync('tmp', join(directory, 'tmplink'));
        });
        const argv = ['/bin/true'];
        await refused(
          spec(mode, name, argv, { stdoutPath: `${name}/out/stdout` }),
          /stdout path .*symbolic link \(ELOOP: .*, openat2 /,
          'ELOOP',
        );
        await refused(
          spec(mode, name, argv, { stderrPath: `${name}/out/stderr` }),
          /stderr path .*symbolic link \(ELOOP: .*, openat2 /,
          'ELOOP',
        );
        await refused(
          spec(mode, name, argv, { temporaryDirectory: `${name}/tmplink` }),
          /temporary directory .*symbolic link \(ELOOP: .*, openat2 /,
          'ELOOP',
        );
        await refused(
          spec(mode, name, argv, { temporaryDirectory: `${name}/out` }),
          /temporary directory .*symbolic link \(ELOOP: .*, openat2 /,
          'ELOOP',
        );
        await refused(
          spec(mode, name, argv, { inputRoot: `${name}/rootlink` }),
          /input root directory .*symbolic link \(ELOOP: .*, openat2 /,
          'ELOOP',
        );
      },
    );
  });

  describe(`hostile path fields (${mode})`, () => {
    const longName = 'n'.repeat(256);
    const overPathMax = 'p/'.repeat(2100);
    const deep = `${'d/'.repeat(1000)}x`;
    const climbing = ['..', '../x', 'a/../../x', '/', '/etc', 'a\0b', longName, overPathMax, deep];

    const fields: [keyof ActionSpec, RegExp][] = [
      ['inputRoot', /input root directory|NUL/],
      ['stdoutPath', /stdout path|NUL/],
      ['stderrPath', /stderr path|NUL/],
      ['temporaryDirectory', /temporary directory|NUL/],
    ];
    for (const [field, names] of fields) {
      contained(
        `${field}: climbing, absolute, NUL, over-long and deep paths are refused`,
        async () => {
          for (const value of climbing) {
            const name = actionDirectory();
            const action = spec(mode, name, ['/bin/true'], { [field]: value });
            const error = await refused(action, names);
            assert.equal(
              error.kind,
              'invalidArgument',
              `${field} ${JSON.stringify(value.slice(0, 20))}: ${error.message}`,
            );
          }
        },
      );
    }

    contained(
      'empty paths: the build directory is no input root or log file; no temporary directory is fine',
      async () => {
        const name = actionDirectory();
        await refused(
          spec(mode, name, ['/bin/true'], { inputRoot: '' }),
          /input root|Failed to start|executable/,
        );
        await refused(spec(mode, name, ['/bin/true'], { stdoutPath: '' }), /stdout path/);
        await refused(spec(mode, name, ['/bin/true'], { stderrPath: '' }), /stderr path/);
        await ran(spec(mode, name, ['/bin/true'], { temporaryDirectory: '' }));
      },
    );

    contained(
      'workingDirectory: climbing, NUL, over-long and deep paths are refused; absolute ones stay inside',
      async () => {
        for (const value of ['..', '../x', 'a/../../x', 'a\0b', longName, overPathMax, deep]) {
          const name = actionDirectory();
          const error = await refused(
            spec(mode, name, ['/bin/true'], { workingDirectory: value }),
            /[Ww]orking directory/,
          );
          assert.equal(error.kind, 'invalidArgument', error.message);
        }
        for (const value of ['/', '/etc', '', '.']) {
          const name = actionDirectory();
          await ran(spec(mode, name, ['/bin/true'], { workingDirectory: value }));
        }
      },
    );

    contained(
      'argv[0]: climbing, NUL, over-long and deep names are refused or not found',
      async () => {
        for (const value of ['..', 'a\0b', longName, `/${overPathMax}`, `/${deep}`, '']) {
          const name = actionDirectory();
          const error = await refused(
            spec(mode, name, [value]),
            /Failed to start process|Cannot find executable|NUL/,
          );
          assert.equal(error.kind, 'invalidArgument', error.message);
        }
        // ".." at the root is the root: this is the input root's own /bin/true.
        await ran(spec(mode, actionDirectory(), ['../../../bin/true']));
      },
    );
  });

  describe(`hostile actions as uid 0 (${mode})`, () => {
    contained(
      'cannot unmount, remount or mount over /proc, /sys and /dev, mknod, or write /proc/sys',
      async () => {
        const attempts = [
          ['umount-proc', 'umount /proc'],
          ['umount-sys', 'umount -l /sys'],
          ['remount-sys', 'mount -o remount,rw /sys'],
          ['remount-proc', 'mount -o remount,ro /proc'],
          ['mount-dev', 'mount -t tmpfs none /dev'],
          ['mknod-block', 'mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk'],
          ['sysctl', 'echo escaped > /proc/sys/kernel/domainname'],
          ['sysrq', 'echo h > /proc/sysrq-trigger'],
          ['sys-write', 'echo 1 > /sys/kernel/profiling'],
        ];
        const script = attempts
          .map(
            ([label, command]) =>
              `(${command}) 2>/dev/null && echo VIOLATED-${label} || echo refused-${label}`,
          )
          .join('; ');
        const name = actionDirectory();
        const { stdout } = await ran(spec(mode, name, ['sh', '-c', script]));
        assert.equal(stdout, attempts.map(([label]) => `refused-${label}\n`).join(''));
      },
    );

    // namespaces mode makes its nodes anew; shared and rootless mode (and namespaces mode
    // without CAP_MKNOD) bind the host's, read-only so that a root action cannot change them.
    contained('cannot change the host’s device nodes through its /dev', async () => {
      const before = [statSync('/dev/full'), statSync('/dev/zero')];
      const name = actionDirectory();
      // Harmless to the host even where it works: a timestamp, and the mode it already has.
      await ran(
        spec(mode, name, [
          'sh',
          '-c',
          'touch -d "2001-01-01 00:00" /dev/full; chmod 666 /dev/zero; true',
        ]),
      );
      const [full, zero] = [statSync('/dev/full'), statSync('/dev/zero')];
      assert.equal(full.mtimeMs, before[0]?.mtimeMs, "the host's /dev/full was touched");
      assert.equal(zero.ctimeMs, before[1]?.ctimeMs, "the host's /dev/zero was chmod'ed");
    });

    contained(
      'cannot leave the root with chroot and chdir("..") loops, or through /proc/1/root',
      async () => {
        const name = actionDirectory();
        const { stdout } = await ran(
          spec(mode, name, [
            'sh',
            '-c',
            `hostile chroot-escape ${canary}/file; hostile open /proc/1/root${canary}/file`,
          ]),
        );
        // In namespaces mode chroot is allowed but ".." stops at the pivoted root; in shared mode
        // CAP_SYS_CHROOT is not granted, since ".." from outside a chroot walks up to the host.
        // /proc/1/root is the init's (not dumpable) in namespaces mode, the host's init's in
        // shared mode: following it needs ptrace access either way.
        const chroot = mode !== 'shared' ? 'contained ENOENT' : 'chroot-refused EPERM';
        assert.equal(stdout, `${chroot}\nopen-refused EACCES\n`);
      },
    );

    contained('sees only fds 0, 1 and 2; cannot read the runner’s fds', async () => {
      const name = actionDirectory();
      const { stdout } = await ran(
        spec(mode, name, ['sh', '-c', `exec hostile fds; `], {
          environment: { PATH: '/bin' },
        }),
      );
      assert.equal(stdout, '0\n1\n2\n');
      const runner = actionDirectory();
      const { stdout: runnerFds } = await ran(
        spec(mode, runner, [
          'sh',
          '-c',
          `hostile fds /proc/${process.pid}/fd; hostile open /proc/${process.pid}/fd/${buildDirectory.fd}`,
        ]),
      );
      // The runner is not in the action's PID namespace: its /proc has no entry for it.
      assert.equal(runnerFds, 'opendir-failed ENOENT\nopen-refused ENOENT\n');
    });

    contained('cannot ptrace or signal the runner, as uid 0 or not', async () => {
      const name = actionDirectory();
      const pid = String(process.pid);
      const { stdout } = await ran(
        spec(mode, name, ['sh', '-c', 'hostile ptrace $RUNNER; hostile kill $RUNNER'], {
          environment: { PATH: '/bin', RUNNER: pid },
        }),
      );
      // The runner is not in the action's PID namespace (none mode, without one, is not
      // covered here).
      const expected = 'ptrace-refused ESRCH\nkill-refused ESRCH\n';
      assert.equal(stdout, expected);
      // Rootless actions run as the ids mapped in their user namespace; runCommandsAs does not
      // apply there.
      if (mode === 'rootless') return;
      const other = actionDirectory();
      const { stdout: asNobody } = await ran(
        spec(mode, other, ['sh', '-c', 'hostile ptrace $RUNNER; hostile kill $RUNNER'], {
          environment: { PATH: '/bin', RUNNER: pid },
          credentials: { uid: 65534, gid: 65534, additionalGroups: [] },
        }),
      );
      assert.equal(asNobody, expected);
    });
    contained(
      "cannot ptrace its init or open the init's status pipe to forge its result",
      async () => {
        const name = actionDirectory();
        // In shared mode the init is not PID 1: find it as the action shell's parent.
        const init = mode !== 'shared' ? '1' : '$PPID';
        const { stdout } = await ran(
          spec(
            mode,
            name,
            ['sh', '-c', `hostile ptrace ${init}; hostile open /proc/${init}/fd/3`],
            {
              environment: { PATH: '/bin' },
            },
          ),
        );
        assert.equal(stdout, 'ptrace-refused EPERM\nopen-refused EACCES\n');
      },
    );
  });

  describe(`hostile sizes and encodings (${mode})`, () => {
    contained('a gigantic argv or environment is a clear error (E2BIG), not a crash', async () => {
      const huge = 'x'.repeat(200_000);
      for (const overrides of [
        { arguments: ['/bin/true', huge] },
        { arguments: ['/bin/true', ...Array.from({ length: 40_000 }, () => 'y'.repeat(100))] },
        { environment: { PATH: '/bin', HUGE: huge } },
        {
          environment: Object.fromEntries(
            Array.from({ length: 40_000 }, (_, i) => [`V${i}`, 'z'.repeat(100)]),
          ),
        },
      ]) {
        const name = actionDirectory();
        const error = await refused(
          spec(mode, name, ['/bin/true'], overrides),
          /^Failed to start process: .*E2BIG: .*execveat/,
          'E2BIG',
        );
        assert.equal(error.kind, 'invalidArgument');
      }
      const name = actionDirectory();
      await ran(spec(mode, name, ['/bin/true']));
    });

    contained(
      'invalid UTF-16 in the environment reaches the action as U+FFFD, never truncated',
      async () => {
        const name = actionDirectory();
        const { stdout } = await ran(
          spec(
            mode,
            name,
            ['sh', '-c', 'printf %s "$LONE" | od -An -tx1; printf %s "$LATIN" | od -An -tx1'],
            {
              environment: {
                PATH: '/bin',
                LONE: 'a\ud800b',
                LATIN: Buffer.from([0xff, 0x41]).toString('latin1'),
              },
            },
          ),
        );
        assert.equal(stdout.replace(/ +/g, ' '), ' 61 ef bf bd 62\n c3 bf 41\n');
      },
    );
  });
}

for (const mode of modes) {
  describe(`mountpoints swapped while actions start (${mode})`, () => {
    contained(
      'every action ran with its mounts inside the root or was refused; nothing mounted outside',
      async (t) => {
        const name = actionDirectory();
        const root = join(build.path, name, 'root');
        const outside = mountsOutside(root, build.path);
        const swapper = await Swapper.start(root, ['proc', 'tmp'], canary, 1_000_000);
        const counts = { intact: 0, displaced: 0, refused: 0 };
        const total = 150;
        const concurrency = mode !== 'shared' ? 6 : 1;
        let next = 0;
        const worker = async () => {
          while (next < total) {
            next++;
            const running = attempt(
              spec(mode, name, [
                'sh',
                '-c',
                'readlink /proc/self/exe && test -c /dev/null && test -w /tmp && echo ok',
              ]),
            );
            // runAction mounts (shared mode) before its first await: they are attached now, and
            // none may be outside the root.
            assert.equal(
              mountsOutside(root, build.path),
              outside,
              'a mount appeared outside the root',
            );
            const outcome = await running;
            if ('error' in outcome) {
              assert.equal(outcome.error.kind, 'invalidArgument', outcome.error.message);
              assert.match(outcome.error.message, /\/(proc|tmp)\b/);
              counts.refused++;
            } else if (outcome.result.exitCode === 0) {
              assert.equal(outcome.stdout, '/bin/busybox\nok\n');
              counts.intact++;
            } else {
              // The swapper moved the mountpoint elsewhere in the root after it was opened:
              // the mount went with the directory, inside the root, and the action lost it.
              assert.equal(outcome.result.exitCode, 1, outcome.stderr);
              counts.displaced++;
            }
          }
        };
        try {
          // Every worker settles before the checks below, so that a failure leaves no action
          // running into the next test.
          const settled = await Promise.allSettled(Array.from({ length: concurrency }, worker));
          for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
        } finally {
          await swapper.stop();
        }
        assert.equal(mountsOutside(root, build.path), outside, 'a mount was left outside the root');
        // How many the swaps hit depends on how the swapper and the actions share the CPUs:
        // only reported. Symlinked mountpoints are refused deterministically above; here,
        // once the swapper stopped, the root is whole again and an action runs intact.
        t.diagnostic(JSON.stringify(counts));
        assert.equal(counts.intact + counts.displaced + counts.refused, total);
        const { stdout } = await ran(
          spec(mode, name, [
            'sh',
            '-c',
            'readlink /proc/self/exe && test -c /dev/null && test -w /tmp && echo ok',
          ]),
        );
        assert.equal(stdout, '/bin/busybox\nok\n');
        rmSync(join(build.path, name), { recursive: true, force: true });
      },
    );
  });
}
