// `chroot-runner check-config FILE`: validates a configuration and checks it against this host
// as `serve` does before it listens (the configured isolation mode with doctor's checks, the
// build, socket, log and temporary directories), without serving.
//
// Exit status: 0 when `serve` would start with it, 2 when it would refuse (the reasons and their
// fixes printed), as `serve` exits.
import { type Command, Option } from 'commander';
import { type IsolationMode, isolationModes } from '../sandbox/index.js';
import { describeProblem, preflight } from '../server/preflight.js';
import { formatCheck, formatMode } from './doctor.js';
import { loadConfigurationFile, reportStartupFailure } from './serve.js';

interface CheckConfigOptions {
  readonly isolation?: IsolationMode;
  readonly json?: boolean;
}

async function checkConfig(file: string, options: CheckConfigOptions): Promise<void> {
  const configuration = await loadConfigurationFile(
    file,
    options.isolation === undefined ? {} : { isolation: options.isolation },
  );
  const { features, mode, problems, warnings } = await preflight(configuration);
  if (options.json === true) {
    process.stdout.write(
      `${JSON.stringify({ checks: features.checks, mode, problems, warnings }, null, 2)}\n`,
    );
  } else {
    const lines = [
      `Configuration ${file}: valid.`,
      '',
      'Checks:',
      ...Object.values(features.checks).map(formatCheck),
      '',
      'Configured isolation mode:',
      formatMode(mode, false),
      '',
      problems.length === 0
        ? '`chroot-runner serve` would start with this configuration.'
        : '`chroot-runner serve` would refuse to start:',
      ...problems.map((problem) => `  - ${describeProblem(problem)}`),
      ...(warnings.length === 0 ? [] : ['', 'It would warn:']),
      ...warnings.map((warning) => `  - ${describeProblem(warning)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  process.exitCode = problems.length === 0 ? 0 : 2;
}

export function addCheckConfigCommand(program: Command): void {
  program
    .command('check-config')
    .description(
      'validate a configuration and check it against this host as serve would, without serving (exit 2 when serve would refuse it)',
    )
    .argument('<file>', 'bb_runner configuration (.json, or .jsonnet)')
    .addOption(
      new Option('--isolation <mode>', 'isolation mode, overriding the configuration').choices(
        isolationModes,
      ),
    )
    .option('--json', 'print the checks, the mode and the problems as JSON')
    .option('--debug', 'print the stack trace of an unexpected failure')
    .action(async (file: string, options: CheckConfigOptions & { debug?: boolean }) => {
      try {
        await checkConfig(file, options);
      } catch (error) {
        reportStartupFailure('check-config', error, options.debug === true);
      }
    });
}
