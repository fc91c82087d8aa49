// Starts the runner: the execution engine, its stale-resource sweep, the composed runner, its gRPC
// servers and the diagnostics HTTP server; and stops it gracefully.

import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { Server, ServerCredentials, type ServerOptions, status } from '@grpc/grpc-js';
import {
  type CgroupLimits,
  CgroupsUnavailable,
  type CgroupTree,
  lostWithoutCgroups,
  openCgroupTree,
} from '../cgroups/index.js';
import { grpcServiceDefinition, Health, Runner as RunnerService } from '../proto/index.js';
import type { OomReporting } from '../runner/local.js';
import { RunnerError } from '../runner/runner.js';
import { Engine } from '../sandbox/index.js';
import { composeRunner } from './compose.js';
import type { ApplicationConfiguration } from './config.js';
import { createLogger, type Logger } from './log.js';
import { RunnerMetrics } from './metrics.js';
import { refuseUnservableConfiguration, StartupError } from './preflight.js';
import {
  healthServiceImplementation,
  RunnerServiceState,
  refusingMalformedRequests,
  runnerServiceImplementation,
} from './service.js';

export interface RunningServer {
  /** gRPC addresses listened on, as clients write them (unix:///path, host:port). */
  readonly grpcAddresses: readonly string[];
  /** Diagnostics HTTP addresses (host:port). */
  readonly diagnosticsAddresses: readonly string[];
  readonly logger: Logger;
  /** Stops accepting Runs, waits up to the grace period for running actions, aborts the rest,
   * and closes everything. */
  shutdown(gracePeriodMs?: number): Promise<void>;
}

/** Go's listen address forms (":8991", "host:8991", "[::1]:8991") as host and port. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(address);
  if (match === null) throw new Error(`invalid listen address ${JSON.stringify(address)}`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port: Number(match[3]) };
}

function grpcTarget({ host, port }: { host: string; port: number }): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A socket left by a previous runner would make bind fail; anything else is not ours. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** `step`'s result; its failure as a StartupError saying what could not be done. */
function startupStep<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    throw new StartupError(`${what}: ${(error as Error).message}`);
  }
}

/** What `bound` resolves to; a failure to listen as a StartupError naming the address and, for
 * an address in use, the fix. */
async function listening<T>(what: string, bound: Promise<T>): Promise<T> {
  try {
    return await bound;
  } catch (error) {
    const failure = error as NodeJS.ErrnoException;
    const inUse = failure.code === 'EADDRINUSE' || /EADDRINUSE|in use/i.test(failure.message);
    throw new StartupError(
      inUse
        ? `${what}: the address is in use (EADDRINUSE). Fix: stop what listens there, or choose another address`
        : `${what}: ${failure.message}`,
    );
  }
}

function bind(server: Server, target: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(target, ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
}

/** Binds a unix socket with exactly `mode`, whatever the umask: whoever may connect to it may
 * run actions (as root, unless runCommandsAs says otherwise). The umask covers the moment
 * between bind and chmod. */
async function bindSocket(server: Server, path: string, mode: number): Promise<number> {
  const umask = process.umask(0o777);
  try {
    return await bind(server, `unix://${path}`);
  } finally {
    process.umask(umask);
    chmodSync(path, mode);
  }
}

interface DiagnosticsContext {
  readonly metrics: RunnerMetrics | undefined;
  readonly state: RunnerServiceState;
  readonly logger: Logger;
  /** The server's authenticationPolicy.deny: every request is refused with it. */
  readonly denyMessage: string | undefined;
}

/** The diagnostics HTTP server's routes, matched by path (a query string is ignored, as Go's
 * ServeMux does): /metrics, /-/healthy and /-/ready. A denying policy answers 403 with its
 * message, and is logged. */
function diagnosticsHandler(context: DiagnosticsContext): RequestListener {
  const { metrics, state, logger, denyMessage } = context;
  return (request, response) => {
    const path = new URL(request.url ?? '/', 'http://diagnostics').pathname;
    if (denyMessage !== undefined) {
      logger.warn(
        { path, remoteAddress: request.socket.remoteAddress, error: denyMessage },
        'diagnostics request denied',
      );
      response
        .writeHead(403, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`${denyMessage}\n`);
      return;
    }
    if (metrics !== undefined && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) =>
          response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500).end(error.message),
      );
      return;
    }
    if (path === '/-/healthy' || path === '/-/ready') {
      response.writeHead(state.serving ? 200 : 503).end();
      return;
    }
    response.writeHead(404).end();
  };
}

