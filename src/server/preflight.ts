// What `serve` checks before it listens, so that it refuses to start, naming the fix, rather than
// serve Runs that would all fail: the configured isolation mode works on this host with these
// privileges (doctor's checks, in doctor's words), and the directories the configuration names
// exist and can be used. `check-config` runs the same checks without serving.
import { accessSync, existsSync, constants as fsConstants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  detectFeatures,
  type Features,
  isolationModeSupport,
  type ModeSupport,
} from '../doctor/index.js';
import type { IsolationMode } from '../sandbox/types.js';
import type { ApplicationConfiguration } from './config.js';

/** Start-up refused: what is wrong, and what to do about it. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export interface Problem {
  /** What is wrong, one sentence without its full stop. */
  readonly problem: string;
  readonly fix: string;
}

/** A problem as one paragraph, in doctor's form ("… . Fix: …"). */
export function describeProblem({ problem, fix }: Problem): string {
  return `${problem}. Fix: ${fix}`;
}

/** Modes worth switching to, best first; `none` (a plain chroot) is never suggested. */
const alternatives: readonly IsolationMode[] = ['namespaces', 'rootless', 'shared'];

/** Each unavailable mode's fix, followed by the mode to use instead where one works here (for
 * a runner without privileges, `--isolation rootless`). doctor prints these words too. */
export function withAlternatives(modes: readonly ModeSupport[]): ModeSupport[] {
  const working = alternatives.find((mode) =>
    modes.some((support) => support.mode === mode && support.available),
  );
  return modes.map((support) =>
    support.available || working === undefined
      ? support
      : {
          ...support,
          fix: `${support.fix}; or use --isolation ${working} (chrootRunner.isolation: "${working}"), which works here`,
        },
  );
}

/** Why `path` cannot be used as a directory this process writes in (undefined when it can). */
function unusableDirectory(path: string): string | undefined {
  try {
    if (!statSync(path).isDirectory()) return 'is not a directory';
    accessSync(path, fsConstants.W_OK | fsConstants.X_OK);
    return undefined;
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    if (code === 'ENOENT') return 'does not exist';
    if (code === 'ENOTDIR') return 'is not a directory (a component of its path is a file)';
    if (code === 'EACCES') return `is not writable by uid ${process.getuid?.()}`;
    return `cannot be used (${code ?? (error as Error).message})`;
  }
}

/** The first of `directory` and its ancestors that every user may write in without the
 * sticky bit: whoever can rename or remove the socket there can put a socket of their own in
 * its place, and answer bb_worker's Runs with results of actions that never ran. */
function replaceableByAnyone(directory: string): string | undefined {
  for (let path = directory; ; path = dirname(path)) {
    const { mode } = statSync(path);
    if ((mode & 0o002) !== 0 && (mode & 0o1000) === 0) return path;
    if (path === dirname(path)) return undefined;
  }
}

/** Why the socket `socket` cannot be served, and what to do. */
function socketProblem(socket: string): Problem | undefined {
  const directory = dirname(socket);
  const why = unusableDirectory(directory);
  if (why === 'does not exist') {
    return {
      problem: `the directory of the socket ${socket}, ${directory}, ${why}`,
      fix: `create ${directory} before starting the runner (bb-deployments: in the volume-init container), or change grpcServers[].listenPaths`,
    };
  }
  if (why?.startsWith('is not a directory')) {
    return {
      problem: `the directory of the socket ${socket}, ${directory}, ${why}`,
      fix: `make ${directory} a directory, or change grpcServers[].listenPaths`,
    };
  }
  if (why === undefined) return undefined;
  return {
    problem: `the directory of the socket ${socket}, ${directory}, ${why}`,
    fix: `let the runner's user create files in ${directory}, or change grpcServers[].listenPaths`,
  };
}

/** What makes the socket `socket` unsafe to serve, though it can be served: a warning, since
 * bb-deployments' own manifests make its directory 0777. */
function socketWarning(socket: string): Problem | undefined {
  const directory = dirname(socket);
  if (unusableDirectory(directory) !== undefined) return undefined;
  const open = replaceableByAnyone(directory);
  if (open === undefined) return undefined;
  return {
    problem:
      `every user may write in ${open} (mode ${(statSync(open).mode & 0o7777).toString(8).padStart(4, '0')}, no sticky bit), ` +
      `so any local user, or an action of another uid, could replace the socket ${socket} with one of their own and answer bb_worker's Runs`,
    fix: `chmod +t ${open} (bb-deployments' volume-init: chmod 1777 /worker rather than 0777), or put the socket in a directory only the runner's user may write in (0755)`,
  };
}

