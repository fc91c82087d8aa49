// The execution engine: runs actions chrooted into their input roots beneath one build
// directory, isolated as its settings say, and reports how each ended. It owns what its
// actions share (the host resources, what the mode prepared, the input-root claims); each
// action's own resources are contributions (contributions/), held in a stack and torn down
// in reverse order.
import { readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import {
  constants,
  type DirectoryHandle,
  type Fd,
  isSystemError,
  openDirectory,
} from '../syscalls/index.js';
import {
  isStepError,
  type ProcessExit,
  pidfdSendSignal,
  type SpawnedProcess,
  spawn,
  watchExit,
} from '../syscalls/process.js';
import { BackgroundWork } from './background.js';
import type { ActionCgroups } from './contributions/cgroup.js';
import type { ActionResource, Contribution, EngineContext } from './contributions/contribution.js';
import { ResourceStack } from './contributions/contribution.js';
import { contributions } from './contributions/registry.js';
import { HostIdSlots } from './contributions/user-namespace.js';
import { defaultPreparedCgroups } from './defaults.js';
import { HostResources } from './host.js';
import { failure, type LaunchOutcome, launchProbe } from './launch-probe.js';
import type { IsolationStrategy, PreparedMode } from './modes/mode.js';
import { isolationStrategy } from './modes/registry.js';
import { NetworkNamespacePool, namespacesWithSysfs } from './network-namespaces.js';
import { outcome } from './outcome.js';
import { PlanBuilder, runnerStep, SetupError } from './plan.js';
import { PreparedCgroups } from './prepared-cgroups.js';
import {
  createLogFile,
  findExecutable,
  openInputRoot,
  openTemporaryDirectory,
  type RequestFiles,
  workingDirectoryPath,
} from './request.js';
import { buildPlan } from './setup.js';
import {
  ActionError,
  type ActionResult,
  type ActionSpec,
  type IsolationSettings,
} from './types.js';

export interface EngineOptions {
  /** The build directory's host path: every path of an action is resolved beneath it. */
  readonly buildDirectory: string;
  readonly isolation: IsolationSettings;
  /** A cgroup of its own for every action, in this tree with these limits. */
  readonly cgroups?: ActionCgroups;
}

/** Errors of the input root's layout that are the request's fault. */
const inputRootErrors = new Set([
  'ELOOP',
  'ENOENT',
  'ENOTDIR',
  'EXDEV',
  'EISDIR',
  'EROFS',
  'EACCES',
  'ENAMETOOLONG',
  // open_tree of a mount the kernel detached because its mountpoint was replaced.
  'EINVAL',
]);

function setupFailure(error: SetupError): ActionError {
  // execve refused the request's argv and environment together: too large for the kernel.
  if (error.cause.code === 'E2BIG') {
    return new ActionError(
      'invalidArgument',
      `Failed to start process: the arguments and environment are too large: ${error.cause.message}`,
      error.cause,
      'execFailed',
    );
  }
  const { subject } = error.step;
  // Only errors of the tree's layout are the request's: EMFILE, ENOMEM and the like are ours.
  const request =
    (subject === 'workingDirectory' || subject === 'inputRoot') &&
    inputRootErrors.has(error.cause.code);
  return new ActionError(request ? 'invalidArgument' : 'internal', error.message, error.cause);
}

function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return error;
}

function checkArguments(argv: readonly string[]): void {
  if (argv.length === 0) {
    throw new ActionError('invalidArgument', 'Insufficient number of command arguments');
  }
  if (argv.some((argument) => argument.includes('\0'))) {
    throw new ActionError('invalidArgument', 'Command arguments must not contain NUL bytes');
  }
}

async function launch(plan: PlanBuilder): Promise<SpawnedProcess> {
  try {
    return await spawn(plan.build());
  } catch (error) {
    if (!isStepError(error)) throw error;
    const step = plan.step(error.step) ?? runnerStep('set up the action');
    throw setupFailure(new SetupError(step, error));
  }
}

/** Whether the request's temporary directory is the action's /tmp. Never without
 * chrootIntoInputRoot: /tmp is then the runner's own (the build directory may be beneath it). */
function temporaryDirectoryInside(settings: IsolationSettings): boolean {
  return (
    settings.chrootIntoInputRoot !== false &&
    isolationStrategy(settings.mode).temporaryDirectoryInside(settings)
  );
}

/** TMPDIR for an action whose temporary directory is `relative` to the build directory:
 * /tmp where the mode mounts it there, otherwise its host path, as bb_runner sets it. */
