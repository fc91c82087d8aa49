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
import { StartupError } from '../server/preflight.js';
import { type RunningServer, startServer } from '../server/serve.js';

export interface ServeOptions {
  readonly config?: string;
  readonly isolation?: IsolationMode;
  readonly logLevel?: string;
  readonly debug?: boolean;
}

/** pino's levels, for --log-level. */
const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** A configuration file that cannot be read, as what to do about it. */
function unreadableConfiguration(file: string, error: NodeJS.ErrnoException): ConfigurationError {
  const fixes: Record<string, string> = {
    ENOENT: 'give the path of an existing bb_runner configuration file (.json or .jsonnet)',
    EACCES: `make it readable by uid ${process.getuid?.()}`,
    EISDIR: 'give the path of the configuration file, not of its directory',
  };
  const fix = fixes[error.code ?? ''] ?? 'give the path of a readable configuration file';
  return new ConfigurationError(
    `cannot read the configuration file ${file} (${error.code ?? error.message}). Fix: ${fix}`,
  );
}

/** The configuration file named by --config, read and validated. */
export function loadConfigurationFile(
  file: string,
  overrides: { isolation?: IsolationMode },
): ApplicationConfiguration {
  if (file === '-') {
    throw new ConfigurationError(
      'cannot read the configuration from standard input (--config -). Fix: give a file, as Buildbarn’s programs take it (for a pipe: --config /dev/stdin)',
    );
  }
  try {
    return loadConfiguration(file, overrides);
  } catch (error) {
    if (
      error instanceof ConfigurationError ||
      typeof (error as NodeJS.ErrnoException).code !== 'string'
    ) {
      throw error;
    }
    throw unreadableConfiguration(file, error as NodeJS.ErrnoException);
  }
}

/** A start-up failure as one paragraph on stderr, exit status 2; the stack only with --debug
 * (a failure of ours, not of the configuration or the host). */
export function reportStartupFailure(command: string, error: unknown, debug: boolean): void {
  const known = error instanceof ConfigurationError || error instanceof StartupError;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `chroot-runner ${command}: ${known ? message : `cannot start: ${message}`}\n` +
      (debug && error instanceof Error && error.stack !== undefined ? `${error.stack}\n` : '') +
      (known || debug ? '' : '(run with --debug for the stack trace)\n'),
  );
  process.exitCode = 2;
}

/** Where the embedded default configuration puts the build directory and the socket. */
export const defaultDirectory = '.chroot-runner';

/** The configuration `serve` uses: the file's, or the embedded default (whose directories are
 * created). */
export function serveConfiguration(options: ServeOptions): ApplicationConfiguration {
  const overrides = options.isolation === undefined ? {} : { isolation: options.isolation };
  if (options.config !== undefined) return loadConfigurationFile(options.config, overrides);
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
    .addOption(
      new Option('--log-level <level>', 'least severe log lines written')
        .choices(logLevels)
        .default('info'),
    )
    .option('--debug', 'print the stack trace of a start-up failure')
    .action(async (options: ServeOptions) => {
      let configuration: ApplicationConfiguration;
      let starting: Promise<RunningServer>;
      let stopped: Promise<void>;
      let server: RunningServer;
      try {
        configuration = serveConfiguration(options);
        starting = startServer(configuration, { logLevel: options.logLevel ?? 'info' });
        stopped = stopOnSignals(starting);
        // A failure to start is reported below, through `starting`.
        stopped.catch(() => {});
        server = await starting;
      } catch (error) {
        reportStartupFailure('serve', error, options.debug === true);
        return;
      }
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
