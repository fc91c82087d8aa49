// Hostile requests against `serve` over gRPC, in namespaces and shared mode: hostile input
// roots, path fields, raw invalid UTF-8 on the wire, an action attacking its runner, and
// mountpoints swapped while a hundred Runs start. Every status names the path, the syscall
// and the errno where a syscall refused; afterwards nothing outside the input roots changed.
import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { RunRequestSchema, type RunResponse } from '../../src/proto/index.js';
import { RunnerClient } from '../../src/server/client.js';
import { type BuildDirectory, makeBuildDirectory } from '../helpers/busybox.js';
import {
  assertHostUnchanged,
  compileHostileHelper,
  type HostSnapshot,
  hostSnapshot,
  makeCanary,
  mountsOutside,
  Swapper,
} from '../helpers/hostile.js';
import { assertNothingLeft, mountsBeneath, needsRoot, processState } from '../helpers/leaks.js';
import {
  clientSocketsClosed,
  processFootprint,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';

async function rejectsWith(promise: Promise<unknown>, code: status, message: RegExp) {
  await assert.rejects(promise, (error: ServiceError) => {
    assert.equal(status[error.code], status[code], error.details);
    assert.match(error.details, message);
    return true;
  });
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`hostile requests to serve (${mode})`, { skip: needsRoot }, () => {
    let build: BuildDirectory;
    let buildPath: string;
    let canary: string;
    let helper: string;
    let socket: string;
    let serve: ServeProcess;
    let client: RunnerClient;
    let state: ReturnType<typeof processState>;
    let host: HostSnapshot;
    let actions = 0;

    /** A fresh action directory in the build directory, with a busybox root. */
    const action = (shape: (root: string, directory: string) => void = () => {}) => {
      const name = `action-${actions++}`;
      const directory = join(buildPath, name);
      populateBusyboxRoot(join(directory, 'root'));
      copyFileSync(helper, join(directory, 'root/bin/hostile'));
      mkdirSync(join(directory, 'tmp'));
      shape(join(directory, 'root'), directory);
      let logs = 0;
      return {
        name,
        request(argv: readonly string[], fields: Record<string, unknown> = {}) {
          logs++;
          return {
            arguments: [...argv],
            environmentVariables: { PATH: '/bin' },
            inputRootDirectory: `${name}/root`,
            temporaryDirectory: `${name}/tmp`,
            stdoutPath: `${name}/stdout-${logs}`,
            stderrPath: `${name}/stderr-${logs}`,
            ...fields,
          };
        },
        read: (file: string) => readFileSync(join(directory, file), 'utf8'),
      };
    };

    before(async () => {
      state = processState();
      build = makeBuildDirectory('chroot-runner-hostile-serve-');
      canary = join(build.path, 'canary');
      makeCanary(canary);
      helper = join(build.path, 'hostile');
      compileHostileHelper(helper);
      const configuration = writeServeConfiguration(build.path, 'runner', mode);
      buildPath = configuration.buildPath;
      socket = configuration.socket;
      serve = await ServeProcess.start(['--config', configuration.file]);
      client = new RunnerClient(socket);
      host = hostSnapshot(canary, build.path);
    });

    after(async () => {
      client.close();
      const [code, signal] = await serve.stop();
      assert.deepEqual([code, signal], [0, null], serve.stderrText);
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
      assertHostUnchanged(host, canary, build.path);
      build.remove();
    });

    it('refuses symlinked and non-directory mountpoints, naming mountpoint, errno and syscall', async () => {
      for (const mountpoint of ['proc', 'sys', 'dev', 'tmp']) {
        for (const target of ['/', canary, '../../..']) {
          const a = action((root) => {
            rmdirSync(join(root, mountpoint));
            symlinkSync(target, join(root, mountpoint));
          });
          await rejectsWith(
            client.run(a.request(['/bin/true'])),
            status.INVALID_ARGUMENT,
            new RegExp(
              `^Failed to open the mountpoint /${mountpoint} in the input root: ELOOP: .*, openat2 '${mountpoint}'$`,
            ),
          );
        }
      }
      const file = action((root) => {
        rmdirSync(join(root, 'proc'));
        copyFileSync(helper, join(root, 'proc'));
      });
      await rejectsWith(
        client.run(file.request(['/bin/true'])),
        status.INVALID_ARGUMENT,
        /^Failed to open the mountpoint \/proc in the input root: ENOTDIR: .*, openat2 'proc'$/,
      );
    });

    it('refuses climbing, absolute, NUL, symlinked and over-long path fields', async () => {
      const a = action((_, directory) => symlinkSync(canary, join(directory, 'out')));
      const cases: [string, string, RegExp][] = [
        [
          'inputRootDirectory',
          '../..',
          /^Failed to resolve input root directory: Path resolves to a location outside the build directory$/,
        ],
        ['inputRootDirectory', '/etc', /^Failed to resolve input root directory: Path is absolute/],
        [
          'inputRootDirectory',
          `${a.name}/ro\0ot`,
          /^Failed to open input root directory ".*\\u0000.*": Path must not contain NUL bytes$/,
        ],
        [
          'inputRootDirectory',
          `${a.name}/${'n'.repeat(256)}`,
          /^Failed to open input root directory ".*": ENAMETOOLONG: .*, openat2 '/,
        ],
        [
          'inputRootDirectory',
          `${a.name}/${'p/'.repeat(2100)}`,
          /^Failed to open input root directory ".*": ENAMETOOLONG: .*, openat2 '/,
        ],
        [
          'workingDirectory',
          '../..',
          /^Failed to resolve working directory: Path resolves to a location outside the build directory$/,
        ],
        ['workingDirectory', '/etc', /^Failed to resolve working directory: Path is absolute/],
        ['workingDirectory', 'e\0tc', /^Working directory must not contain NUL bytes$/],
        [
          'workingDirectory',
          'missing',
          /^Failed to enter the working directory "missing": ENOENT: .*, openat2 'missing'$/,
        ],
        [
          'stdoutPath',
          `${a.name}/out/x`,
          /^Failed to open stdout path ".*": Path contains a symbolic link \(ELOOP: .*, openat2 '.*'\)$/,
        ],
        [
          'stdoutPath',
          '../x',
          /^Failed to open stdout path "\.\.\/x": Path resolves to a location outside the build directory$/,
        ],
        [
          'stderrPath',
          `${a.name}/e\0rr`,
          /^Failed to open stderr path ".*": Path must not contain NUL bytes$/,
        ],
        [
          'stderrPath',
          `${a.name}/${'n'.repeat(256)}`,
          /^Failed to open stderr path ".*": ENAMETOOLONG: .*, openat2 '/,
        ],
        [
          'temporaryDirectory',
          `${a.name}/out`,
          /^Failed to open temporary directory ".*": Path contains a symbolic link \(ELOOP: .*, openat2 '.*'\)$/,
        ],
        ['temporaryDirectory', '/tmp', /^Failed to resolve temporary directory: Path is absolute/],
        [
          'temporaryDirectory',
          'missing',
          /^Failed to open temporary directory "missing": ENOENT: .*, openat2 'missing'$/,
        ],
      ];
      for (const [field, value, message] of cases) {
        await rejectsWith(
          client.run(a.request(['/bin/true'], { [field]: value })),
          status.INVALID_ARGUMENT,
          message,
        );
      }
    });

    it('refuses a gigantic argv or environment with E2BIG, and keeps serving', async () => {
      const a = action();
      await rejectsWith(
        client.run(a.request(['/bin/true', 'x'.repeat(200_000)])),
        status.INVALID_ARGUMENT,
        /^Failed to start process: the arguments and environment are too large: E2BIG: .*execveat/,
      );
      await rejectsWith(
        client.run(
          a.request(['/bin/true'], {
            environmentVariables: Object.fromEntries(
              Array.from({ length: 25_000 }, (_, i) => [`V${i}`, 'z'.repeat(100)]),
            ),
          }),
        ),
        status.INVALID_ARGUMENT,
        /E2BIG/,
      );
      // Beyond gRPC's 4 MiB message limit, the transport refuses the request before serve sees it.
      await rejectsWith(
        client.run(a.request(['/bin/true', 'x'.repeat(5 * 1024 * 1024)])),
        status.RESOURCE_EXHAUSTED,
        /message larger than max/,
      );
      assert.equal((await client.run(a.request(['/bin/true']))).exitCode, 0n);
    });

    it('refuses invalid UTF-8 in the environment and truncated messages on the wire, naming the field, and keeps serving', async () => {
      const a = action();
      const valid = toBinary(
        RunRequestSchema,
        create(RunRequestSchema, a.request(['sh', '-c', 'printf %s "$BAD" | od -An -tx1'])),
      );
      // environment_variables (field 2) entry BAD = 61 FF FE 62: not UTF-8, which proto3
      // strings must be. The protobuf runtime refuses the whole message.
      const key = Buffer.from('BAD');
      const value = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
      const entry = Buffer.concat([
        Buffer.from([0x0a, key.length]),
        key,
        Buffer.from([0x12, value.length]),
        value,
      ]);
      const raw = new Client(socket, credentials.createInsecure());
      const send = (bytes: Buffer) =>
        new Promise<Buffer>((resolve, reject) =>
          raw.makeUnaryRequest(
            '/buildbarn.runner.Runner/Run',
            (message: Buffer) => message,
            (reply: Buffer) => reply,
            bytes,
            (error: ServiceError | null, reply?: Buffer) =>
              error ? reject(error) : resolve(reply as Buffer),
          ),
        );
      try {
        await rejectsWith(
          send(Buffer.concat([valid, Buffer.from([0x12, entry.length]), entry])),
          status.INVALID_ARGUMENT,
          /^Malformed RunRequest: environment_variables\["BAD"\] is not valid UTF-8/,
        );
        await rejectsWith(
          send(Buffer.from(valid.subarray(0, valid.length - 3))),
          status.INVALID_ARGUMENT,
          /^Malformed RunRequest: /,
        );
      } finally {
        raw.close();
      }
      assert.deepEqual(readdirSync(join(buildPath, a.name)).sort(), ['root', 'tmp']);
      assert.equal((await client.run(a.request(['/bin/true']))).exitCode, 0n);
    });

    it('an action as uid 0 can neither ptrace nor signal serve, nor see it', async () => {
      const a = action();
      const response = await client.run(
        a.request(['sh', '-c', 'hostile ptrace $RUNNER; hostile kill $RUNNER; ps -o pid,comm'], {
          environmentVariables: { PATH: '/bin', RUNNER: String(serve.child.pid) },
        }),
      );
      assert.equal(response.exitCode, 0n);
      // serve is not in the action's PID namespace, whose PID 1 is the init.
      const [ptrace, kill, header, ...processes] = a.read('stdout-1').trim().split('\n');
      assert.deepEqual([ptrace, kill], ['ptrace-refused ESRCH', 'kill-refused ESRCH']);
      assert.match(header ?? '', /PID/);
      assert.match(processes[0] ?? '', /^\s*1 chroot-runner-i/);
      assert.ok(processes.length <= 3, processes.join('\n'));
    });

    it('runs a hundred actions while a mountpoint is swapped with a symlink: each ran inside or was refused', async (t) => {
      const a = action();
      const root = join(buildPath, a.name, 'root');
      const outside = mountsOutside(root, build.path);
      const swapper = await Swapper.start(root, ['proc'], '/', 1_000_000);
      const counts = { intact: 0, displaced: 0, refused: 0 };
      const total = 100;
      const concurrency = mode === 'namespaces' ? 12 : 1;
      let next = 0;
      const worker = async () => {
        while (next < total) {
          next++;
          const request = a.request(['sh', '-c', 'readlink /proc/self/exe && echo ok']);
          let response: RunResponse;
          try {
            response = await client.run(request);
          } catch (error) {
            const { code, details } = error as ServiceError;
            assert.equal(status[code], 'INVALID_ARGUMENT', details);
            assert.match(details, /\/proc/);
            counts.refused++;
            continue;
          }
          if (response.exitCode === 0n) {
            assert.equal(
              readFileSync(join(buildPath, request.stdoutPath), 'utf8'),
              '/bin/busybox\nok\n',
            );
            counts.intact++;
          } else {
            assert.equal(response.exitCode, 1n);
            counts.displaced++;
          }
        }
      };
      try {
        // Every worker settles before the checks below, so that a failure leaves no Run in
        // flight into the next test.
        const settled = await Promise.allSettled(Array.from({ length: concurrency }, worker));
        for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
      } finally {
        await swapper.stop();
      }
      assert.equal(mountsOutside(root, build.path), outside, 'a mount was left outside the root');
      assert.deepEqual(mountsBeneath(buildPath), []);
      assert.equal(counts.intact + counts.displaced + counts.refused, total);
      // How many the swaps hit depends on how the swapper and serve share the CPUs: only
      // reported. That a symlinked mountpoint is refused is the first test's; that the root
      // is whole again once the swapper stopped, this one's.
      t.diagnostic(JSON.stringify(counts));
      const intact = a.request(['sh', '-c', 'readlink /proc/self/exe && echo ok']);
      assert.equal((await client.run(intact)).exitCode, 0n);
      assert.equal(readFileSync(join(buildPath, intact.stdoutPath), 'utf8'), '/bin/busybox\nok\n');
      assert.deepEqual(mountsBeneath(buildPath), []);
      assert.deepEqual(processFootprint(serve.child.pid ?? 0).children, []);
    });
  });
}
