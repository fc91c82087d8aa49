// bb_runner's configurations and build directory, as operators deploy them: bb-deployments'
// runner configurations served unchanged, actions without chrootIntoInputRoot, a build
// directory mounted over after start-up (bb_worker's FUSE mount) and one that does not exist
// yet when the runner starts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { RunnerClient } from '../../src/server/client.js';
import { writableByActions } from '../helpers/busybox.js';
import { assertNothingLeft, mountsBeneath, needsRoot, processState } from '../helpers/leaks.js';
import {
  binary,
  clientSocketsClosed,
  relativeSearchPathCase,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';

const deployments = new URL('../../../test/fixtures/bb-deployments/', import.meta.url).pathname;

/** The RPC's gRPC status and message, or undefined when it succeeded. */
async function failure(call: Promise<unknown>): Promise<[string, string] | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    const { code, details } = error as { code: status; details: string };
    return [status[code] ?? String(code), details];
  }
}

/** An action directory (input root `root`, `tmp`, logs) at `path` as the runner names it
 * `name`: a request for argv, and its logs. */
function action(buildPath: string, name: string, busybox = true) {
  mkdirSync(join(buildPath, name, 'tmp'), { recursive: true });
  if (busybox) populateBusyboxRoot(join(buildPath, name, 'root'));
  else mkdirSync(join(buildPath, name, 'root'), { recursive: true });
  for (const path of ['root', 'tmp']) writableByActions(join(buildPath, name, path));
  return {
    request: (argv: readonly string[], fields: Record<string, unknown> = {}) => ({
      arguments: [...argv],
      environmentVariables: { PATH: '/bin:/usr/bin' },
      inputRootDirectory: `${name}/root`,
      temporaryDirectory: `${name}/tmp`,
      stdoutPath: `${name}/stdout`,
      stderrPath: `${name}/stderr`,
      ...fields,
    }),
    read: (file: string) => readFileSync(join(buildPath, name, file), 'utf8'),
  };
}

/** Serves `args` (with `command`, as ServeProcess.start) and hands `body` a client of the
 * socket `address` names; then stops serve and proves that nothing is left beneath
 * `leakChecked`, and removes `directory`. */
