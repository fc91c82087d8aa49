// `chroot-runner serve [FILE | --config FILE] [--isolation MODE]`: the Runner gRPC service, a
// drop-in for bb_runner (`bb_runner runner.jsonnet`). Without a configuration file it serves an
// embedded default under the current directory.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { type IsolationMode, isolationModes } from '../sandbox/types.js';
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
export async function serveConfiguration(options: ServeOptions): Promise<ApplicationConfiguration> {
  const overrides = options.isolation === undefined ? {} : { isolation: options.isolation };
  if (options.config !== undefined) return await loadConfiguration(options.config, overrides);
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
    .argument('[configuration]', 'bb_runner configuration file, as bb_runner takes it')
    .option('--config <file>', 'the same as the configuration argument')
    .addOption(
      new Option('--isolation <mode>', 'isolation mode, overriding the configuration').choices(
        isolationModes,
      ),
    )
    .action(async (file: string | undefined, options: ServeOptions, command: Command) => {
      if (file !== undefined && options.config !== undefined && file !== options.config) {
        command.error('chroot-runner serve: give the configuration file once');
      }
      const config = file ?? options.config;
      let configuration: ApplicationConfiguration;
      try {
        configuration = await serveConfiguration({ ...options, config });
      } catch (error) {
        if (!(error instanceof ConfigurationError)) throw error;
        process.stderr.write(`chroot-runner serve: ${error.message}\n`);
        process.exitCode = 2;
        return;
      }
      const starting = startServer(configuration);
      const stopped = stopOnSignals(starting);
      const server = await starting;
      if (config === undefined) {
        process.stdout.write(
          `chroot-runner: no configuration file given; serving the embedded default configuration:\n` +
            `  build directory: ${configuration.buildDirectoryPath}\n` +
            `  socket:          ${server.grpcAddresses.join(' ')}\n` +
            `  isolation:       ${configuration.isolation.mode}\n`,
        );
      }
      await stopped;
    });
}