export function temporaryDirectoryPath(
  settings: IsolationSettings,
  buildDirectoryPath: string,
  relative: string,
): string {
  return temporaryDirectoryInside(settings) ? '/tmp' : join(buildDirectoryPath, relative);
}

/** Without chrootIntoInputRoot (bb_runner's plain command) the action's root is the runner's,
 * and its working directory the input root's, reached from there by the path the runner sees
 * it at. */
function runnerRootView(
  inputRoot: DirectoryHandle,
  workingDirectory: string,
): { root: DirectoryHandle; workingDirectory: string } {
  const path = readlinkSync(`/proc/self/fd/${inputRoot.fd}`);
  if (!path.startsWith('/')) {
    throw new ActionError(
      'internal',
      `The input root is not reachable from the runner's root (${path})`,
    );
  }
  return { root: openDirectory('/'), workingDirectory: posix.join(path, workingDirectory) };
}

/** A throwaway child that goes as far as the mode's own does before it unshares the action's
 * user namespace (namespaces mode: into its template mount namespace), then, as the action's
 * would, becomes `owner` (a host id of the range, as unprivileged as the action's owner: a
 * policy such as AppArmor's may refuse such a process what it grants root) and unshares one. */
export function probeActionUserNamespace(
  strategy: IsolationStrategy,
  prepared: PreparedMode,
  owner: number,
): Promise<LaunchOutcome> {
  const plan = new PlanBuilder();
  strategy.planUserNamespaceProbe?.(plan, prepared);
  plan.becomeNamespaceOwner(runnerStep(`become host uid ${owner}`), owner, owner);
  plan.unshare(runnerStep("create the action's user namespace"), constants.CLONE_NEWUSER);
  return launchProbe(plan);
}

/** Asks the kernel once, by a throwaway child that goes as far as the action's (about a
 * millisecond), whether it gives this runner's actions the user namespace that
 * actionUserNamespace asks for. It refuses one to a chrooted process (a runner that itself
 * runs chrooted, as the v2 guest's does, in a mode that does not pivot first), and where
 * user.max_user_namespaces is 0 or a seccomp profile refuses CLONE_NEWUSER: every action
 * would fail EPERM, so the engine refuses to open instead. */
async function refuseUngrantableUserNamespace(
  strategy: IsolationStrategy,
  settings: IsolationSettings,
  prepared: PreparedMode,
): Promise<void> {
  const range = settings.actionUserNamespace;
  if (!strategy.actionUserNamespace || range === undefined) return;
  const probed = await probeActionUserNamespace(strategy, prepared, range.firstHostId);
  if (probed.ran) return;
  throw new Error(
    `the kernel refuses this runner a user namespace per action in ${strategy.name} mode ` +
      `(${failure(probed)}): it refuses one to a chrooted process, and where ` +
      'user.max_user_namespaces is 0 or a seccomp profile refuses CLONE_NEWUSER (chroot-runner ' +
      'doctor says which). Fix: run the runner unchrooted, or in namespaces mode (which ' +
      'pivots first), or set chrootRunner.actionUserNamespace.enabled: false to run actions ' +
      "without one (their uid 0 is then the host's root: SECURITY.md, 6b)",
  );
}

export class Engine {
  readonly #context: EngineContext;
  readonly #prepared: PreparedMode;
  /** The contributions this engine's actions get, in preparation order. */
  readonly #contributions: readonly Contribution[];

  private constructor(context: EngineContext, prepared: PreparedMode) {
    this.#context = context;
    this.#prepared = prepared;
    this.#contributions = contributions.filter((contribution) => contribution.appliesTo(context));
  }

