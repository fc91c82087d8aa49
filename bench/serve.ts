// The gRPC runner contenders: `chroot-runner serve`, or upstream bb_runner, as its own process
// with the same bb_runner configuration file, driven over its unix socket by the same client,
// as bb_worker drives bb_runner.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type Client, credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import {
  CheckReadinessRequestSchema,
  grpcServiceDefinition,
  Runner,
  type RunRequest,
  RunRequestSchema,
  RunResponseSchema,
} from '../src/proto/index.js';
import type { IsolationMode } from '../src/sandbox/types.js';
import { inputRootOf } from './engine.js';
import { Http2GrpcClient } from './http2-client.js';
import type { Action } from './load.js';

/** The package's command, resolved from dist/bench/. */
const command = fileURLToPath(new URL('../../bin/chroot-runner.js', import.meta.url));
const serveModule = fileURLToPath(new URL('../src/cli/serve.js', import.meta.url));

/** Why serve cannot be measured yet, or null when it can. */
export function serveMissing(): string | null {
  return existsSync(serveModule) ? null : 'src/cli/serve.ts does not exist yet';
}

type Callback = (error: Error | null, response?: { exitCode: bigint }) => void;
interface RunnerStub extends Client {
  run(request: unknown, callback: Callback): void;
  checkReadiness(request: unknown, callback: (error: Error | null) => void): void;
}

/** The gRPC client that runs the actions: the minimal one of bench/http2-client.ts, or
 * @grpc/grpc-js's. */
export type ServeClient = 'http2' | 'grpc-js';

/** The runner process: `chroot-runner serve` (`nodeArguments` go to its node, e.g.
 * --cpu-prof), or bb_runner's executable, which chroots into the input root and execs its
 * /usr/bin/env. */
export type RunnerServer =
  | { readonly kind: 'serve'; readonly isolation: IsolationMode; readonly nodeArguments: string[] }
  | { readonly kind: 'bb_runner'; readonly executable: string };

export interface RunningServe {
  readonly pid: number;
  /** Runs the input root's `true` over gRPC; stdout and stderr files go to `logs`. */
  action(logs: string): Action;
  stop(): Promise<void>;
}

/** Starts the runner on a build directory holding the input roots (inputRootOf), with a
 * bb_runner configuration written in `workDirectory`, and waits until CheckReadiness
 * answers. */
export async function startServe(
  workDirectory: string,
  buildDirectory: string,
  runner: RunnerServer,
  clientKind: ServeClient,
): Promise<RunningServe> {
  const name = runner.kind === 'serve' ? `serve-${runner.isolation}` : 'bb_runner';
  const socket = join(workDirectory, `${name}.sock`);
  const configuration = join(workDirectory, `${name}.json`);
  writeFileSync(
    configuration,
    JSON.stringify({
      buildDirectoryPath: buildDirectory,
      grpcServers: [{ listenPaths: [socket], authenticationPolicy: { allow: {} } }],
      chrootIntoInputRoot: true,
    }),
  );
  // Its log goes to a file, as in production.
  const logPath = join(workDirectory, `${name}.log`);
  const log = openSync(logPath, 'w');
  const [executable, ...args] =
    runner.kind === 'serve'
      ? [
          process.execPath,
          ...runner.nodeArguments,
          command,
          'serve',
          ...['--config', configuration, '--isolation', runner.isolation],
        ]
      : [runner.executable, configuration];
  const server = spawn(executable as string, args, { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise<never>((_, reject) =>
    server.once('exit', (code, signal) => {
      const tail = readFileSync(logPath, 'utf8').slice(-4000);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${tail}`));
    }),
  );
  exited.catch(() => {});

  const RunnerClient = makeGenericClientConstructor(grpcServiceDefinition(Runner), 'Runner');
  // One channel for the whole run; channelz (on by default) would keep per-call statistics.
  const client = new RunnerClient(`unix://${socket}`, credentials.createInsecure(), {
    'grpc.enable_channelz': 0,
  }) as unknown as RunnerStub;
  try {
    await Promise.race([exited, ready(client)]);
  } catch (error) {
    client.close();
    await stopProcess(server);
    throw error;
  }

  const http2Client = clientKind === 'http2' ? new Http2GrpcClient(socket) : undefined;
  const run = (request: RunRequest): Promise<{ exitCode: bigint }> =>
    http2Client === undefined
      ? new Promise((resolve, reject) =>
          client.run(request, (error, response) =>
            error === null && response !== undefined ? resolve(response) : reject(error),
          ),
        )
      : http2Client
          .unary('/buildbarn.runner.Runner/Run', toBinary(RunRequestSchema, request))
          .then((bytes) => fromBinary(RunResponseSchema, bytes));
  return {
    pid: server.pid as number,
    action(logs) {
      mkdirSync(join(buildDirectory, logs), { recursive: true });
      return async (index, loop) => {
        const response = await run(
          create(RunRequestSchema, {
            arguments: ['/bin/true'],
            environmentVariables: { PATH: '/bin' },
            workingDirectory: '',
            stdoutPath: `${logs}/${index}.stdout`,
            stderrPath: `${logs}/${index}.stderr`,
            inputRootDirectory: inputRootOf(loop),
          }),
        );
        if (response.exitCode !== 0n) throw new Error(`true exited with ${response.exitCode}`);
      };
    },
    async stop() {
      http2Client?.close();
      client.close();
      await stopProcess(server);
    },
  };
}

/** Waits (at most 30 s) for the socket to accept a connection, then for CheckReadiness. */
async function ready(client: RunnerStub): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 30_000, (error) => (error ? reject(error) : resolve())),
  );
  await new Promise<void>((resolve, reject) =>
    client.checkReadiness(create(CheckReadinessRequestSchema, {}), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exit;
  clearTimeout(timer);
}
