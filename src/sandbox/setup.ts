// The child's setup program for one action: isolation, working directory, stdio,
// privileges, and the exec of the init (native/init.c), in the order the kernel needs.
import { readlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Mount } from '../mounts/index.js';
import { constants, type DirectoryHandle, type Fd, isSystemError } from '../syscalls/index.js';
import { capabilitiesByName } from './capabilities.js';
import {
  type HostClones,
  planHostClones,
  planProc,
  planSpecialFilesystems,
  planUserNamespaceClones,
  type TemporaryDirectoryLocation,
} from './filesystems.js';
import { type HostResources, mountNamespaceTemplate } from './host.js';
import { beneathNoSymlinks, cwd, PlanBuilder, runnerStep, type Slot } from './plan.js';
import {
  ActionError,
  type ActionSpec,
  type IsolationMode,
  type UserNamespaceIds,
} from './types.js';

const CLONE_NEWNS = 0x00020000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWCGROUP = 0x02000000;

/** File descriptors of the init: the status pipe, and in subreaper mode its children list. */
const statusFd = 3;
const childrenFd = 4;

/** Everything an action holds open while it is being set up. */
export interface RequestFiles {
  readonly inputRoot: DirectoryHandle;
  readonly stdout: Fd | undefined;
  readonly stderr: Fd | undefined;
  readonly temporaryDirectory: DirectoryHandle | undefined;
}

/** The environment as execve takes it; names with '=' and NUL bytes anywhere cannot be
 * passed on faithfully, so they are refused rather than mangled. */
function environmentStrings(environment: Readonly<Record<string, string>>): string[] {
  return Object.entries(environment).map(([name, value]) => {
    if (name === '' || name.includes('=') || name.includes('\0') || value.includes('\0')) {
      throw new ActionError(
        'invalidArgument',
        `Invalid environment variable name or value: "${name}"`,
      );
    }
    return `${name}=${value}`;
  });
}

/** Whether the init runs as PID 1 of the action's own PID namespace (rather than as a
 * subreaper in the runner's, in none mode). */
export function hasPidNamespace(mode: IsolationMode): boolean {
  return mode !== 'none';
}

/** Whether the action gets a mount namespace of its own and pivots into its input root
 * (rather than being chrooted in the runner's mount namespace). */
export function pivotsIntoRoot(mode: IsolationMode): boolean {
  return mode === 'namespaces' || mode === 'rootless';
}

