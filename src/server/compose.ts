// Builds the runner from its configuration: the core LocalRunner wrapped in one decorator per
// optional behaviour, in the same order as Buildbarn's bb_runner.

import { CleanRunner } from '../runner/clean.js';
import { type Cleaner, chainCleaners, IdleInvoker } from '../runner/cleaner.js';
import { commandCleaner } from '../runner/command-cleaner.js';
import { directoryCleaner } from '../runner/directory-cleaner.js';
import { LocalRunner } from '../runner/local.js';
import { PathExistenceCheckingRunner } from '../runner/path-existence-checking.js';
import { processTableCleaner } from '../runner/process-table-cleaner.js';
import type { Runner } from '../runner/runner.js';
import { TemporaryDirectorySymlinkingRunner } from '../runner/temporary-directory-symlinking.js';
import type { Engine } from '../sandbox/index.js';
import type { ApplicationConfiguration } from './config.js';

export async function composeRunner(
  configuration: ApplicationConfiguration,
  engine: Engine,
): Promise<Runner> {
  let runner: Runner = new LocalRunner({
    buildDirectory: engine.buildDirectory,
    credentials: configuration.runCommandsAs,
    setTmpdirEnvironmentVariable: configuration.setTmpdirEnvironmentVariable,
    engine,
  });

  for (const symlinkPath of configuration.symlinkTemporaryDirectories) {
    runner = new TemporaryDirectorySymlinkingRunner(
      runner,
      symlinkPath,
      configuration.buildDirectoryPath,
    );
  }

  const cleaners: Cleaner[] = [];
  if (configuration.cleanProcessTable) {
    cleaners.push(
      await processTableCleaner(configuration.runCommandsAs?.uid ?? process.getuid?.() ?? 0),
    );
  }
  for (const directory of configuration.cleanTemporaryDirectories) {
    cleaners.push(directoryCleaner(directory));
  }
  if (configuration.runCommandCleaner.length > 0) {
    cleaners.push(commandCleaner(configuration.runCommandCleaner));
  }
  if (cleaners.length > 0) {
    runner = new CleanRunner(runner, new IdleInvoker(chainCleaners(cleaners)));
  }

  if (configuration.readinessCheckingPathnames.length > 0) {
    runner = new PathExistenceCheckingRunner(runner, configuration.readinessCheckingPathnames);
  }
  return runner;
}
