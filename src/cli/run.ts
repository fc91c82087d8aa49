// `chroot-runner run`: runs one action with stdio passed through and exits with its status.
//
//   chroot-runner run --input-root DIR [--isolation MODE]
//                     [--workdir PATH] [--env K=V]... [--tmp DIR] -- ARGV...
//
// Exit status: the action's exit code; 128+N when signal N killed it. When the action could
// not be run, as env(1) does: 127 when the program cannot be found, 126 when it cannot be
// executed, 125 for any other failure.
import { realpathSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Command, Option } from 'commander';
import {
  ActionError,
  defaultIsolation,
  Engine,
  type IsolationMode,
  isolationModes,
} from '../sandbox/index.js';

const defaultPath = 'PATH=/usr/local/bin:/usr/bin:/bin';

const exitNotFound = 127;
const exitNotExecutable = 126;
const exitRunnerFailure = 125;

interface RunOptions {
  readonly inputRoot: string;
  readonly isolation: IsolationMode;
  readonly workdir: string;
  readonly env: readonly string[];
  readonly tmp?: string;
}

function collect(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

function parseEnvironment(assignments: readonly string[]): Record<string, string> {
  const environment: Record<string, string> = {};
  const withPath = assignments.some((assignment) => assignment.startsWith('PATH='))
    ? assignments
    : [...assignments, defaultPath];
  for (const assignment of withPath) {
    const equals = assignment.indexOf('=');
    if (equals <= 0) throw new Error(`--env needs NAME=VALUE, got "${assignment}"`);
    environment[assignment.slice(0, equals)] = assignment.slice(equals + 1);
  }
  return environment;
}

/** A host directory as a path beneath "/", the build directory of a CLI run. */
function beneathRoot(path: string): string {
  return realpathSync.native(path).slice(1);
}

function exitStatusForError(error: ActionError): number {
  if (error.reason === 'programNotFound') return exitNotFound;
  if (error.reason === 'execFailed') {
    return error.cause?.code === 'ENOENT' ? exitNotFound : exitNotExecutable;
  }
  return exitRunnerFailure;
}

async function run(argv: readonly string[], options: RunOptions): Promise<number> {
  const inputRoot = beneathRoot(options.inputRoot);
  if (inputRoot === '') throw new Error('--input-root must not be /');
  const engine = await Engine.open({
    buildDirectory: '/',
    // One action: namespaces made ahead of it would only be made and closed again.
    isolation: { ...defaultIsolation, mode: options.isolation, preparedNetworkNamespaces: 0 },
  });
  const abort = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    received = signal;
    abort.abort();
  };
  for (const signal of signals) process.on(signal, onSignal);
  try {
    // What a killed runner left in the input root (shared mode's mounts).
    engine.sweep(inputRoot);
    const result = await engine.run({
      inputRoot,
      arguments: argv,
      environment: parseEnvironment(options.env),
      workingDirectory: options.workdir,
      stdoutPath: '',
      stderrPath: '',
      inheritStdio: true,
      ...(options.tmp !== undefined ? { temporaryDirectory: beneathRoot(options.tmp) } : {}),
      signal: abort.signal,
    });
    if (result.exitCode !== null) return result.exitCode;
    return 128 + (osConstants.signals[`SIG${result.terminationSignal}` as NodeJS.Signals] ?? 0);
  } catch (error) {
    if (received !== undefined) return 128 + osConstants.signals[received];
    if (!(error instanceof ActionError)) throw error;
    process.stderr.write(`chroot-runner run: ${error.message}\n`);
    return exitStatusForError(error);
  } finally {
    await engine.close();
    for (const signal of signals) process.off(signal, onSignal);
  }
}

export function addRunCommand(program: Command): void {
  program.addCommand(
    new Command('run')
      .description('run one action chrooted into an input root, with stdio passed through')
      .requiredOption('--input-root <dir>', 'the input root: becomes / of the action')
      .addOption(
        new Option('--isolation <mode>', 'how the action is isolated')
          .choices(isolationModes)
          .default('namespaces'),
      )
      .option('--workdir <path>', 'working directory, relative to the input root', '')
      .option(
        '--env <name=value>',
        'an environment variable (repeatable); nothing is inherited',
        collect,
        [],
      )
      .option('--tmp <dir>', 'a directory bound at /tmp inside')
      .argument('<argv...>', 'the command, after --')
      .action(async (argv: string[], options: RunOptions) => {
        try {
          process.exitCode = await run(argv, options);
        } catch (error) {
          process.stderr.write(`chroot-runner run: ${(error as Error).message}\n`);
          process.exitCode = exitRunnerFailure;
        }
      }),
  );
}