  /** Opens what every action needs from the host, prepares the mode (namespaces mode's
   * template mount namespace) and makes the first network namespaces and cgroups ahead: none
   * of it costs the first action. The build directory is not held: every call opens it (see
   * openBuildDirectory), and it need not exist yet. */
  static async open(options: EngineOptions): Promise<Engine> {
    const { isolation } = options;
    const strategy = isolationStrategy(isolation.mode);
    const preparedAhead = isolation.preparedNetworkNamespaces ?? 0;
    const networkNamespaces =
      strategy.actionUserNamespace && isolation.network && preparedAhead > 0
        ? new NetworkNamespacePool(
            preparedAhead,
            isolation.actionUserNamespace !== undefined,
            // Where actions mount a sysfs of their namespace (namespaces mode).
            strategy.specialMounts === 'action' && isolation.filesystems.sys
              ? namespacesWithSysfs()
              : undefined,
          )
        : undefined;
    const cgroups =
      options.cgroups === undefined
        ? undefined
        : new PreparedCgroups(
            options.cgroups.tree,
            options.cgroups.limits,
            options.cgroups.preparedAhead ?? defaultPreparedCgroups,
            options.cgroups.enterAtClone,
          );
    let host: HostResources | undefined;
    try {
      host = HostResources.open();
      const unprivilegedActionIds = strategy.unprivilegedActionIds(isolation, host);
      const [prepared] = await Promise.all([
        strategy.prepare({ filesystems: isolation.filesystems, host, unprivilegedActionIds }),
        networkNamespaces?.fill(),
        cgroups?.fill(),
      ]);
      try {
        await refuseUngrantableUserNamespace(strategy, isolation, prepared);
      } catch (error) {
        prepared.close();
        throw error;
      }
      return new Engine(
        {
          buildDirectoryPath: options.buildDirectory,
          settings: isolation,
          strategy,
          host,
          unprivilegedActionIds,
          inputRootClaims: new Set(),
          ...(cgroups === undefined ? {} : { cgroups }),
          ...(networkNamespaces === undefined ? {} : { networkNamespaces }),
          ...(isolation.actionUserNamespace === undefined
            ? {}
            : { hostIdSlots: new HostIdSlots(isolation.actionUserNamespace) }),
          background: new BackgroundWork(),
        },
        prepared,
      );
    } catch (error) {
      host?.close();
      await networkNamespaces?.close();
      await cgroups?.close();
      throw error;
    }
  }

  /** Opens the build directory by its path, as bb_runner does on every call: a file system
   * mounted over it after start-up (bb_worker's FUSE mount, remounted when the worker
   * restarts) is seen by the next action, and no handle pins an old mount. One openat2. */
  openBuildDirectory(): DirectoryHandle {
    const path = this.#context.buildDirectoryPath;
    try {
      return openDirectory(path);
    } catch (error) {
      const cause = isSystemError(error) ? error : undefined;
      throw new ActionError(
        'internal',
        `Failed to open build directory ${JSON.stringify(path)}: ${(error as Error).message}`,
        cause,
      );
    }
  }

  get isolation(): IsolationSettings {
    return this.#context.settings;
  }

  /** TMPDIR for an action whose temporary directory is `relative` (see the function). */
  temporaryDirectoryPath(relative: string): string {
    const { settings, buildDirectoryPath } = this.#context;
    return temporaryDirectoryPath(settings, buildDirectoryPath, relative);
  }

  /** Removes what a killed runner's actions left beneath `path` (relative to the build
   * directory; all of it by default): shared mode's mounts. Call it at start-up, before any
   * action runs. Returns what was removed. */
  sweep(path = ''): string[] {
    return this.#contributions.flatMap(
      (contribution) => contribution.sweep?.(this.#context, path) ?? [],
    );
  }

  /** Closes what the engine holds, once the network namespaces and cgroups being made
   * ahead are made, and removes the cgroups never used, once the background work of earlier
   * actions has landed (rejecting with what failed there). Actions still running keep their
   * own copies. */
  async close(): Promise<void> {
    this.#prepared.close();
    this.#context.host.close();
    await this.#context.networkNamespaces?.close();
    await this.#context.cgroups?.close();
    await this.#context.background.close();
  }

