// The execution engine: runs one action chrooted into its input root, isolated as its
// settings say, and reports how it ended. See types.ts for the contract.
import { readlinkSync, realpathSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { posix } from 'node:path';
import { listMounts, type Mount, openMount, unmountat } from '../mounts/index.js';
import { type DirectoryHandle, type Fd, isSystemError, openDirectory } from '../syscalls/index.js';
import {
  isStepError,
  type ProcessExit,
  pidfdSendSignal,
  type SpawnedProcess,
  spawn,
  watchExit,
} from '../syscalls/process.js';
import {
  isSpecialMountpoint,
  mountSpecialFilesystems,
  SetupError,
  SharedMounts,
} from './filesystems.js';
import { hostResources, mountNamespaceTemplate } from './host.js';
import { outcome } from './outcome.js';
import { type PlanBuilder, runnerStep } from './plan.js';
import {
  createLogFile,
  findExecutable,
  openInputRoot,
  openTemporaryDirectory,
  workingDirectoryPath,
} from './request.js';
import { buildPlan, hasPidNamespace, pivotsIntoRoot, type RequestFiles } from './setup.js';
import {
  ActionError,
  type ActionResult,
  type ActionSpec,
  type IsolationSettings,
} from './types.js';

export { defaultCapabilities } from './capabilities.js';
export { defaultFilesystems, defaultIsolation } from './defaults.js';
export * from './types.js';

/** Opens what every action needs from the host (device nodes, /dev/null, the init, and where
 * the runner may create one, the empty mount namespace of namespaces mode), once. runAction
 * does it on first use; call it earlier to keep that cost off the first action (and to take
 * the long-lived fds out of a before/after fd count). */
export function prepareSandbox(): void {
  hostResources();
  try {
    mountNamespaceTemplate();
  } catch (error) {
    // A rootless runner, or a seccomp profile without namespaces: only namespaces mode needs
    // it, and its actions report why it cannot be made.
    if (!isSystemError(error)) throw error;
  }
}

/** Whether the action gets /proc, /sys, /dev and /tmp mounted for it. Without
 * chrootIntoInputRoot only modes with a mount namespace of their own mount them (over their
 * copy of the runner's tree): elsewhere they would be mounted over the runner's own. */
function mountsSpecialFilesystems(isolation: IsolationSettings): boolean {
  if (isolation.mode === 'none') return false;
  return isolation.chrootIntoInputRoot !== false || pivotsIntoRoot(isolation.mode);
}

/** Whether the request's temporary directory is the action's /tmp (TMPDIR=/tmp then). Not
 * without chrootIntoInputRoot: the build directory itself may be beneath the runner's /tmp. */
export function mountsTemporaryDirectory(isolation: IsolationSettings): boolean {
  return (
    isolation.filesystems.tmp &&
    isolation.chrootIntoInputRoot !== false &&
    mountsSpecialFilesystems(isolation)
  );
}

/** Without chrootIntoInputRoot the action's root is the runner's, and its working directory
 * the input root's, reached from there by the path the runner sees it at. */
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

/** Opens what the request names beneath the build directory, besides the input root. Called
 * once the program was found, so that a refused request leaves no log files (as bb_runner). */
function openRequestFiles(
  spec: ActionSpec,
  inputRoot: DirectoryHandle,
  opened: Fd[],
): RequestFiles {
  const keep = <T extends Fd>(fd: T): T => {
    opened.push(fd);
    return fd;
  };
  const { buildDirectory, isolation } = spec;
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
    mountsTemporaryDirectory(isolation);
  const temporaryDirectory = wantsTemporary
    ? keep(openTemporaryDirectory(buildDirectory, spec.temporaryDirectory ?? ''))
    : undefined;
  return { inputRoot, stdout, stderr, temporaryDirectory };
}

function checkArguments(argv: readonly string[]): void {
  if (argv.length === 0) {
    throw new ActionError('invalidArgument', 'Insufficient number of command arguments');
  }
  if (argv.some((argument) => argument.includes('\0'))) {
    throw new ActionError('invalidArgument', 'Command arguments must not contain NUL bytes');
  }
}

/** Where the action is only chrooted (shared, none), CAP_SYS_CHROOT would let it chroot into
 * a subdirectory and walk ".." from its cwd, now outside its root, up to the host's root:
 * it is never kept there. Pivoted modes detach the old root, so ".." finds nothing. */
function withoutChroot(spec: ActionSpec): ActionSpec {
  if (pivotsIntoRoot(spec.isolation.mode)) return spec;
  const keepCapabilities = spec.isolation.keepCapabilities.filter(
    (name) => name.toUpperCase().replace(/^CAP_/, '') !== 'SYS_CHROOT',
  );
  return { ...spec, isolation: { ...spec.isolation, keepCapabilities } };
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

/** Waits for the init to exit; an abort kills the tree first. */
async function waitForExit(
  spec: ActionSpec,
  spawned: SpawnedProcess,
): Promise<{ exit: ProcessExit; aborted: boolean }> {
  const { signal } = spec;
  let aborted = false;
  const kill = (): void => {
    aborted = true;
    // PID 1 dying kills its namespace; a subreaper init kills its tree on SIGTERM.
    const { SIGKILL, SIGTERM } = osConstants.signals;
    pidfdSendSignal(spawned.pidfd, hasPidNamespace(spec.isolation.mode) ? SIGKILL : SIGTERM);
  };
  if (signal?.aborted === true) kill();
  else signal?.addEventListener('abort', kill, { once: true });
  try {
    return { exit: await watchExit(spawned.pidfd, spawned.pid, spawned.statusPipe), aborted };
  } finally {
    signal?.removeEventListener('abort', kill);
  }
}

/** Runs one action; see ActionSpec. Rejects with ActionError when it could not be run, with
 * an AbortError when spec.signal aborted it. */
export async function runAction(spec: ActionSpec): Promise<ActionResult> {
  const started = performance.now();
  const { isolation, signal } = spec;
  checkArguments(spec.arguments);
  if (signal?.aborted === true) throw abortError(signal);
  const host = hostResources();
  const opened: Fd[] = [];
  const mounts = new SharedMounts();
  let spawned: SpawnedProcess | undefined;
  let ran: { exit: ProcessExit; aborted: boolean };
  let unmountFailure: unknown;
  let program = '';
  let launched = started;
  let exited = started;
  try {
    let root = openInputRoot(spec.buildDirectory, spec.inputRoot);
    opened.push(root);
    let workingDirectory = workingDirectoryPath(spec.workingDirectory);
    if (isolation.chrootIntoInputRoot === false) {
      ({ root, workingDirectory } = runnerRootView(root, workingDirectory));
      opened.push(root);
    }
    program = findExecutable(
      root,
      spec.arguments[0] ?? '',
      spec.environment.PATH,
      workingDirectory,
    );
    const files = openRequestFiles(spec, root, opened);
    let procHolder: Mount | undefined;
    if (isolation.mode === 'shared' && mountsSpecialFilesystems(isolation)) {
      mounts.claim(files.inputRoot, spec.inputRoot);
      try {
        procHolder = mountSpecialFilesystems(
          mounts,
          files.inputRoot,
          host,
          files.temporaryDirectory,
          isolation.filesystems,
        );
      } catch (error) {
        throw error instanceof SetupError ? setupFailure(error) : error;
      }
    }
    spawned = await launch(
      buildPlan(withoutChroot(spec), host, files, program, workingDirectory, procHolder),
    );
    launched = performance.now();
    // The action holds its own copies now.
    for (const fd of opened.splice(0)) fd.close();
    ran = await waitForExit(spec, spawned);
    exited = performance.now();
  } finally {
    for (const fd of opened) fd.close();
    spawned?.pidfd.close();
    spawned?.statusPipe?.close();
    try {
      mounts.unmountAll();
    } catch (error) {
      // Reported below, unless something else is being thrown already.
      unmountFailure = error;
    }
  }
  if (unmountFailure !== undefined) {
    const cause = isSystemError(unmountFailure) ? unmountFailure : undefined;
    const reason = cause?.message ?? String(unmountFailure);
    throw new ActionError('internal', `Failed to unmount: ${reason}`, cause);
  }
  if (ran.aborted && signal !== undefined) throw abortError(signal);
  return {
    ...outcome(ran.exit, program),
    timings: {
      setup: launched - started,
      run: exited - launched,
      teardown: performance.now() - exited,
    },
  };
}

/** Detaches every mount stacked at `relative` beneath `directory` (the procfs on its holder
 * at /proc, in shared mode): a handle opened by path names the topmost one. */
function detachStack(directory: DirectoryHandle, relative: string): void {
  for (;;) {
    let mount: Mount;
    try {
      mount = openMount(directory, relative);
    } catch (error) {
      if (isSystemError(error, 'EINVAL')) return;
      throw error;
    }
    unmountat(mount);
  }
}

/** Detaches the mounts that shared mode makes in input roots (/proc, /sys, /dev, /tmp and
 * what is in them) left beneath the build directory by a runner that was killed; never the
 * build directory's own mount, nor any other mount. Call it at start-up, before any action
 * runs. Returns the mountpoints it detached. */
export function sweepStaleMounts(buildDirectoryPath: string): string[] {
  // mountinfo shows canonical paths.
  const canonical = realpathSync.native(buildDirectoryPath);
  if (canonical === '/') throw new Error('refusing to sweep mounts beneath /');
  const prefix = `${canonical}/`;
  const directory = openDirectory(canonical);
  try {
    const swept: string[] = [];
    // Outermost first: detaching one takes what is mounted beneath it along.
    for (const mount of listMounts(canonical)) {
      const relative = mount.mountPoint.slice(prefix.length);
      if (!mount.mountPoint.startsWith(prefix) || !isSpecialMountpoint(relative)) continue;
      if (swept.some((done) => relative === done || relative.startsWith(`${done}/`))) continue;
      detachStack(directory, relative);
      swept.push(relative);
    }
    return swept;
  } finally {
    directory.close();
  }
}