/** bb_runner's default, and bb-deployments': the action sees the runner's own file system, as
 * the ids it runs as, so a warning rather than a refusal. */
function chrootWarning(configuration: ApplicationConfiguration): Problem | undefined {
  if (configuration.isolation.chrootIntoInputRoot !== false) return undefined;
  return {
    problem:
      "chrootIntoInputRoot is false, so every action runs in the runner's own file system: " +
      'it reads whatever its ids may read on the host, and writes where every user may, such as ' +
      "the build directory's 0777 directories of other actions (their inputs and outputs) and /tmp",
    fix: 'set chrootIntoInputRoot: true, so that each action sees only its input root (docs/configuration.md, "Without chrootIntoInputRoot")',
  };
}

/** What serve warns about at start-up, serving nevertheless. */
function configurationWarnings(configuration: ApplicationConfiguration): Problem[] {
  const sockets = configuration.grpcServers.flatMap((server) =>
    server.listenPaths.flatMap((socket) => socketWarning(socket) ?? []),
  );
  const chroot = chrootWarning(configuration);
  return chroot === undefined ? sockets : [...sockets, chroot];
}

/** The directories and files the configuration names, checked as the runner will use them. */
function pathProblems(configuration: ApplicationConfiguration): Problem[] {
  const problems: Problem[] = [];
  for (const server of configuration.grpcServers) {
    for (const socket of server.listenPaths) {
      const problem = socketProblem(socket);
      if (problem !== undefined) problems.push(problem);
    }
  }
  for (const directory of configuration.cleanTemporaryDirectories) {
    const why = unusableDirectory(directory);
    if (why === undefined) continue;
    problems.push({
      problem: `cleanTemporaryDirectories entry ${directory} ${why}`,
      fix: `create ${directory} writable by the runner, or remove it from cleanTemporaryDirectories`,
    });
  }
  for (const file of configuration.logPaths) {
    const why = unusableDirectory(dirname(file));
    if (why === undefined) continue;
    problems.push({
      problem: `the directory of the log file ${file}, ${dirname(file)}, ${why}`,
      fix: `create ${dirname(file)} writable by the runner, or change global.logPaths`,
    });
  }
  return problems;
}

/** The configured mode as doctor judges it on this host, the build directory aside (a problem
 * of its own). */
function configuredModeSupport(
  configuration: ApplicationConfiguration,
  features: Features,
): ModeSupport {
  const { buildDirectory: _, ...checks } = features.checks;
  const modes = withAlternatives(isolationModeSupport({ ...features, checks }));
  const mode = modes.find((support) => support.mode === configuration.isolation.mode);
  if (mode === undefined) throw new Error(`unknown isolation mode ${configuration.isolation.mode}`);
  return mode;
}

export interface Preflight {
  readonly features: Features;
  readonly mode: ModeSupport;
  readonly problems: readonly Problem[];
  /** What serve logs as warnings, serving nevertheless. */
  readonly warnings: readonly Problem[];
}

/** Every check of the configuration against this host; no problem means `serve` would start. */
export async function preflight(configuration: ApplicationConfiguration): Promise<Preflight> {
  const features = await detectFeatures({ buildDirectory: configuration.buildDirectoryPath });
  const mode = configuredModeSupport(configuration, features);
  const problems: Problem[] = [];
  if (!mode.available) {
    problems.push({
      problem: `isolation mode ${mode.mode} does not work here: ${mode.reason}`,
      fix: mode.fix,
    });
  }
  const build = features.checks.buildDirectory;
  // One that does not exist yet (bb_worker mounts it later) only makes the runner not ready, as
  // bb_runner: it is opened at every call.
  if (build?.status === 'unavailable' && existsSync(configuration.buildDirectoryPath)) {
    problems.push({ problem: `${build.title} ${build.detail}`, fix: build.fix ?? '' });
  }
  // Every action loads the filter: without libseccomp every Run would fail.
  const filter = features.checks.libseccomp;
  if (configuration.isolation.seccomp.enabled && filter?.status === 'unavailable') {
    problems.push({ problem: `${filter.title}: ${filter.detail}`, fix: filter.fix ?? '' });
  }
  problems.push(...pathProblems(configuration));
  return { features, mode, problems, warnings: configurationWarnings(configuration) };
}

/** Throws a StartupError naming every problem, each with its fix; returns the warnings. */
export async function refuseUnservableConfiguration(
  configuration: ApplicationConfiguration,
): Promise<readonly Problem[]> {
  const { problems, warnings } = await preflight(configuration);
  if (problems.length > 0) {
    throw new StartupError(problems.map(describeProblem).join('\n'));
  }
  return warnings;
}