export interface StartOptions {
  /** pino level of the log ('info' logs every action; the demo uses 'warn'). */
  readonly logLevel?: string;
}

/** The tree of the actions' cgroups, swept of what a killed runner left; undefined when the
 * configuration turns cgroups off, or (mode auto) the runner cannot make them. */
async function openActionCgroups(
  configuration: ApplicationConfiguration,
  logger: Logger,
): Promise<
  | {
      readonly tree: CgroupTree;
      readonly limits: CgroupLimits;
      readonly oomReporting: OomReporting;
      readonly preparedAhead: number;
    }
  | undefined
> {
  const settings = configuration.cgroups;
  if (settings === undefined) return undefined;
  let tree: CgroupTree;
  try {
    tree = openCgroupTree(settings);
  } catch (error) {
    if (settings.required || !(error instanceof CgroupsUnavailable)) throw error;
    logger.warn(
      { reason: error.message, lost: lostWithoutCgroups },
      'actions run without a cgroup of their own',
    );
    return undefined;
  }
  const swept = await tree.sweep();
  if (swept.length > 0) {
    logger.warn({ swept }, 'cgroup scopes of runners no longer running removed');
  }
  const { limits, oomReporting, preparedAhead } = settings;
  return { tree, limits, oomReporting, preparedAhead };
}