  /** Resolves once the background work the engine started for earlier actions has landed
   * (the pools' refills, the cgroups' removals): what the engine holds is then as it is
   * between actions, e.g. for a count of the runner's open fds or its cgroups. Actions never
   * wait for it. */
  async settled(): Promise<void> {
    const { networkNamespaces, cgroups, background } = this.#context;
    await Promise.all([networkNamespaces?.settled(), cgroups?.settled(), background.settled()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Runs one action. Rejects with ActionError when it could not be run, with an AbortError
   * when spec.signal aborted it. */
  async run(spec: ActionSpec): Promise<ActionResult> {
    const started = performance.now();
    const { signal } = spec;
    checkArguments(spec.arguments);
    if (signal?.aborted === true) throw abortError(signal);
    const { host, settings, strategy } = this.#context;
    const opened: Fd[] = [];
    const resources = new ResourceStack();
    const named: [string, ActionResource][] = [];
    let spawned: SpawnedProcess | undefined;
    let ran: { exit: ProcessExit; aborted: boolean };
    let exitWatched = false;
    const usage: Record<string, Readonly<Record<string, number | bigint | boolean>>> = {};
    let teardownFailure: unknown;
    let program = '';
    let launched = started;
    let exited = started;
    try {
      const buildDirectory = this.openBuildDirectory();
      opened.push(buildDirectory);
      let root = openInputRoot(buildDirectory, spec.inputRoot);
      opened.push(root);
      let workingDirectory = workingDirectoryPath(spec.workingDirectory);
      if (settings.chrootIntoInputRoot === false) {
        ({ root, workingDirectory } = runnerRootView(root, workingDirectory));
        opened.push(root);
      }
      program = findExecutable(
        root,
        spec.arguments[0] ?? '',
        spec.environment.PATH,
        workingDirectory,
      );
      const files = this.#openRequestFiles(spec, buildDirectory, root, opened);
      for (const contribution of this.#contributions) {
        let resource: ActionResource;
        try {
          resource = contribution.prepare({ engine: this.#context, spec, files });
        } catch (error) {
          throw error instanceof SetupError ? setupFailure(error) : error;
        }
        named.push([contribution.name, resources.push(resource)]);
      }
      spawned = await launch(
        buildPlan({
          spec,
          settings,
          host,
          files,
          prepared: this.#prepared,
          unprivilegedActionIds: this.#context.unprivilegedActionIds,
          strategy,
          resources: resources.resources,
          program,
          workingDirectory,
        }),
      );
      launched = performance.now();
      // The action holds its own copies now.
      for (const fd of opened.splice(0)) fd.close();
      ran = await this.#waitForExit(spec, spawned);
      exitWatched = true;
      exited = performance.now();
      for (const [name, resource] of named) {
        if (resource.usage !== undefined) usage[name] = resource.usage();
      }
    } finally {
      for (const fd of opened) fd.close();
      spawned?.pidfd.close();
      spawned?.statusPipe?.close();
      // A PID 1 init's exit reports its namespace empty; without a clone there is no process.
      const processesGone = spawned === undefined || (exitWatched && strategy.init === 'pid1');
      try {
        await resources.teardown({ processesGone });
      } catch (error) {
        // Reported below, unless something else is being thrown already.
        teardownFailure = error;
      }
    }
    if (teardownFailure !== undefined) {
      if (teardownFailure instanceof ActionError) throw teardownFailure;
      const cause = isSystemError(teardownFailure) ? teardownFailure : undefined;
      throw new ActionError(
        'internal',
        `Failed to tear down the action: ${cause?.message ?? String(teardownFailure)}`,
        cause,
      );
    }
    if (ran.aborted && signal !== undefined) throw abortError(signal);
    return {
      ...outcome(ran.exit, program),
      ...(named.length === 0 ? {} : { usage }),
      timings: {
        setup: launched - started,
        run: exited - launched,
        teardown: performance.now() - exited,
      },
    };
  }

  /** Opens what the request names beneath the build directory, besides the input root.
   * Called once the program was found, so that a refused request leaves no log files (as
   * bb_runner). */
  #openRequestFiles(
    spec: ActionSpec,
    buildDirectory: DirectoryHandle,
    inputRoot: DirectoryHandle,
    opened: Fd[],
  ): RequestFiles {
    const keep = <T extends Fd>(fd: T): T => {
      opened.push(fd);
      return fd;
    };
    const { settings } = this.#context;
    const stdout =
      spec.inheritStdio === true
        ? undefined
        : keep(createLogFile(buildDirectory, 'stdout path', spec.stdoutPath));
    const stderr =
      spec.inheritStdio === true
        ? undefined
        : keep(createLogFile(buildDirectory, 'stderr path', spec.stderrPath));
    const wantsTemporary =
      spec.temporaryDirectory !== undefined &&
      spec.temporaryDirectory !== '' &&
      temporaryDirectoryInside(settings);
    const temporaryDirectory = wantsTemporary
      ? keep(openTemporaryDirectory(buildDirectory, spec.temporaryDirectory ?? ''))
      : undefined;
    return { inputRoot, stdout, stderr, temporaryDirectory };
  }

  /** Waits for the init to exit; an abort kills the tree first. */
  async #waitForExit(
    spec: ActionSpec,
    spawned: SpawnedProcess,
  ): Promise<{ exit: ProcessExit; aborted: boolean }> {
    const { signal } = spec;
    let aborted = false;
    const kill = (): void => {
      aborted = true;
      pidfdSendSignal(spawned.pidfd, this.#context.strategy.killSignal);
    };
    if (signal?.aborted === true) kill();
    else signal?.addEventListener('abort', kill, { once: true });
    try {
      return { exit: await watchExit(spawned.pidfd, spawned.pid, spawned.statusPipe), aborted };
    } finally {
      signal?.removeEventListener('abort', kill);
    }
  }
}
