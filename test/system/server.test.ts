// End to end: `chroot-runner serve` as its own process with a bb_runner-style JSON
// configuration, driven over its unix socket by a gRPC client, in namespaces and shared mode.
// bb_runner's own local-runner cases, written from the behaviour it documents.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import {
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  POSIXResourceUsageSchema,
  type RunResponse,
} from '../../src/proto/index.js';
import type { IsolationMode } from '../../src/sandbox/types.js';
import { RunnerClient } from '../../src/server/client.js';
import { type BuildDirectory, makeBuildDirectory, writableByActions } from '../helpers/busybox.js';
import { assertNothingLeft, mountsBeneath, needsRoot, processState } from '../helpers/leaks.js';
import { processesMentioning, uniqueSleepDuration } from '../helpers/processes.js';
import {
  binary,
  clientSocketsClosed,
  relativeSearchPathCase,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';
import { StartSignal } from '../helpers/start-signal.js';

interface ServeOptions {
  readonly mode: IsolationMode;
  readonly extra?: Record<string, unknown>;
  readonly chrootRunner?: Record<string, unknown>;
}

/** A bb_runner-style configuration file in the build directory's parent, and its socket. */
function writeConfiguration(build: BuildDirectory, name: string, options: ServeOptions) {
  return writeServeConfiguration(build.path, name, options.mode, options.chrootRunner, {
    global: {
      diagnosticsHttpServer: {
        httpServers: [{ listenAddresses: ['127.0.0.1:0'], authenticationPolicy: { allow: {} } }],
        enablePrometheus: true,
      },
    },
    ...options.extra,
  });
}

/** GET on a connection of its own, closed with the response: no pooled socket outlives it. */
async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const [response] = (await once(get(url, { agent: false }), 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of response) body += chunk;
  return { status: response.statusCode ?? 0, body };
}

/** An action's own directory in the build directory: input root, temporary directory, logs. */
class Action {
  constructor(
    readonly buildPath: string,
    readonly name: string,
  ) {
    mkdirSync(join(buildPath, name, 'tmp'), { recursive: true });
    populateBusyboxRoot(join(buildPath, name, 'root'));
    for (const path of ['root', 'tmp']) writableByActions(join(buildPath, name, path));
  }

  request(argv: readonly string[], fields: Record<string, unknown> = {}) {
    return {
      arguments: [...argv],
      environmentVariables: { PATH: '/bin' },
      inputRootDirectory: `${this.name}/root`,
      temporaryDirectory: `${this.name}/tmp`,
      stdoutPath: `${this.name}/stdout`,
      stderrPath: `${this.name}/stderr`,
      ...fields,
    };
  }

  read(file: string): string {
    return readFileSync(join(this.buildPath, this.name, file), 'utf8');
  }
}

async function rejectsWith(promise: Promise<unknown>, code: status, message: string | RegExp) {
  await assert.rejects(promise, (error: ServiceError) => {
    assert.equal(status[error.code], status[code], error.details);
    if (typeof message === 'string') assert.equal(error.details, message);
    else assert.match(error.details, message);
    return true;
  });
}

function terminationSignal(response: RunResponse): string | undefined {
  const [usage] = response.resourceUsage;
  return usage && anyUnpack(usage, POSIXResourceUsageSchema)?.terminationSignal;
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`serve (${mode})`, { skip: needsRoot }, () => {
    let build: BuildDirectory;
    let buildPath: string;
    let serve: ServeProcess;
    let client: RunnerClient;
    let state: ReturnType<typeof processState>;
    let actions = 0;
    const action = (name = 'action') => new Action(buildPath, `${name}-${actions++}`);

    before(async () => {
      state = processState();
      build = makeBuildDirectory();
      buildPath = join(build.path, 'build');
      mkdirSync(buildPath);
      const { file, socket } = writeConfiguration(build, 'runner', { mode });
      serve = await ServeProcess.start(['--config', file]);
      client = new RunnerClient(socket);
    });

    after(async () => {
      client.close();
      const [code, signal] = await serve.stop();
      assert.deepEqual([code, signal], [0, null], serve.stderrText);
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
      build.remove();
    });

    it('is healthy and checks readiness beneath the build directory', async () => {
      const health = await client.health();
      assert.equal(health.status, HealthCheckResponse_ServingStatus.SERVING);
      mkdirSync(join(buildPath, 'ready'));
      await client.checkReadiness();
      await client.checkReadiness('ready');
      await rejectsWith(
        client.checkReadiness('does_not_exist'),
        status.INTERNAL,
        /^Failed to check existence of path "does_not_exist" in build directory: /,
      );
      await rejectsWith(
        client.checkReadiness('does/not/exist'),
        status.INTERNAL,
        /^Failed to resolve path "does\/not\/exist" in build directory: /,
      );
      await rejectsWith(
        client.checkReadiness('../runner.json'),
        status.INTERNAL,
        /outside the build directory$/,
      );
    });

    it('runs an action with /proc, /dev and its exact environment', async () => {
      const a = action();
      const response = await client.run(
        a.request(
          ['sh', '-c', 'readlink /proc/self/exe; test -c /dev/null && echo dev; env | sort'],
          {
            environmentVariables: { PATH: '/bin', FOO: 'bar' },
          },
        ),
      );
      assert.equal(response.exitCode, 0n, a.read('stderr'));
      assert.equal(
        a.read('stdout'),
        '/bin/busybox\ndev\nFOO=bar\nPATH=/bin\nPWD=/\nSHLVL=1\nTMPDIR=/tmp\n',
      );
      assert.equal(a.read('stderr'), '');
      assert.equal(terminationSignal(response), '');
    });

    it('passes the environment exactly as given, with none at all', async () => {
      const a = action();
      const response = await client.run(
        a.request(['/bin/env'], { environmentVariables: {}, temporaryDirectory: '' }),
      );
      assert.equal(response.exitCode, 0n);
      assert.equal(a.read('stdout'), '');
    });

    it('lets the request’s TMPDIR win, and mounts the temporary directory at /tmp', async () => {
      const overriding = action();
      await client.run(
        overriding.request(['/bin/env'], { environmentVariables: { TMPDIR: '/somewhere/else' } }),
      );
      assert.equal(overriding.read('stdout'), 'TMPDIR=/somewhere/else\n');
      const writing = action();
      const response = await client.run(
        writing.request(['sh', '-c', 'echo scratch > "$TMPDIR/file"']),
      );
      assert.equal(response.exitCode, 0n, writing.read('stderr'));
      assert.equal(writing.read('tmp/file'), 'scratch\n');
    });

    it('returns exit codes, and -1 with the signal name when killed', async () => {
      for (const code of [0, 1, 42, 255]) {
        const a = action();
        const response = await client.run(a.request(['sh', '-c', `exit ${code}`]));
        assert.equal(response.exitCode, BigInt(code));
      }
      const killed = action();
      const response = await client.run(killed.request(['sh', '-c', 'kill -s KILL $$']));
      assert.equal(response.exitCode, -1n);
      assert.equal(terminationSignal(response), 'KILL');
      assert.equal(killed.read('stdout'), '');
    });

    it('runs in the working directory, and finds programs in relative search paths', async () => {
      const a = action();
      const fields = relativeSearchPathCase(join(buildPath, a.name, 'root'));
      const response = await client.run(a.request(fields.arguments, fields));
      assert.equal(response.exitCode, 42n, a.read('stderr'));
      // bb_runner's RelativeSearchPath case: $0 as found, relative, without "./".
      assert.equal(a.read('stdout'), '/work\nsubdirectory/hello.sh\n');
    });

    it('refuses requests as bb_runner does', async () => {
      // Each request in a fresh action directory: a refused request may leave its log files.
      await rejectsWith(
        client.run(action().request([])),
        status.INVALID_ARGUMENT,
        'Insufficient number of command arguments',
      );
      mkdirSync(join(buildPath, 'hello'), { recursive: true });
      await rejectsWith(
        client.run(
          action().request(['/bin/true'], { stdoutPath: 'hello/../../../../../../etc/passwd' }),
        ),
        status.INVALID_ARGUMENT,
        'Failed to open stdout path "hello/../../../../../../etc/passwd": Path resolves to a location outside the build directory',
      );
      await rejectsWith(
        client.run(action().request(['nonexistent_command'], { environmentVariables: {} })),
        status.INVALID_ARGUMENT,
        'Cannot find executable "nonexistent_command" in search paths ""',
      );
      await rejectsWith(
        client.run(
          action().request(['sh', '-c', 'exit 123'], {
            environmentVariables: { PATH: '/nonexistent' },
          }),
        ),
        status.INVALID_ARGUMENT,
        'Cannot find executable "sh" in search paths "/nonexistent"',
      );
      await rejectsWith(
        client.run(action().request(['./nonexistent_command'])),
        status.INVALID_ARGUMENT,
        /^Failed to start process: .*ENOENT/,
      );
      await rejectsWith(
        client.run(action().request(['/nonexistent_command'])),
        status.INVALID_ARGUMENT,
        /^Failed to start process: .*ENOENT/,
      );
      await rejectsWith(
        client.run(action().request(['/'])),
        status.INVALID_ARGUMENT,
        /^Failed to start process: .*(EISDIR|EACCES)/,
      );
      // The start of a JPEG file: not an executable format.
      const a = action();
      const jpeg = join(buildPath, a.name, 'root/not_a.binary');
      writeFileSync(
        jpeg,
        Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01]),
      );
      chmodSync(jpeg, 0o755);
      await rejectsWith(
        client.run(a.request(['./not_a.binary'])),
        status.INVALID_ARGUMENT,
        /^Failed to start process: .*ENOEXEC/,
      );
      assert.equal(serve.logs.filter((line) => line.code === 'INTERNAL').length, 0);
    });

    it('refuses existing log files and log paths naming a directory', async () => {
      const existing = action();
      writeFileSync(join(buildPath, existing.name, 'stdout'), 'kept');
      await rejectsWith(
        client.run(existing.request(['/bin/true'])),
        status.INVALID_ARGUMENT,
        /EEXIST/,
      );
      assert.equal(existing.read('stdout'), 'kept');
      const directory = action();
      await rejectsWith(
        client.run(directory.request(['/bin/true'], { stderrPath: `${directory.name}/tmp` })),
        status.INVALID_ARGUMENT,
        /EEXIST|EISDIR/,
      );
      await rejectsWith(
        client.run(directory.request(['/bin/true'], { stderrPath: `${directory.name}/` })),
        status.INVALID_ARGUMENT,
        `Failed to open stderr path "${directory.name}/": Path resolves to a directory`,
      );
    });

    it('gives 24 concurrent Runs each their own output', async () => {
      const batch = Array.from({ length: 24 }, () => action('concurrent'));
      const responses = await Promise.all(
        batch.map((a, index) =>
          client.run(a.request(['sh', '-c', `echo ${index} $(readlink /proc/self/exe)`])),
        ),
      );
      batch.forEach((a, index) => {
        assert.equal(responses[index]?.exitCode, 0n, a.read('stderr'));
        assert.equal(a.read('stdout'), `${index} /bin/busybox\n`);
      });
    });

    it('kills the whole action and removes its mounts when the deadline passes', async (t) => {
      const a = action();
      const marker = uniqueSleepDuration();
      const started = new StartSignal(join(buildPath, a.name, 'tmp/started'));
      try {
        const running = client.run(
          a.request(['sh', '-c', `sleep ${marker} & sleep ${marker} & echo > /tmp/started; wait`]),
          { timeoutMs: 3000 },
        );
        // The deadline runs from the call, whatever the machine's load: on a slow enough one it
        // passes during the set-up, and there is no running action to look at.
        const ended = running.then(
          () => false,
          () => false,
        );
        if (await Promise.race([started.lines(1).then(() => true), ended])) {
          // At least the shell; its children may still be between fork and exec.
          assert.notDeepEqual(processesMentioning(marker), []);
          if (mode === 'shared') assert.notDeepEqual(mountsBeneath(join(buildPath, a.name)), []);
        } else {
          t.diagnostic('the deadline passed before the action started');
        }
        await rejectsWith(running, status.DEADLINE_EXCEEDED, /Deadline exceeded/);
      } finally {
        await started.close();
      }
      // The runner logs the action once it is killed and cleaned up.
      const logged = await serve.waitForLog(
        (line) => line.msg === 'action not run' && line.inputRoot === `${a.name}/root`,
      );
      assert.equal(logged.code, 'CANCELLED');
      assert.deepEqual(processesMentioning(marker), []);
      assert.deepEqual(mountsBeneath(join(buildPath, a.name)), []);
    });

    it('exports Prometheus metrics, bb’s gRPC series among them', async () => {
      const serving = await serve.waitForLog((line) => line.msg === 'serving');
      const [address] = serving.diagnosticsAddresses as string[];
      // Matched by path: a query string changes nothing.
      const { body: text } = await httpGet(`http://${address}/metrics?x=1`);
      const run = 'grpc_method="Run",grpc_service="buildbarn.runner.Runner",grpc_type="unary"';
      assert.match(text, new RegExp(`^grpc_server_started_total\\{${run}\\} [1-9]\\d*$`, 'm'));
      assert.match(
        text,
        new RegExp(`^grpc_server_handled_total\\{grpc_code="OK",${run}\\} [1-9]\\d*$`, 'm'),
      );
      assert.match(
        text,
        new RegExp(`^grpc_server_handled_total\\{grpc_code="InvalidArgument",${run}\\} [1-9]`, 'm'),
      );
      // Every code of every method exists from the start, as go-grpc-prometheus makes them.
      assert.match(
        text,
        /^grpc_server_handled_total\{grpc_code="DataLoss",grpc_method="Watch",grpc_service="grpc.health.v1.Health",grpc_type="server_stream"\} 0$/m,
      );
      assert.match(text, new RegExp(`^grpc_server_msg_received_total\\{${run}\\} [1-9]`, 'm'));
      assert.match(text, new RegExp(`^grpc_server_msg_sent_total\\{${run}\\} [1-9]`, 'm'));
      // bb-storage's buckets: three per power of ten, 1 ms to 1000 s.
      const buckets = [
        ...text.matchAll(
          new RegExp(`^grpc_server_handling_seconds_bucket\\{le="([^"]+)",${run}\\}`, 'gm'),
        ),
      ].map((match) => match[1]);
      assert.deepEqual(buckets.slice(0, 4), ['0.001', '0.0021544', '0.0046415', '0.01']);
      assert.deepEqual(buckets.slice(-3), ['464.15', '1000', '+Inf']);
      assert.match(text, /^chroot_runner_actions_total\{outcome="succeeded"\} [1-9]\d*$/m);
      // The error kinds apart: a refused request and a killed one.
      assert.match(text, /^chroot_runner_actions_total\{outcome="INVALID_ARGUMENT"\} [1-9]\d*$/m);
      assert.match(text, /^chroot_runner_actions_total\{outcome="CANCELLED"\} [1-9]\d*$/m);
      assert.doesNotMatch(text, /outcome="error"/);
      assert.match(
        text,
        /^chroot_runner_action_duration_seconds_count\{phase="setup",outcome="succeeded"\} [1-9]\d*$/m,
      );
      assert.match(text, /^chroot_runner_actions_in_flight 0$/m);
      assert.match(text, /^chroot_runner_mounts_attached 0$/m);
      const logged = await serve.waitForLog((line) => line.msg === 'action finished');
      assert.equal(logged.isolation, mode);
      assert.equal(typeof (logged.durationsMs as Record<string, number>).setup, 'number');
    });
  });

  describe(`serve shutdown (${mode})`, { skip: needsRoot }, () => {
    it('on SIGTERM, refuses new work, aborts actions after the grace period, and exits 0 with nothing mounted', async () => {
      const state = processState();
      const build = makeBuildDirectory();
      const buildPath = join(build.path, 'build');
      mkdirSync(buildPath);
      const { file, socket } = writeConfiguration(build, 'runner', {
        mode,
        chrootRunner: { shutdownGracePeriod: '0.2s' },
      });
      const serve = await ServeProcess.start(['--config', file]);
      const client = new RunnerClient(socket);
      try {
        const a = new Action(buildPath, 'long');
        const marker = uniqueSleepDuration();
        const started = new StartSignal(join(buildPath, 'long/tmp/started'));
        const running = client.run(a.request(['sh', '-c', `echo > /tmp/started; sleep ${marker}`]));
        await started.lines(1);
        await started.close();
        if (mode === 'shared') assert.notDeepEqual(mountsBeneath(join(buildPath, 'long')), []);
        const aborted = rejectsWith(running, status.UNAVAILABLE, 'Runner is shutting down');
        serve.child.kill('SIGTERM');
        await serve.waitForLog((line) => line.msg === 'shutting down');
        const refused = new Action(buildPath, 'refused');
        await rejectsWith(client.run(refused.request(['/bin/true'])), status.UNAVAILABLE, /./);
        await aborted;
        assert.deepEqual(await serve.exited, [0, null]);
        assert.deepEqual(processesMentioning(marker), []);
        build.remove();
      } finally {
        client.close();
        await serve.stop('SIGKILL');
      }
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
    });
  });
}

