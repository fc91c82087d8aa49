// Rootless mode as Buildbarn's example deployments run the runner: uid 65534 with no
// capabilities (setpriv), through `chroot-runner run` and `chroot-runner serve`. The busybox
// checks of the engine: /proc/self/exe, /dev nodes and links, a private /proc, a read-only
// /sys, exit codes and signals, and nothing of the action left when the runner returns.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { anyIs, anyUnpack } from '@bufbuild/protobuf/wkt';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { POSIXResourceUsageSchema } from '../../src/proto/index.js';
import { ActionError, defaultIsolation } from '../../src/sandbox/index.js';
import { cwd, PlanBuilder, runnerStep } from '../../src/sandbox/plan.js';
import { RunnerClient } from '../../src/server/client.js';
import { ConfigurationError, parseConfiguration } from '../../src/server/config.js';
import { constants, openDirectory } from '../../src/syscalls/index.js';
import { isStepError, spawn as spawnPlan } from '../../src/syscalls/process.js';
import type { BuildDirectory } from '../helpers/busybox.js';
import { runAction } from '../helpers/engine.js';
import { assertNothingLeft, needsRoot, type ProcessState, processState } from '../helpers/leaks.js';
import {
  killRunnerDuringAction,
  processesWithArgument,
  uniqueSleepDuration,
} from '../helpers/processes.js';
import {
  binary,
  clientSocketsClosed,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';
import {
  makeUnprivilegedBuildDirectory,
  rootlessRunCommand,
  unprivileged,
} from '../helpers/unprivileged.js';

let build: BuildDirectory;
/** An argument every action's shell carries ($0), to find processes that outlive it. */
let marker: string;

before(() => {
  if (needsRoot !== false) return;
  build = makeUnprivilegedBuildDirectory('chroot-runner-rootless-');
  marker = `rootless-${basename(build.path)}`;
});

after(() => {
  if (needsRoot !== false) return;
  build.remove();
});

function assertNoActionProcesses(): void {
  assert.deepEqual(processesWithArgument(marker), [], 'processes of an action still alive');
}

function leakFree(name: string, body: () => Promise<void> | void): void {
  it(name, { skip: needsRoot, timeout: 60_000 }, async () => {
    const state = processState();
    await body();
    assertNoActionProcesses();
    assertNothingLeft(state, [build.path]);
  });
}

/** `chroot-runner run --isolation rootless [ARGS] -- ARGV` as uid 65534. */
function runRootless(args: readonly string[], argv: readonly string[]) {
  const [program = 'setpriv', ...rest] = rootlessRunCommand(join(build.path, 'root'));
  return spawnSync(program, [...rest, ...args, '--', ...argv], { encoding: 'utf8' });
}

/** Runs `sh -c SCRIPT MARKER` in rootless mode as uid 65534. */
function runScript(script: string, args: readonly string[] = []) {
  return runRootless(args, ['sh', '-c', script, marker]);
}

const busyboxChecks = [
  'readlink /proc/self/exe',
  // Glob expansion starts no process: the init and this shell.
  'echo /proc/[0-9]*',
  'for node in null zero full random urandom tty; do test -c /dev/$node || echo "not a device: /dev/$node"; done',
  'echo discarded > /dev/null',
  'readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx',
  // A heredoc is a pipe (the runner's own stdin, a socket here, cannot be reopened).
  'cat /dev/stdin <<EOF\npiped\nEOF',
  'test -d /dev/pts && test -w /dev/shm && echo pts shm',
  'id -u; id -g',
  'touch /sys/probe 2>&1',
  'grep -c " /sys[ /].* ro," /proc/self/mountinfo >/dev/null && echo sys read-only',
  'echo written > /tmp/by-the-action',
].join('\n');

describe('chroot-runner run --isolation rootless, as uid 65534 without capabilities', () => {
  leakFree('passes the busybox checks of the engine', () => {
    const result = runScript(busyboxChecks, ['--tmp', join(build.path, 'tmp')]);
    assert.equal(result.stderr, '');
    assert.equal(
      result.stdout,
      [
        '/bin/busybox',
        '/proc/1 /proc/2',
        '/proc/self/fd',
        '/proc/self/fd/0',
        'pts/ptmx',
        'piped',
        'pts shm',
        '65534',
        '65534',
        'touch: /sys/probe: Read-only file system',
        'sys read-only',
        '',
      ].join('\n'),
    );
    assert.equal(result.status, 0);
    const written = join(build.path, 'tmp/by-the-action');
    assert.equal(readFileSync(written, 'utf8'), 'written\n');
    assert.equal(statSync(written).uid, 65534);
  });

  leakFree('exits with the action’s code, 128+N when signal N killed it', () => {
    assert.equal(runScript('exit 7').status, 7);
    assert.equal(runScript('kill -s TERM $$').status, 128 + 15);
    assert.equal(runScript('kill -s KILL $$').status, 128 + 9);
  });

  leakFree('a background process of the action dies with it', () => {
    const result = runScript(`sh -c 'sleep 1000; :' ${marker} & echo started`);
    assert.equal(result.stdout, 'started\n');
    assert.equal(result.status, 0);
  });

  leakFree('cannot mount, write /proc/sys or use the host’s ids', () => {
    const result = runScript(
      [
        'mount -t tmpfs none /tmp 2>/dev/null && echo mounted',
        'echo x > /proc/sys/kernel/hostname 2>/dev/null && echo wrote /proc/sys',
        'chown 0 /tmp 2>/dev/null && echo chowned',
        'echo done',
      ].join('\n'),
      ['--tmp', join(build.path, 'tmp')],
    );
    assert.equal(result.stdout, 'done\n');
  });

  leakFree(
    'reads and writes none of the host root’s files it gets unmasked (kpage files, timer_list, /proc/irq)',
    () => {
      // Its ids are the runner's, never the host's uid 0: these go unmasked (only their owner may
      // use them) and the kernel refuses them, as the action's capabilities cover no unmapped owner.
      const files = ['/proc/kpageflags', '/proc/kpagecount', '/proc/timer_list'].filter((path) => {
        const status = statSync(path, { throwIfNoEntry: false });
        return status !== undefined && status.uid === 0 && (status.mode & 0o077) === 0;
      });
      assert.ok(files.length > 0, 'this kernel has none of them root-only');
      const result = runScript(
        [
          ...[...files, '/proc/irq'].map(
            (path) => `grep -q " ${path} " /proc/self/mountinfo && echo "mounted ${path}"`,
          ),
          ...files.map((path) => `head -c 1 ${path} >/dev/null 2>&1 && echo "read ${path}"`),
          '(: >> /proc/irq/default_smp_affinity) 2>/dev/null && echo "wrote /proc/irq"',
          'echo done',
        ].join('\n'),
      );
      assert.equal(result.stdout, 'done\n');
    },
  );

  leakFree('a program that cannot be found exits 127', () => {
    const result = runRootless([], ['missing']);
    assert.equal(result.status, 127);
    assert.match(result.stderr, /Cannot find executable "missing"/);
  });
});

describe('a rootless runner SIGKILLed while an action runs', () => {
  leakFree('no process of the action survives (parent-death signal on the init)', async () => {
    // A sleep whose argument no other test uses: the process to look for.
    const sleeper = uniqueSleepDuration();
    await killRunnerDuringAction([...rootlessRunCommand(join(build.path, 'root')), '--'], sleeper);
  });
});

describe('chroot-runner serve --isolation rootless, as uid 65534 without capabilities', () => {
  let serve: ServeProcess;
  let client: RunnerClient;
  let state: ProcessState;
  let buildPath: string;
  let actions = 0;

  /** A fresh input root and temporary directory, owned by the runner's uid. */
  function action(): { name: string; read: (file: string) => string } {
    const name = `action-${actions++}`;
    populateBusyboxRoot(join(buildPath, name, 'root'));
    mkdirSync(join(buildPath, name, 'tmp'));
    spawnSync('chown', ['-R', '65534:65534', join(buildPath, name)]);
    return { name, read: (file) => readFileSync(join(buildPath, name, file), 'utf8') };
  }

  function request(name: string, script: string) {
    return {
      arguments: ['sh', '-c', script, marker],
      environmentVariables: { PATH: '/bin' },
      inputRootDirectory: `${name}/root`,
      temporaryDirectory: `${name}/tmp`,
      stdoutPath: `${name}/stdout`,
      stderrPath: `${name}/stderr`,
    };
  }

  before(async () => {
    if (needsRoot !== false) return;
    state = processState();
    // The mode comes from --isolation; the configuration maps the runner to root inside.
    const configuration = writeServeConfiguration(build.path, 'serve', 'rootless', {
      userNamespace: { userId: 0, groupId: 0 },
    });
    buildPath = configuration.buildPath;
    spawnSync('chown', ['65534:65534', buildPath]);
    const { file, socket } = configuration;
    serve = await ServeProcess.start(
      ['--config', file, '--isolation', 'rootless'],
      [...unprivileged, process.execPath, binary],
    );
    client = new RunnerClient(socket);
  });

  after(async () => {
    if (needsRoot !== false) return;
    client.close();
    const [code, signal] = await serve.stop();
    assert.deepEqual([code, signal], [0, null], serve.stderrText);
    await clientSocketsClosed(state);
    assertNoActionProcesses();
    assertNothingLeft(state, [build.path]);
  });

  it('runs actions as root of their own user namespace, with loopback only', {
    skip: needsRoot,
  }, async () => {
    const a = action();
    const response = await client.run(
      request(
        a.name,
        [
          'id -u; id -g',
          'readlink /proc/self/exe',
          'echo /proc/[0-9]*',
          'test -c /dev/urandom && echo dev',
          'ls /sys/class/net',
          'touch /sys/probe 2>&1',
          'echo "$TMPDIR"; echo x > /tmp/file',
          `sh -c 'sleep 1000; :' ${marker} &`,
        ].join('\n'),
      ),
    );
    assert.equal(a.read('stderr'), '');
    assert.equal(response.exitCode, 0n);
    assert.equal(
      a.read('stdout'),
      '0\n0\n/bin/busybox\n/proc/1 /proc/2\ndev\nlo\ntouch: /sys/probe: Read-only file system\n/tmp\n',
    );
    // Root inside is the runner's uid outside.
    assert.equal(statSync(join(buildPath, a.name, 'tmp/file')).uid, 65534);
    assertNoActionProcesses();
  });

  it('reports exit codes and signals', { skip: needsRoot }, async () => {
    const exited = await client.run(request(action().name, 'exit 3'));
    assert.equal(exited.exitCode, 3n);
    const killed = action();
    const signalled = await client.run(request(killed.name, 'kill -s KILL $$'));
    assert.equal(signalled.exitCode, -1n);
    const usage = signalled.resourceUsage.find((any) => anyIs(any, POSIXResourceUsageSchema));
    assert.ok(usage);
    assert.equal(anyUnpack(usage, POSIXResourceUsageSchema)?.terminationSignal, 'KILL');
  });
});

describe('the engine in rootless mode', () => {
  leakFree('refuses credentials other than the ids the runner’s are mapped to', async () => {
    const buildDirectory = openDirectory(build.path);
    try {
      const action = (credentials: { uid: number; gid: number; additionalGroups: number[] }) =>
        runAction({
          buildDirectory,
          inputRoot: 'root',
          arguments: ['id', '-u'],
          environment: { PATH: '/bin' },
          workingDirectory: '',
          stdoutPath: `stdout-${credentials.uid}`,
          stderrPath: `stderr-${credentials.uid}`,
          credentials,
          isolation: { ...defaultIsolation, mode: 'rootless', userNamespace: { uid: 7, gid: 8 } },
        });
      await assert.rejects(
        action({ uid: 1000, gid: 8, additionalGroups: [] }),
        (error: Error) =>
          error instanceof ActionError &&
          error.kind === 'internal' &&
          /^In rootless mode actions run as uid 7, gid 8 /.test(error.message),
      );
      const result = await action({ uid: 7, gid: 8, additionalGroups: [] });
      assert.equal(result.exitCode, 0);
      assert.equal(readFileSync(join(build.path, 'stdout-7'), 'utf8'), '7\n');
    } finally {
      buildDirectory.close();
    }
  });
});

describe('the setup step that finds the temporary directory again', () => {
  leakFree('fails with EXDEV unless both handles name the same directory', async () => {
    const attempt = async (path: string) => {
      const opened = openDirectory(build.path);
      const plan = new PlanBuilder();
      const found = plan.open(runnerStep('open'), cwd, path, {
        flags: constants.O_PATH | constants.O_DIRECTORY,
        resolve: constants.RESOLVE_NO_SYMLINKS,
      });
      plan.sameInode(runnerStep('compare'), found, plan.inherit(opened.fd));
      try {
        await spawnPlan(plan.build());
        assert.fail('a plan without exec must fail');
      } catch (error) {
        assert.ok(isStepError(error));
        return `${error.code} ${error.syscall} ${plan.step(error.step)?.description}`;
      } finally {
        opened.close();
      }
    };
    assert.equal(await attempt(build.path), 'EINVAL execveat undefined');
    assert.equal(await attempt(join(build.path, 'tmp')), 'EXDEV fstat compare');
  });
});

describe('configuration of rootless mode', () => {
  const base = {
    buildDirectoryPath: '/build',
    grpcServers: [{ listenPaths: ['/run/runner.sock'] }],
    chrootIntoInputRoot: true,
  };

  it('maps the runner’s ids to chrootRunner.userNamespace', () => {
    const configuration = parseConfiguration({
      ...base,
      chrootRunner: { isolation: 'rootless', userNamespace: { userId: 0, groupId: 0 } },
    });
    assert.equal(configuration.isolation.mode, 'rootless');
    assert.deepEqual(configuration.isolation.userNamespace, { uid: 0, gid: 0 });
    assert.equal(parseConfiguration(base).isolation.userNamespace, undefined);
  });

  it('refuses runCommandsAs, which an unprivileged runner cannot switch to', () => {
    const document = { ...base, runCommandsAs: { userId: 1000, groupId: 1000 } };
    assert.throws(
      () => parseConfiguration(document, { isolation: 'rootless' }),
      (error: Error) =>
        error instanceof ConfigurationError && /^runCommandsAs: not supported/.test(error.message),
    );
    assert.equal(parseConfiguration(document).runCommandsAs?.uid, 1000);
  });
});
