// `chroot-runner serve [--config FILE] [--isolation MODE]`: the Runner gRPC service, a drop-in
// for bb_runner. Without --config it serves an embedded default under the current directory.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { type IsolationMode, isolationModes } from '../sandbox/index.js';
import {
  type ApplicationConfiguration,
  ConfigurationError,
  defaultConfigurationDocument,
  loadConfiguration,
  parseConfiguration,
} from '../server/config.js';
import { type RunningServer, startServer } from '../server/serve.js';

export interface ServeOptions {
  readonly config?: string;
  readonly isolation?: IsolationMode;
}

/** Where the embedded default configuration puts the build directory and the socket. */
export const defaultDirectory = '.chroot-runner';

/** The configuration `serve` uses: the file's, or the embedded default (whose directories are
 * created). */
export function serveConfiguration(options: ServeOptions): ApplicationConfiguration {
  const overrides = options.isolation === undefined ? {} : { isolation: options.isolation };
  if (options.config !== undefined) return loadConfiguration(options.config, overrides);
  const configuration = parseConfiguration(
    defaultConfigurationDocument(resolve(defaultDirectory)),
    overrides,
  );
  mkdirSync(configuration.buildDirectoryPath, { recursive: true });
  return configuration;
}

/** Shuts the server down on SIGTERM or SIGINT (a second signal aborts running actions at
 * once), and resolves when it has stopped. Installed before the server starts, so that a
 * signal during start-up stops it as soon as it is up rather than killing the process. */
export function stopOnSignals(starting: Promise<RunningServer>): Promise<void> {
  return new Promise((resolve, reject) => {
    let signals = 0;
    const remove = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      const gracePeriodMs = signals > 1 ? 0 : undefined;
      starting.then((server) => {
        server.logger.info({ signal }, 'signal received');
        const stopped = server.shutdown(gracePeriodMs);
        if (gracePeriodMs === undefined) {
          stopped.then(() => {
            remove();
            resolve();
          }, reject);
        }
      }, reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    starting.catch((error: unknown) => {
      remove();
      reject(error);
    });
  });
}

export function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the Buildbarn Runner gRPC service (a drop-in for bb_runner)')
    .option(
      '--config <file>',
      'bb_runner configuration (.json, or .jsonnet with jsonnet installed)',
    )
    .addOption(
      new Option('--isolation <mode>', 'isolation mode, overriding the configuration').choices(
        isolationModes,
      ),
    )
    .action(async (options: ServeOptions) => {
      let configuration: ApplicationConfiguration;
      try {
        configuration = serveConfiguration(options);
      } catch (error) {
        if (!(error instanceof ConfigurationError)) throw error;
        process.stderr.write(`chroot-runner serve: ${error.message}\n`);
        process.exitCode = 2;
        return;
      }
      const starting = startServer(configuration);
      const stopped = stopOnSignals(starting);
      const server = await starting;
      if (options.config === undefined) {
        process.stdout.write(
          `chroot-runner: no --config given; serving the embedded default configuration:\n` +
            `  build directory: ${configuration.buildDirectoryPath}\n` +
            `  socket:          ${server.grpcAddresses.join(' ')}\n` +
            `  isolation:       ${configuration.isolation.mode}\n`,
        );
      }
      await stopped;
    });
}