export async function startServer(
  configuration: ApplicationConfiguration,
  options: StartOptions = {},
): Promise<RunningServer> {
  const warnings = await refuseUnservableConfiguration(configuration);
  const logger = startupStep('cannot open the log files of global.logPaths', () =>
    createLogger(configuration.logPaths, options.logLevel),
  );
  for (const { problem, fix } of warnings) logger.warn({ problem, fix }, 'unsafe configuration');
  if (configuration.umask !== undefined) process.umask(configuration.umask);
  for (const key of configuration.ignoredKeys) {
    logger.warn({ key }, 'configuration key accepted for compatibility and ignored');
  }
  const cgroups = await openActionCgroups(configuration, logger);
  let engine: Engine;
  try {
    engine = await Engine.open({
      buildDirectory: configuration.buildDirectoryPath,
      isolation: configuration.isolation,
      ...(cgroups === undefined
        ? {}
        : {
            cgroups: {
              tree: cgroups.tree,
              limits: cgroups.limits,
              preparedAhead: cgroups.preparedAhead,
            },
          }),
    });
  } catch (error) {
    cgroups?.tree.close();
    throw new StartupError(`cannot prepare the sandbox: ${(error as Error).message}`);
  }
  // Run in reverse: the engine's close removes the cgroups it made ahead, before the tree's
  // removes the scope.
  const closers: (() => Promise<void> | void)[] = [];
  if (cgroups !== undefined) closers.push(() => cgroups.tree.close());
  closers.push(() => engine.close());
  const grpcServers: Server[] = [];
  const httpServers: HttpServer[] = [];
  try {
    if (!existsSync(configuration.buildDirectoryPath)) {
      // As bb_runner: serving, but not ready (CheckReadiness and Run fail) until it exists.
      logger.warn(
        { buildDirectoryPath: configuration.buildDirectoryPath },
        'build directory does not exist (yet): not ready until it does',
      );
    } else {
      // What the actions of a runner that was killed left behind (shared mode's mounts).
      const swept = engine.sweep();
      if (swept.length > 0) logger.warn({ swept }, 'stale mounts of a previous runner detached');
    }
    const runner = await composeRunner(configuration, engine, cgroups?.oomReporting);
    const metrics = configuration.diagnosticsHttpServer?.enablePrometheus
      ? new RunnerMetrics(configuration.buildDirectoryPath)
      : undefined;
    const state = new RunnerServiceState(
      runner,
      logger,
      metrics,
      configuration.isolation.mode,
      configuration.maximumConcurrentRuns,
    );
    const runnerDefinition = grpcServiceDefinition(RunnerService);
    const healthDefinition = grpcServiceDefinition(Health);
    metrics?.grpc.register(runnerDefinition);
    metrics?.grpc.register(healthDefinition);

    const grpcAddresses: string[] = [];
    for (const serverConfiguration of configuration.grpcServers) {
      // Channelz (on by default in grpc-js) keeps statistics of every call for an admin
      // service the runner does not offer.
      const options: ServerOptions = {
        'grpc.enable_channelz': 0,
        interceptors: metrics === undefined ? [] : [metrics.grpc.interceptor],
      };
      if (serverConfiguration.maximumReceivedMessageSizeBytes !== undefined) {
        options['grpc.max_receive_message_length'] =
          serverConfiguration.maximumReceivedMessageSizeBytes;
      }
      const server = new Server(options);
      grpcServers.push(server);
      server.addService(
        runnerDefinition,
        refusingMalformedRequests(
          RunnerService,
          runnerServiceImplementation(state, serverConfiguration.denyMessage),
          state,
        ),
      );
      server.addService(
        healthDefinition,
        refusingMalformedRequests(
          Health,
          healthServiceImplementation(state, new Set(['', serverConfiguration.healthCheckService])),
          state,
        ),
      );
      for (const path of serverConfiguration.listenPaths) {
        removeStaleSocket(path);
        await listening(
          `cannot listen on the unix socket ${path}`,
          bindSocket(server, path, configuration.socketMode),
        );
        grpcAddresses.push(`unix://${path}`);
        closers.push(() => removeStaleSocket(path));
      }
      for (const address of serverConfiguration.listenAddresses) {
        const listen = parseListenAddress(address);
        const port = await listening(
          `cannot listen on ${address}`,
          bind(server, grpcTarget(listen)),
        );
        grpcAddresses.push(grpcTarget({ ...listen, port }));
      }
    }

    const diagnosticsAddresses: string[] = [];
    for (const listener of configuration.diagnosticsHttpServer?.listeners ?? []) {
      const httpServer = createServer(
        diagnosticsHandler({ metrics, state, logger, denyMessage: listener.denyMessage }),
      );
      httpServers.push(httpServer);
      const listen = parseListenAddress(listener.address);
      httpServer.listen(listen.port, listen.host);
      await listening(
        `the diagnostics server cannot listen on ${listener.address}`,
        once(httpServer, 'listening'),
      );
      const bound = httpServer.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : listen.port;
      diagnosticsAddresses.push(grpcTarget({ ...listen, port }));
    }

    logger.info(
      {
        buildDirectoryPath: configuration.buildDirectoryPath,
        grpcAddresses,
        diagnosticsAddresses,
        isolation: configuration.isolation.mode,
        // Where each action's cgroup goes: <directory>/action-N on each hierarchy.
        cgroups:
          cgroups === undefined
            ? null
            : { version: cgroups.tree.version, directories: cgroups.tree.directories },
      },
      'serving',
    );

    let stopping: Promise<void> | undefined;
    const shutdown = (gracePeriodMs = configuration.shutdownGracePeriodMs): Promise<void> => {
      stopping ??= (async () => {
        state.stopServing();
        logger.info({ inFlight: state.inFlight, gracePeriodMs }, 'shutting down');
        const drained = Promise.all(
          grpcServers.map(
            (server) => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
          ),
        );
        const timer = setTimeout(
          () => state.abortAll(new RunnerError(status.UNAVAILABLE, 'Runner is shutting down')),
          gracePeriodMs,
        );
        await drained;
        clearTimeout(timer);
        await Promise.all(
          httpServers.map((server) => {
            server.closeAllConnections();
            return new Promise((resolve) => server.close(resolve));
          }),
        );
        for (const close of closers.reverse()) await close();
        logger.info('stopped');
      })();
      return stopping;
    };
    return { grpcAddresses, diagnosticsAddresses, logger, shutdown };
  } catch (error) {
    for (const server of grpcServers) server.forceShutdown();
    for (const server of httpServers) server.close();
    for (const close of closers.reverse()) await close();
    throw error;
  }
}
