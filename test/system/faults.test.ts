// Faults around `serve`, in namespaces and shared mode: a hundred Runs cancelled at once, a
// daemon left holding /proc, the action's directory removed while it runs, stdout on a full
// disk, serve out of file descriptors, and serve SIGKILLed mid-action then restarted. Each ends
// with nothing left: no process, no mount, serve's fds and children back where they were.
// (serve SIGKILLed in shared mode: test/server.test.ts; the CLI SIGKILLed: test/cli-run.test.ts.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { mountat, unmountat } from '../../src/mounts/index.js';
import { type RunRequest, RunRequestSchema, RunResponseSchema } from '../../src/proto/index.js';

type RunRequestInit = MessageInitShape<typeof RunRequestSchema>;

import { RunnerClient } from '../../src/server/client.js';
import { openDirectory } from '../../src/syscalls/index.js';
import { type BuildDirectory, makeBuildDirectory, writableByActions } from '../helpers/busybox.js';
import {
  assertNothingLeft,
  mountsBeneath,
  needsRoot,
  openFds,
  processState,
} from '../helpers/leaks.js';
import { processesWithArgument, uniqueSleepDuration } from '../helpers/processes.js';
import {
  clientSocketsClosed,
  processFootprint,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';
import { StartSignal } from '../helpers/start-signal.js';

async function rejectsWith(promise: Promise<unknown>, code: status, message: RegExp) {
  await assert.rejects(promise, (error: ServiceError) => {
    assert.equal(status[error.code], status[code], error.details);
    assert.match(error.details, message);
    return true;
  });
}

/** A Run that can be cancelled: the client side of a worker giving up on an action. */
function cancellableRun(client: Client, request: RunRequestInit) {
  let settle: (value: bigint | ServiceError) => void = () => {};
  const settled = new Promise<bigint | ServiceError>((resolve) => {
    settle = resolve;
  });
  const call = client.makeUnaryRequest(
    '/buildbarn.runner.Runner/Run',
    (message: RunRequest) => Buffer.from(toBinary(RunRequestSchema, message)),
    (bytes: Buffer) => fromBinary(RunResponseSchema, bytes),
    create(RunRequestSchema, request),
    (error, response) => settle(error ?? response?.exitCode ?? -2n),
  );
  return { call, settled };
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`faults in serve (${mode})`, { skip: needsRoot }, () => {
    let build: BuildDirectory;
    let buildPath: string;
    let socket: string;
    let serve: ServeProcess;
    let client: RunnerClient;
    let state: ReturnType<typeof processState>;
    let actions = 0;

    const action = (temporaryDirectory?: string) => {
      const name = `action-${actions++}`;
      populateBusyboxRoot(join(buildPath, name, 'root'));
      mkdirSync(join(buildPath, name, 'tmp'));
      for (const path of ['root', 'tmp']) writableByActions(join(buildPath, name, path));
      return {
        name,
        request: (argv: readonly string[], fields: RunRequestInit = {}): RunRequestInit => ({
          arguments: [...argv],
          environmentVariables: { PATH: '/bin' },
          inputRootDirectory: `${name}/root`,
          temporaryDirectory: temporaryDirectory ?? `${name}/tmp`,
          stdoutPath: `${name}/stdout`,
          stderrPath: `${name}/stderr`,
          ...fields,
        }),
        read: (file: string) => readFileSync(join(buildPath, name, file), 'utf8'),
      };
    };

    /** serve's fds and children once it has run an action (its lazily opened fds included). */
    let baseline: ReturnType<typeof processFootprint>;

    before(async () => {
      state = processState();
      build = makeBuildDirectory('chroot-runner-faults-');
      // No network namespaces nor cgroups made ahead: the pools refill after a Run has
      // answered, at their own pace, and serve's fd count would catch one under way (the
      // pools' own fds are counted in-process, after Engine.settled: sandbox.test.ts,
      // sandbox-cgroups.test.ts).
      const configuration = writeServeConfiguration(build.path, 'runner', mode, {
        preparedNetworkNamespaces: 0,
        cgroups: { preparedAhead: 0 },
      });
      buildPath = configuration.buildPath;
      socket = configuration.socket;
      serve = await ServeProcess.start(['--config', configuration.file]);
      client = new RunnerClient(socket);
      const warm = action();
      assert.equal((await client.run(warm.request(['/bin/true']))).exitCode, 0n);
      baseline = processFootprint(serve.child.pid ?? 0);
    });

    after(async () => {
      client.close();
      const [code, signal] = await serve.stop();
      assert.deepEqual([code, signal], [0, null], serve.stderrText);
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
      build.remove();
    });

    /** serve is back to its baseline: no child, no extra fd, nothing mounted, no process. */
    const assertServeClean = (mark: string, connections = 0) => {
      const footprint = processFootprint(serve.child.pid ?? 0);
      assert.deepEqual(footprint.children, [], 'serve has children left');
      assert.equal(footprint.fds, baseline.fds + connections, "serve's fd count");
      assert.deepEqual(mountsBeneath(buildPath), []);
      assert.deepEqual(processesWithArgument(mark), []);
    };

    it('cancels a hundred in-flight Runs at once: all CANCELLED, nothing left', async () => {
      const shared = join(buildPath, 'cancel-tmp');
      mkdirSync(shared);
      const started = new StartSignal(join(shared, 'started'));
      const mark = uniqueSleepDuration();
      // A second connection to serve, whose calls can be cancelled.
      const raw = new Client(socket, credentials.createInsecure());
      try {
        await new Promise<void>((resolve, reject) =>
          raw.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())),
        );
        const runs = Array.from({ length: 100 }, () =>
          cancellableRun(
            raw,
            // Every action binds the same temporary directory, to reach the one FIFO.
            action('cancel-tmp').request(['sh', '-c', `echo > /tmp/started; exec sleep ${mark}`]),
          ),
        );
        const ended = Promise.race(
          runs.map(({ settled }) =>
            settled.then((outcome) => {
              const detail = typeof outcome === 'bigint' ? `exit ${outcome}` : outcome.details;
              throw new Error(`a Run ended before it was cancelled: ${detail}`);
            }),
          ),
        );
        await Promise.race([started.lines(100), ended]);
        ended.catch(() => {});
        const before = serve.logs.length;
        for (const run of runs) run.call.cancel();
        for (const run of runs) {
          const outcome = await run.settled;
          assert.equal(typeof outcome, 'object');
          assert.equal((outcome as ServiceError).code, status.CANCELLED);
        }
        const cancelled = (line: Record<string, unknown>) =>
          line.msg === 'action not run' && line.code === 'CANCELLED';
        // serve logs each action once it is killed and cleaned up.
        await serve.waitForLogs(cancelled, 100, before);
        assertServeClean(mark, 1);
      } finally {
        raw.close();
        await started.close();
      }
    });

    it('a daemon left holding /proc and the input root busy does not stop teardown', async () => {
      const a = action();
      const mark = uniqueSleepDuration();
      const started = new StartSignal(join(buildPath, a.name, 'tmp/started'));
      const go = join(buildPath, a.name, 'tmp/go');
      execFileSync('mkfifo', ['-m', '666', go]);
      const running = client.run(
        a.request([
          'sh',
          '-c',
          `cd /proc/self && (setsid sleep ${mark} &); (cd /dev/shm && exec sleep ${mark}) & ` +
            'echo > /tmp/started; read line < /tmp/go; echo done',
        ]),
      );
      await started.lines(1);
      // The runner's side holds the input root and, in shared mode, its /proc mount busy too.
      const root = openDirectory(join(buildPath, a.name, 'root'));
      const inProc =
        mode === 'shared' ? openSync(join(buildPath, a.name, 'root/proc/uptime'), 'r') : -1;
      try {
        const release = openSync(go, 'w');
        writeSync(release, 'go\n');
        closeSync(release);
        const response = await running;
        assert.equal(response.exitCode, 0n);
        assert.equal(a.read('stdout'), 'done\n');
        assertServeClean(mark);
      } finally {
        if (inProc >= 0) closeSync(inProc);
        root.close();
        await started.close();
      }
    });

    it('the worker removes the action’s directory while it runs: Run still answers', async () => {
      const outsideTmp = join(buildPath, 'removal-tmp');
      mkdirSync(outsideTmp);
      const started = new StartSignal(join(outsideTmp, 'started'));
      execFileSync('mkfifo', ['-m', '666', join(outsideTmp, 'go')]);
      const a = action('removal-tmp');
      const mark = uniqueSleepDuration();
      const running = client.run(
        a.request([
          'sh',
          '-c',
          `sleep ${mark} & echo > /tmp/started; read line < /tmp/go; ls / > /dev/null; echo done`,
        ]),
      );
      await started.lines(1);
      const release = openSync(join(outsideTmp, 'go'), 'w');
      // As a worker would, without crossing into other file systems (the mounts of shared mode).
      try {
        execFileSync('rm', ['-rf', '--one-file-system', join(buildPath, a.name)], {
          stdio: 'ignore',
        });
      } catch {
        // rm reports the mountpoints it could not remove in shared mode; they are unmounted below.
      }
      writeSync(release, 'go\n');
      closeSync(release);
      const response = await running;
      assert.equal(response.exitCode, 0n);
      assertServeClean(mark);
      execFileSync('rm', ['-rf', join(buildPath, a.name)]);
      await started.close();
    });

    it('stdout on a full disk: the action sees ENOSPC; a log file that cannot be created is a clear error', async () => {
      const a = action();
      mkdirSync(join(buildPath, 'small'));
      const buildDirectory = openDirectory(buildPath);
      const small = mountat(buildDirectory, 'small', {
        fstype: 'tmpfs',
        options: { size: '64k', nr_inodes: '4' },
      });
      try {
        const response = await client.run(
          a.request(['sh', '-c', 'dd if=/dev/zero bs=1024 count=1024'], {
            stdoutPath: 'small/stdout',
          }),
        );
        assert.equal(response.exitCode, 1n);
        assert.match(a.read('stderr'), /No space left on device/);
        // Use up the inodes: the next log file cannot even be created.
        for (let index = 0; ; index++) {
          try {
            writeFileSync(join(buildPath, 'small', `filler-${index}`), '');
          } catch (error) {
            assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
            break;
          }
        }
        await rejectsWith(
          client.run(
            a.request(['/bin/true'], {
              stdoutPath: 'small/stdout-2',
              stderrPath: `${a.name}/stderr-2`,
            }),
          ),
          status.INTERNAL,
          /^Failed to open stdout path "small\/stdout-2": ENOSPC: .*, openat2 'small\/stdout-2'$/,
        );
      } finally {
        unmountat(small);
        buildDirectory.close();
      }
      assertServeClean(uniqueSleepDuration());
    });
  });

  describe(`serve out of file descriptors (${mode})`, { skip: needsRoot }, () => {
    it('refuses an action with a clear EMFILE error wherever its fds run out, and recovers', async () => {
      const state = processState();
      const build = makeBuildDirectory('chroot-runner-faults-fds-');
      // No network namespaces nor cgroups made ahead: without a free fd the pools cannot
      // refill, and would end short of serve's baseline (not a leak, but not what this counts).
      const { file, socket, buildPath } = writeServeConfiguration(build.path, 'runner', mode, {
        preparedNetworkNamespaces: 0,
        cgroups: { preparedAhead: 0 },
      });
      const serve = await ServeProcess.start(['--config', file]);
      const client = new RunnerClient(socket);
      const pid = serve.child.pid ?? 0;
      let actions = 0;
      const request = () => {
        const name = `action-${actions++}`;
        populateBusyboxRoot(join(buildPath, name, 'root'));
        mkdirSync(join(buildPath, name, 'tmp'));
        return {
          arguments: ['/bin/true'],
          environmentVariables: { PATH: '/bin' },
          inputRootDirectory: `${name}/root`,
          temporaryDirectory: `${name}/tmp`,
          stdoutPath: `${name}/stdout`,
          stderrPath: `${name}/stderr`,
        };
      };
      const setOpenFileLimit = (limit: number) =>
        execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:`]);
      const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
      const softLimit = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1]);
      try {
        // One action first: serve's lazily opened fds are part of its baseline.
        assert.equal((await client.run(request())).exitCode, 0n);
        const baseline = processFootprint(pid).fds;
        // With the limit at serve's lowest free fd number, no fd can be opened at all; each
        // step up makes room for one more. One Run at a time, so each fails at the next place
        // in its set-up that opens an fd, until one has room for all it needs.
        const open = new Set([...openFds(pid).keys()].map(Number));
        let lowestFree = 0;
        while (open.has(lowestFree)) lowestFree++;
        const failures: string[] = [];
        let room = 0;
        for (; room < 200; room++) {
          setOpenFileLimit(lowestFree + room);
          const outcome = await client.run(request()).catch((error: ServiceError) => error);
          if (!(outcome instanceof Error)) {
            assert.equal(outcome.exitCode, 0n);
            break;
          }
          assert.equal(status[outcome.code], 'INTERNAL', outcome.details);
          // What was being done, the errno and the syscall.
          assert.match(outcome.details, /^Failed to .*: EMFILE: too many open files, \w+/i);
          failures.push(outcome.details);
          // A failure at any point of the set-up closes what it had opened.
          assert.equal(processFootprint(pid).fds, baseline, `fds left after: ${failures.at(-1)}`);
        }
        assert.ok(failures.length > 0, 'an action ran with no fd to spare');
        assert.ok(room < 200, `no action ran with room for 200 fds: ${failures.at(-1)}`);
        // The limit lifted, actions run again, many at once too.
        setOpenFileLimit(softLimit);
        const outcomes = await Promise.all(Array.from({ length: 12 }, () => client.run(request())));
        for (const outcome of outcomes) assert.equal(outcome.exitCode, 0n);
        assert.deepEqual(processFootprint(pid).children, []);
        assert.equal(processFootprint(pid).fds, baseline);
        assert.deepEqual(mountsBeneath(buildPath), []);
        assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
      } finally {
        client.close();
        await serve.stop('SIGKILL');
        build.remove();
      }
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
    });
  });
}

// namespaces mode leaves nothing mounted when serve dies (the namespace dies with the action);
// shared mode leaves the action's mounts in serve's namespace, and the next serve detaches them
// at start-up. Either way every process of the action dies with serve (parent-death signal of
// the action's PID 1).
for (const mode of ['namespaces', 'shared'] as const) {
  describe(`serve SIGKILLed mid-action (${mode})`, { skip: needsRoot }, () => {
    it('no process of the action survives, mounts are gone or swept, and a new serve runs actions', async () => {
      const state = processState();
      const build = makeBuildDirectory('chroot-runner-faults-kill-');
      const { file, socket, buildPath } = writeServeConfiguration(build.path, 'runner', mode);
      const first = await ServeProcess.start(['--config', file]);
      const client = new RunnerClient(socket);
      try {
        populateBusyboxRoot(join(buildPath, 'killed/root'));
        mkdirSync(join(buildPath, 'killed/tmp'));
        for (const path of ['root', 'tmp']) writableByActions(join(buildPath, 'killed', path));
        const held = join(buildPath, 'killed/tmp/held');
        execFileSync('mkfifo', ['-m', '666', held]);
        // Every process of the action holds the FIFO's write end: end of file means all are gone.
        const reader = createReadStream(held);
        const ended = once(reader, 'end');
        const mark = uniqueSleepDuration();
        const running = client.run({
          arguments: [
            'sh',
            '-c',
            `exec 3> /tmp/held; echo started >&3; sleep ${mark} & exec sleep ${mark}`,
          ],
          environmentVariables: { PATH: '/bin' },
          inputRootDirectory: 'killed/root',
          temporaryDirectory: 'killed/tmp',
          stdoutPath: 'killed/stdout',
          stderrPath: 'killed/stderr',
        });
        const lost = assert.rejects(running, { code: status.UNAVAILABLE });
        await once(reader, 'data');
        first.child.kill('SIGKILL');
        await first.exited;
        await lost;
        await ended;
        assert.deepEqual(processesWithArgument(mark), []);
        const killedRoot = join(buildPath, 'killed/root');
        if (mode === 'namespaces') assert.deepEqual(mountsBeneath(build.path), []);
        else assert.notDeepEqual(mountsBeneath(killedRoot), [], 'the killed serve left its mounts');
        // The killed serve's action cgroup outlives it, empty (the init and all it forked
        // died), and so does the one it made ahead for the next action: on every hierarchy
        // that holds action cgroups (v1's cpu holds none without a CPU limit).
        const serving = await first.waitForLog((line) => line.msg === 'serving');
        const scopes = (serving.cgroups as { directories: string[] }).directories;
        const holding = scopes
          .map((scope) => readdirSync(scope).filter((name) => name.startsWith('action-')))
          .filter((left) => left.length > 0);
        assert.ok(holding.length > 0, `no cgroups of the killed serve in ${scopes}`);
        for (const left of holding) {
          assert.ok(left.length >= 2, `cgroups of the killed serve: ${left}`);
        }
        const second = await ServeProcess.start(['--config', file]);
        const sweptCgroups = await second.waitForLog(
          (line) => line.msg === 'cgroup scopes of runners no longer running removed',
        );
        assert.deepEqual(sweptCgroups.swept, [...new Set(scopes.map((scope) => basename(scope)))]);
        for (const scope of scopes) assert.equal(existsSync(scope), false, `cgroup left: ${scope}`);
        if (mode === 'shared') {
          const swept = await second.waitForLog(
            (line) => line.msg === 'stale mounts of a previous runner detached',
          );
          // The input root's bind once: what is mounted beneath it goes with it.
          assert.deepEqual(swept.swept, ['killed/root']);
        }
        assert.deepEqual(mountsBeneath(build.path), []);
        populateBusyboxRoot(join(buildPath, 'next/root'));
        const response = await client.run({
          arguments: ['readlink', '/proc/self/exe'],
          environmentVariables: { PATH: '/bin' },
          inputRootDirectory: 'next/root',
          stdoutPath: 'next/stdout',
          stderrPath: 'next/stderr',
        });
        assert.equal(response.exitCode, 0n);
        assert.equal(readFileSync(join(buildPath, 'next/stdout'), 'utf8'), '/bin/busybox\n');
        assert.deepEqual(await second.stop(), [0, null], second.stderrText);
        for (const scope of scopes) assert.equal(existsSync(scope), false, `cgroup left: ${scope}`);
      } finally {
        client.close();
        await first.stop('SIGKILL');
        build.remove();
      }
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
    });
  });
}