async function withServe(
  directory: string,
  start: {
    readonly args: readonly string[];
    readonly command?: readonly string[];
    readonly address: (serve: ServeProcess) => string;
  },
  body: (client: RunnerClient, serve: ServeProcess) => Promise<void>,
  leakChecked: readonly string[] = [directory],
): Promise<void> {
  const state = processState();
  try {
    const serve = await ServeProcess.start(start.args, start.command);
    const client = new RunnerClient(start.address(serve));
    try {
      await body(client, serve);
    } finally {
      client.close();
      assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
    }
    await clientSocketsClosed(state);
    assertNothingLeft(state, leakChecked);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Processes visible in the action's /proc, and where it runs: the host's /bin/sh and tools. */
const whereAmI = [
  'sh',
  '-c',
  'pwd; test -x /usr/bin/env && echo runner-files; echo "TMPDIR=$TMPDIR"; ls /proc | grep -c "^[0-9]"',
];

/** Shell commands that make $R, beneath the test's directory $0, a root of the runner's own:
 * a tmpfs with each of the host's top-level entries bound (or, for symlinks, copied) into it. */
const ownRoot = [
  'R="$0/root" && mkdir "$R" && mount -t tmpfs -o mode=0755 tmpfs "$R"',
  'for e in /*; do if [ -L "$e" ]; then cp -P "$e" "$R$e"; elif [ -d "$e" ]; then mkdir "$R$e" && mount --rbind "$e" "$R$e"; else touch "$R$e" && mount --bind "$e" "$R$e"; fi || exit 1; done',
].join(' && ');

describe('bb-deployments’ runner configurations, unchanged', { skip: needsRoot }, () => {
  // docker-compose and Kubernetes name /worker: each runner gets its own root (a tmpfs with
  // the host's top-level entries bound in it, and a tmpfs at /worker), in its own mount
  // namespace, so that the host's / is never written (hostile tests compare it). Every runner
  // also gets its own network namespace: these configurations listen on all interfaces (:80,
  // :9987).

  for (const [file, worker] of [
    ['bare/config/runner.jsonnet', 'bare'],
    ['docker-compose/config/runner-ubuntu22-04.jsonnet', '/worker'],
    ['kubernetes/config/runner-ubuntu22-04.jsonnet', '/worker'],
  ] as const) {
    it(`serves ${file}, running actions as bb_runner would (no chroot)`, async () => {
      const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-deployments-'));
      // The bare deployment runs from its checkout: PWD and relative socket paths.
      const setup =
        worker === 'bare'
          ? 'mkdir -p worker/build'
          : `${ownRoot} && mkdir -p "$R/worker" && mount -t tmpfs -o mode=0755 tmpfs "$R/worker" && mkdir "$R/worker/build"`;
      const workerPath = worker === 'bare' ? join(directory, 'worker') : '/worker';
      // The runner's view, through its root: its /worker is not the test's.
      const seen = (serve: ServeProcess) => `/proc/${serve.child.pid}/root${workerPath}`;
      const command = ['unshare', '--mount', '--net', '--propagation', 'private', '--', 'sh'];
      const enter = worker === 'bare' ? '' : 'chroot "$R" ';
      const script = `cd "$0" && export PWD="$0" OS=Linux && ${setup} && exec ${enter}sh -c 'cd "$0" && exec "$@"' "$0" "$@"`;
      await withServe(
        directory,
        {
          args: [join(deployments, file)],
          command: [...command, '-c', script, directory, process.execPath, binary],
          address: (serve) => `unix://${seen(serve)}/runner`,
        },
        async (client, serve) => {
          const a = action(`${seen(serve)}/build`, 'action', false);
          mkdirSync(`${seen(serve)}/build/ready`);
          await client.checkReadiness('ready');
          const response = await client.run(a.request(whereAmI));
          assert.equal(response.exitCode, 0n, a.read('stderr'));
          const [pwd, files, tmpdir, processes] = a.read('stdout').split('\n');
          assert.equal(pwd, `${workerPath}/build/action/root`);
          assert.equal(files, 'runner-files');
          assert.equal(tmpdir, 'TMPDIR=');
          // Its own PID namespace (namespaces mode, the default): sh, ls, grep and the init.
          assert.ok(Number(processes) <= 4, `processes visible: ${processes}`);
        },
        [directory],
      );
    });
  }
});

for (const mode of ['namespaces', 'shared', 'none'] as const) {
  describe(`serve without chrootIntoInputRoot (${mode})`, { skip: needsRoot }, () => {
    let directory: string;
    let buildPath: string;
    let serve: ServeProcess;
    let client: RunnerClient;
    let state: ReturnType<typeof processState>;

    before(async () => {
      state = processState();
      directory = mkdtempSync(join(tmpdir(), 'chroot-runner-nochroot-'));
      const written = writeServeConfiguration(
        directory,
        'runner',
        mode,
        {},
        {
          chrootIntoInputRoot: false,
        },
      );
      buildPath = written.buildPath;
      serve = await ServeProcess.start([written.file]);
      client = new RunnerClient(written.socket);
    });

    after(async () => {
      client.close();
      assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
      await clientSocketsClosed(state);
      assertNothingLeft(state, [directory]);
      rmSync(directory, { recursive: true, force: true });
    });

    it('runs in the input root’s working directory on the runner’s files', async () => {
      const a = action(buildPath, 'where', false);
      const response = await client.run(a.request(whereAmI));
      assert.equal(response.exitCode, 0n, a.read('stderr'));
      const [pwd, files, tmp, processes] = a.read('stdout').split('\n');
      assert.equal(pwd, join(buildPath, 'where/root'));
      assert.equal(files, 'runner-files');
      // The runner's /tmp, which may hold the build directory (it does here), as bb_runner.
      assert.equal(tmp, `TMPDIR=${join(buildPath, 'where/tmp')}`);
      if (mode === 'namespaces') assert.ok(Number(processes) <= 4, `processes: ${processes}`);
      assert.deepEqual(mountsBeneath(buildPath), []);
    });

    it('finds programs in relative search paths relative to it, as bb_runner', async () => {
      const a = action(buildPath, 'relative', false);
      const fields = relativeSearchPathCase(join(buildPath, 'relative/root'));
      const response = await client.run(a.request(fields.arguments, fields));
      assert.equal(response.exitCode, 42n, a.read('stderr'));
      assert.equal(
        a.read('stdout'),
        `${join(buildPath, 'relative/root/work')}\nsubdirectory/hello.sh\n`,
      );
    });
  });
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`the build directory, resolved at every call (${mode})`, { skip: needsRoot }, () => {
    it('is not ready while missing at start, and works once it exists', async () => {
      const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-missing-'));
      const diagnostics = { httpServers: [{ listenAddresses: ['127.0.0.1:0'] }] };
      const { file, socket, buildPath } = writeServeConfiguration(
        directory,
        'runner',
        mode,
        {},
        {
          global: { diagnosticsHttpServer: { ...diagnostics, enablePrometheus: true } },
        },
      );
      rmSync(buildPath, { recursive: true });
      await withServe(directory, { args: [file], address: () => socket }, async (client, serve) => {
        assert.ok(
          serve.logs.some((line) => line.msg?.startsWith('build directory does not exist')),
        );
        const missing = new RegExp(`^Failed to open build directory "${buildPath}": .*ENOENT`);
        for (const call of [
          client.checkReadiness('ready'),
          client.checkReadiness(),
          client.run(action(directory, 'early').request(['/bin/true'])),
        ]) {
          const [code = '', message = ''] = (await failure(call)) ?? [];
          assert.equal(code, 'INTERNAL');
          assert.match(message, missing);
        }
        mkdirSync(join(buildPath, 'ready'), { recursive: true });
        await client.checkReadiness('ready');
        const a = action(buildPath, 'late');
        const response = await client.run(a.request(['sh', '-c', 'echo late']));
        assert.equal(response.exitCode, 0n, a.read('stderr'));
        assert.equal(a.read('stdout'), 'late\n');
      });
    });

    it('sees a file system mounted over it after start, and pins neither mount', async () => {
      const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-remount-'));
      const { file, socket, buildPath } = writeServeConfiguration(directory, 'runner', mode);
      await withServe(directory, { args: [file], address: () => socket }, async (client) => {
        try {
          const before = action(buildPath, 'before');
          assert.equal((await client.run(before.request(['/bin/true']))).exitCode, 0n);
          // As bb_worker mounts its FUSE build directory, and again after a restart.
          for (const round of [1, 2]) {
            execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', buildPath]);
            mkdirSync(join(buildPath, 'ready'));
            await client.checkReadiness('ready');
            const a = action(buildPath, `mounted-${round}`);
            const response = await client.run(a.request(['sh', '-c', 'echo on the new mount']));
            assert.equal(response.exitCode, 0n, a.read('stderr'));
            assert.equal(a.read('stdout'), 'on the new mount\n');
            // Not lazily: umount fails with EBUSY if the runner held anything in it.
            execFileSync('umount', [buildPath]);
          }
          // The old directory, underneath, is the build directory again.
          await client.checkReadiness('before/stdout');
        } finally {
          // Only after a failure above: a tmpfs left over the build directory.
          while (mountsBeneath(buildPath).length > 0) execFileSync('umount', ['-l', buildPath]);
        }
      });
    });
  });
}