function runnerIds(): UserNamespaceIds {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** The ids the action gets in rootless mode: the runner's own, mapped as configured. The
 * request's credentials can only be those (setgroups is denied, other ids are unmapped). */
function userNamespaceIds(spec: ActionSpec): UserNamespaceIds {
  const inside = spec.isolation.userNamespace ?? runnerIds();
  const { credentials } = spec;
  if (
    credentials !== undefined &&
    (credentials.uid !== inside.uid ||
      credentials.gid !== inside.gid ||
      credentials.additionalGroups.length > 0)
  ) {
    throw new ActionError(
      'internal',
      `In rootless mode actions run as uid ${inside.uid}, gid ${inside.gid} (the runner's ids ` +
        'as mapped in their user namespace), without additional groups: cannot switch to ' +
        `uid ${credentials.uid}, gid ${credentials.gid}`,
    );
  }
  return inside;
}

/** Maps the runner's uid and gid (the only ids an unprivileged process may map, one line
 * each) in the child's new user namespace; setgroups must be denied before gid_map. */
function planIdMaps(plan: PlanBuilder, inside: UserNamespaceIds): void {
  const info = runnerStep(`map the runner's ids to uid ${inside.uid}, gid ${inside.gid}`);
  const outside = runnerIds();
  plan.writeFile(info, cwd, '/proc/self/setgroups', 'deny');
  plan.writeFile(info, cwd, '/proc/self/gid_map', `${inside.gid} ${outside.gid} 1\n`);
  plan.writeFile(info, cwd, '/proc/self/uid_map', `${inside.uid} ${outside.uid} 1\n`);
}

/** Where the runner sees the temporary directory it opened: the child reaches it by this
 * path in its new mount namespace, and checks that it is the same directory. */
function temporaryDirectoryLocation(
  temporaryDirectory: DirectoryHandle | undefined,
): TemporaryDirectoryLocation | undefined {
  if (temporaryDirectory === undefined) return undefined;
  const path = readlinkSync(`/proc/self/fd/${temporaryDirectory.fd}`);
  if (!path.startsWith('/')) {
    throw new ActionError(
      'internal',
      `The temporary directory is not reachable from the runner's root (${path})`,
    );
  }
  return { fd: temporaryDirectory, path };
}

function emptyMountNamespace(): Fd {
  try {
    return mountNamespaceTemplate();
  } catch (error) {
    if (!isSystemError(error)) throw error;
    throw new ActionError(
      'internal',
      `Failed to create the empty mount namespace that actions' namespaces copy: ${error.message}`,
      error,
    );
  }
}

/** The action's mount namespace, as a copy of an empty one (host.ts) with a clone of the input
 * root attached in it; returns the clone's slot, the new root. Copying the runner's namespace
 * instead (unshare alone) would copy every mount of the runner's, which pivot_root then
 * detaches again: a cost per action that grows with the host's mounts. */
function planRootInEmptyNamespace(plan: PlanBuilder, inputRoot: Slot): Slot {
  // Cloned while the runner's fd still refers to a mount of the current namespace.
  const clone = runnerStep('clone the input root');
  const root = plan.openTree(
    clone,
    inputRoot,
    '',
    constants.OPEN_TREE_CLONE | constants.AT_RECURSIVE,
  );
  // Before anything is mounted beneath it: a clone of a shared mount joins its peer group,
  // and the action's mounts would propagate to the host. As a slave it still receives the
  // host's.
  plan.mountSetattr(clone, root, 0, constants.AT_RECURSIVE, constants.MS_SLAVE);
  plan.setns(
    runnerStep('enter the empty mount namespace'),
    plan.inherit(emptyMountNamespace().fd),
    CLONE_NEWNS,
  );
  plan.unshare(runnerStep('create a mount namespace'), CLONE_NEWNS);
  // pivot_root needs the new root attached; the empty namespace's root has a directory for it.
  const attach = runnerStep('attach the input root in the new mount namespace');
  const mountpoint = plan.open(attach, cwd, 'root', {
    flags: constants.O_PATH | constants.O_DIRECTORY,
    resolve: beneathNoSymlinks,
  });
  plan.moveMount(attach, root, mountpoint);
  return root;
}

/** The child's setup: isolation, working directory, stdio, privileges, exec of the init. In
 * shared mode, `procHolder` is the runner's mount at /proc on which the child mounts the
 * procfs (see mountSpecialFilesystems). */
/** The child joins the action's cgroup (each hierarchy's, on v1) before it runs anything of
 * the action, then takes a cgroup namespace rooted there: the action sees its cgroup as /
 * and no cgroup above it. In rootless mode it runs once the child has its ids mapped, as
 * the delegated subtree's owner. */
function planCgroup(plan: PlanBuilder, directories: readonly Fd[]): void {
  if (directories.length === 0) return;
  const join = runnerStep("join the action's cgroup");
  for (const directory of directories) {
    plan.writeFile(join, plan.inherit(directory.fd), 'cgroup.procs', '0');
  }
  plan.unshare(runnerStep('create a cgroup namespace'), CLONE_NEWCGROUP);
}

export function buildPlan(
  spec: ActionSpec,
  host: HostResources,
  files: RequestFiles,
  program: string,
  workingDirectory: string,
  procHolder?: Mount,
  cgroupDirectories: readonly Fd[] = [],
): PlanBuilder {
  const { isolation } = spec;
  const pid1 = hasPidNamespace(isolation.mode);
  const rootless = isolation.mode === 'rootless';
  const userIds = rootless ? userNamespaceIds(spec) : undefined;
  const plan = new PlanBuilder();
  if (!rootless) planCgroup(plan, cgroupDirectories);
  const inputRoot = plan.inherit(files.inputRoot.fd);
  let root: Slot;
  let children: Slot | undefined;
  if (pivotsIntoRoot(isolation.mode)) {
    // With CLONE_NEWUSER the other namespaces are owned by the new user namespace, where the
    // child holds every capability.
    plan.cloneFlags =
      CLONE_NEWPID |
      CLONE_NEWIPC |
      CLONE_NEWUTS |
      (isolation.network ? CLONE_NEWNET : 0) |
      (rootless ? CLONE_NEWUSER : 0);
    if (userIds !== undefined) planIdMaps(plan, userIds);
    if (rootless) planCgroup(plan, cgroupDirectories);
    if (isolation.network) plan.loopbackUp(runnerStep('bring the loopback interface up'));
    let clones: HostClones;
    if (rootless) {
      plan.fchdir(runnerStep('enter the input root'), inputRoot);
      plan.unshare(runnerStep('create a mount namespace'), CLONE_NEWNS);
      // Before anything is mounted, or mounts (and the detach of the old root) would
      // propagate to the host wherever / is shared.
      plan.makeRootPrivate(
        runnerStep('make the mount tree a slave of the host'),
        constants.MS_SLAVE,
      );
      clones = planUserNamespaceClones(
        plan,
        host,
        temporaryDirectoryLocation(files.temporaryDirectory),
        isolation.filesystems,
        !isolation.network,
      );
      // pivot_root needs a mount point: bind the input root (now the cwd) onto itself. The
      // clone's fd names the new root from here on.
      const bind = runnerStep('bind the input root onto itself');
      root = plan.openTree(bind, cwd, '.', constants.OPEN_TREE_CLONE | constants.AT_RECURSIVE);
      plan.moveMount(bind, root, cwd);
    } else {
      clones = planHostClones(plan, host, files.temporaryDirectory, isolation.filesystems);
      root = planRootInEmptyNamespace(plan, inputRoot);
    }
    planSpecialFilesystems(plan, root, clones, isolation.filesystems);
    plan.pivotRoot(runnerStep('pivot into the input root'), root);
  } else if (pid1) {
    // shared: everything but the mount namespace. The action cannot see, signal or ptrace
    // the runner or other actions, and its /proc shows its own processes only.
    plan.cloneFlags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
    if (procHolder !== undefined)
      planProc(plan, plan.inherit(procHolder.fd), isolation.filesystems);
    plan.chroot(runnerStep('chroot into the input root'), inputRoot);
    root = inputRoot;
  } else {
    // Without a PID namespace the init finds the processes it must kill through its
    // children list, which it cannot open after the chroot.
    children = plan.open(
      runnerStep("open the init's children list"),
      cwd,
      '/proc/thread-self/children',
      {
        flags: constants.O_RDONLY,
        resolve: 0,
      },
    );
    plan.chroot(runnerStep('chroot into the input root'), inputRoot);
    root = inputRoot;
  }
  plan.chdir(
    {
      description: `enter the working directory "${spec.workingDirectory}"`,
      subject: 'workingDirectory',
    },
    root,
    workingDirectory,
    constants.RESOLVE_IN_ROOT | constants.RESOLVE_NO_MAGICLINKS,
  );
  const stdio = runnerStep('set up stdin, stdout and stderr');
  if (spec.inheritStdio === true) {
    for (const fd of [0, 1, 2]) plan.dup2(stdio, plan.inherit(fd), fd);
  } else {
    plan.dup2(stdio, plan.inherit(host.devNull.fd), 0);
    plan.dup2(stdio, plan.inherit(files.stdout?.fd ?? -1), 1);
    plan.dup2(stdio, plan.inherit(files.stderr?.fd ?? -1), 2);
  }
  plan.dup2(stdio, plan.statusPipe(), statusFd);
  if (children !== undefined) plan.dup2(stdio, children, childrenFd);
  plan.cloexecFrom(stdio, children !== undefined ? childrenFd + 1 : childrenFd);
  // Bounding set first: dropping it needs CAP_SETPCAP, which a non-root uid loses.
  plan.dropBoundingCapabilities(
    runnerStep('drop capabilities from the bounding set'),
    capabilitiesByName(isolation.keepCapabilities),
  );
  const { credentials } = spec;
  // In rootless mode the id maps set the credentials.
  if (credentials !== undefined && !rootless) {
    plan.setCredentials(
      runnerStep(`switch to uid ${credentials.uid}, gid ${credentials.gid}`),
      credentials.uid,
      credentials.gid,
      credentials.additionalGroups,
    );
  }
  plan.noNewPrivileges(runnerStep('set no_new_privs'));
  // After the credential change, which clears it. PID 1 dying takes the namespace with it;
  // a subreaper init kills its tree on SIGTERM.
  plan.parentDeathSignal(
    runnerStep('set the parent death signal'),
    pid1 ? osConstants.signals.SIGKILL : osConstants.signals.SIGTERM,
  );
  plan.exec(
    runnerStep('execute the init'),
    plan.inherit(host.init.fd),
    ['chroot-runner-init', pid1 ? 'pid1' : 'subreaper', program, ...spec.arguments],
    environmentStrings(spec.environment),
  );
  return plan;
}