describe('serve options', { skip: needsRoot }, () => {
  it('serves the embedded default without --config, printing where', async () => {
    const state = processState();
    const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-default-'));
    const child = spawn(process.execPath, [binary, 'serve'], {
      cwd: directory,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const printed: string[] = [];
    const socketLine = new Promise<string>((resolve) =>
      stdout.on('line', (line) => {
        printed.push(line);
        if (line.includes('socket:')) resolve(line);
      }),
    );
    const socket = join(directory, '.chroot-runner/runner');
    assert.equal((await socketLine).trim(), `socket:          unix://${socket}`);
    assert.ok(
      printed.some((line) =>
        line.includes(`build directory: ${join(directory, '.chroot-runner/build')}`),
      ),
    );
    const client = new RunnerClient(`unix://${socket}`);
    try {
      await client.checkReadiness();
    } finally {
      client.close();
      // 'close', not 'exit': its stdout and stderr pipes are fds of this process until then.
      const closed = once(child, 'close');
      child.kill('SIGTERM');
      assert.deepEqual(await closed, [0, null]);
    }
    assert.deepEqual(readdirSync(join(directory, '.chroot-runner')), ['build']);
    rmSync(directory, { recursive: true, force: true });
    await clientSocketsClosed(state);
    assertNothingLeft(state, [directory]);
  });

  it('exits 2 on a configuration error, naming the key', () => {
    const build = makeBuildDirectory();
    try {
      const file = join(build.path, 'bad.json');
      writeFileSync(
        file,
        JSON.stringify({
          buildDirectoryPath: build.path,
          grpcServers: [{ listenPaths: [3] }],
          chrootIntoInputRoot: true,
        }),
      );
      const serve = spawnSync(process.execPath, [binary, 'serve', '--config', file], {
        encoding: 'utf8',
      });
      assert.equal(serve.status, 2);
      assert.equal(
        serve.stderr,
        `chroot-runner serve: ${file}: grpcServers[0].listenPaths[0]: expected a string, got number 3\n`,
      );
    } finally {
      build.remove();
    }
  });

  it('applies --isolation, readiness paths, temporary directory cleaning, runCommandsAs, deny, and health Watch', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    const buildPath = join(build.path, 'build');
    mkdirSync(buildPath);
    const scratch = join(build.path, 'scratch');
    mkdirSync(scratch);
    const required = join(build.path, 'required');
    const { file, socket } = writeConfiguration(build, 'runner', {
      mode: 'namespaces',
      extra: {
        cleanTemporaryDirectories: [scratch],
        readinessCheckingPathnames: [required],
        runCommandsAs: { userId: 65534, groupId: 65534, additionalGroupIds: [65533] },
      },
    });
    const denied = join(build.path, 'denied.sock');
    const configuration = JSON.parse(readFileSync(file, 'utf8'));
    configuration.grpcServers.push({
      listenPaths: [denied],
      authenticationPolicy: { deny: 'Go away' },
    });
    writeFileSync(file, JSON.stringify(configuration));
    const serve = await ServeProcess.start(['--config', file, '--isolation', 'none']);
    const client = new RunnerClient(socket);
    const deniedClient = new RunnerClient(`unix://${denied}`);
    const watcher = new Client(socket, credentials.createInsecure());
    try {
      await rejectsWith(
        client.checkReadiness(),
        status.UNAVAILABLE,
        new RegExp(`^Path "${required}": .*ENOENT`),
      );
      writeFileSync(required, '');
      await client.checkReadiness();
      await rejectsWith(deniedClient.checkReadiness(), status.UNAUTHENTICATED, 'Go away');

      writeFileSync(join(scratch, 'left-over'), '');
      const a = new Action(buildPath, 'plain');
      const response = await client.run(a.request(['realpath', '/proc/self/exe']));
      assert.equal(response.exitCode, 1n);
      assert.match(a.read('stderr'), /No such file or directory/);
      assert.deepEqual(readdirSync(scratch), []);
      const credentialsAction = new Action(buildPath, 'credentials');
      await client.run(credentialsAction.request(['sh', '-c', 'id -u; id -g; id -G']));
      assert.equal(credentialsAction.read('stdout'), '65534\n65534\n65534 65533\n');

      const statuses: number[] = [];
      const stream = watcher.makeServerStreamRequest(
        '/grpc.health.v1.Health/Watch',
        (request: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, request)),
        (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
        create(HealthCheckRequestSchema),
      );
      stream.on('data', (message: HealthCheckResponse) => statuses.push(message.status));
      await once(stream, 'data');
      serve.child.kill('SIGTERM');
      await once(stream, 'end');
      assert.deepEqual(statuses, [
        HealthCheckResponse_ServingStatus.SERVING,
        HealthCheckResponse_ServingStatus.NOT_SERVING,
      ]);
      assert.deepEqual(await serve.exited, [0, null]);
    } finally {
      client.close();
      deniedClient.close();
      watcher.close();
      await serve.stop('SIGKILL');
      build.remove();
    }
    await clientSocketsClosed(state);
    assertNothingLeft(state, [build.path]);
  });

  it('enforces the diagnostics servers’ authentication policies: allow serves, deny answers 403 and logs', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    mkdirSync(join(build.path, 'build'));
    const { file } = writeConfiguration(build, 'runner', {
      mode: 'none',
      extra: {
        global: {
          diagnosticsHttpServer: {
            httpServers: [
              { listenAddresses: ['127.0.0.1:0'], authenticationPolicy: { allow: {} } },
              { listenAddresses: ['127.0.0.1:0'], authenticationPolicy: { deny: 'Closed here' } },
            ],
            enablePrometheus: true,
          },
        },
      },
    });
    const serve = await ServeProcess.start(['--config', file]);
    try {
      const serving = await serve.waitForLog((line) => line.msg === 'serving');
      const [allowed, denied] = serving.diagnosticsAddresses as string[];
      assert.equal((await httpGet(`http://${allowed}/metrics`)).status, 200);
      assert.deepEqual(await httpGet(`http://${denied}/metrics?from=test`), {
        status: 403,
        body: 'Closed here\n',
      });
      assert.equal((await httpGet(`http://${denied}/-/healthy`)).status, 403);
      const logged = await serve.waitForLog((line) => line.msg === 'diagnostics request denied');
      assert.equal(logged.path, '/metrics');
      assert.equal(logged.error, 'Closed here');
    } finally {
      assert.deepEqual(await serve.stop(), [0, null]);
      build.remove();
    }
    await clientSocketsClosed(state);
    assertNothingLeft(state, [build.path]);
  });
});

describe('demo', { skip: needsRoot }, () => {
  it('shows /proc working in namespaces mode where the plain chroot fails, and cleans up', () => {
    const state = processState();
    const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-demo-'));
    try {
      const demo = spawnSync(process.execPath, [binary, 'demo'], {
        cwd: directory,
        encoding: 'utf8',
      });
      assert.equal(demo.status, 0, demo.stderr);
      const lines = demo.stdout.split('\n');
      const row = (label: string) => lines.find((line) => line.startsWith(label)) ?? '';
      assert.match(
        row('realpath /proc/self/exe'),
        /exit 0: \/bin\/realpath .*exit 1: realpath: \/proc\/self\/exe: No such file or directory/,
      );
      assert.match(row('ls /proc'), /exit 0: 1 .*exit 0: \(no output\)$/);
      assert.match(row('echo hi > /dev/null'), /exit 0: a device .*exit 0: a file: hi$/);
      assert.deepEqual(readdirSync(join(directory, '.chroot-runner/build')), []);
      assert.deepEqual(mountsBeneath(directory), []);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
    assertNothingLeft(state, [directory]);
  });
});
