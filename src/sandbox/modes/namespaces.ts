// namespaces: new mount, PID, IPC and UTS namespaces (the network contribution adds one); the
// special filesystems mounted inside; the input root moved over the namespace's root and
// entered (coverInto); nothing to unmount afterwards. The action's mount namespace copies an
// empty template namespace rather than the runner's: a copy of the runner's would copy every
// host mount, at a cost per action that grows with the host's mounts.
import { constants as osConstants } from 'node:os';
import {
  constants,
  Fd,
  isSystemError,
  resolveBeneathOnly,
  type SystemError,
} from '../../syscalls/index.js';
import { runInRunnerFdTable } from '../../syscalls/process.js';
import {
  type MountTemplates,
  mountTemplates,
  planHostClones,
  planMountTemplates,
  planSpecialFilesystems,
} from '../filesystems.js';
import type { HostResources } from '../host.js';
import { launchProbe } from '../launch-probe.js';
import { cwd, PlanBuilder, type PlanFragment, runnerStep, type Slot } from '../plan.js';
import { ActionError, type SpecialFilesystems } from '../types.js';
import {
  type IsolationStrategy,
  type PlannedRoot,
  type PreparedMode,
  type PrepareSubject,
  unprivilegedWithRange,
} from './mode.js';
import {
  dropsBoundingSet,
  launcherRequirements,
  mountApi,
  mountsHere,
  needCheck,
} from './requirements.js';

const { O_PATH, O_DIRECTORY, O_RDONLY, MS_PRIVATE, MS_SLAVE } = constants;

/** A mount namespace whose mounts are an empty read-only tmpfs holding an empty directory
 * `root` (its root) and, for `subject`, the templates of its actions' special mounts
 * (filesystems.ts's MountTemplates). Entering it (setns) and unsharing it makes a namespace
 * of those mounts only, whatever the number of mounts of the runner's. Made by a child that
 * shares the runner's fd table and exits, leaving its fd on the namespace there. Needs
 * CAP_SYS_ADMIN. */
export async function createTemplateMountNamespace(
  subject: PrepareSubject | undefined,
): Promise<{ readonly namespace: Fd; readonly templates?: MountTemplates }> {
  const plan = new PlanBuilder();
  plan.cloneFlags = constants.CLONE_FILES | constants.CLONE_NEWNS;
  const info = runnerStep('create the empty mount namespace that actions copy');
  const namespace = plan.open(info, cwd, '/proc/thread-self/ns/mnt', {
    flags: O_RDONLY,
    resolve: 0,
  });
  // Private: nothing propagates between the copies, nor from the host's /dev to the masks.
  plan.setRootPropagation(info, MS_PRIVATE);
  const { MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_RDONLY } = constants;
  const tmpfs = plan.newFilesystem(
    info,
    'tmpfs',
    { mode: '0755' },
    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
  );
  plan.mkdirat(info, tmpfs, 'root', 0o755);
  // pivot_root wants an attached mount: stacked on the cwd, in this private copy only. The
  // templates need it attached too (before Linux 6.15 no mount is attached on a detached one).
  plan.moveMount(info, tmpfs, cwd);
  const templates = subject === undefined ? undefined : mountTemplates(subject);
  if (subject !== undefined && templates !== undefined) {
    planMountTemplates(plan, tmpfs, templates, subject);
  }
  plan.mountSetattr(info, tmpfs, MOUNT_ATTR_RDONLY);
  plan.pivotRoot(info, tmpfs);
  plan.exit(info);
  const slots = await runInRunnerFdTable(plan.build());
  // Every slot was filled by the child's steps: the runner owns those fds now.
  for (const [slot, fd] of slots.entries()) {
    if (slot !== namespace && fd >= 0) new Fd(fd).close();
  }
  const fd = new Fd(slots[namespace] ?? -1);
  return templates === undefined ? { namespace: fd } : { namespace: fd, templates };
}

/** Whether an action's child, once it entered the template namespace, finds `templates`
 * beside `root` in its cwd. Not where the runner runs chrooted in an initramfs (the v2
 * guest's): pivot_root, refused from there, leaves the namespace's root where it was, and
 * the actions' special mounts are made per action instead. */
async function templatesReachable(namespace: Fd, templates: MountTemplates): Promise<boolean> {
  const plan = new PlanBuilder();
  const info = runnerStep("find the special mounts' templates in the empty mount namespace");
  plan.setns(info, plan.inherit(namespace.fd), constants.CLONE_NEWNS);
  const paths = [
    ...templates.masks.values(),
    ...(templates.dev === undefined ? [] : [templates.dev]),
  ];
  for (const path of paths) {
    plan.open(info, cwd, path, { flags: O_PATH, resolve: resolveBeneathOnly });
  }
  return (await launchProbe(plan)).ran;
}

/** The mode's part of an action's plan, the same for every action of an engine: its
 * parameters are the input root and, with `temporary`, the temporary directory. */
interface RootFragment {
  readonly host: HostResources;
  readonly filesystems: SpecialFilesystems;
  readonly unprivilegedActionIds: boolean;
  readonly temporary: boolean;
  readonly fragment: PlanFragment;
  /** The action's root, a slot of the fragment. */
  readonly root: Slot;
}

/** The template namespace, or why it could not be made (a rootless runner, a seccomp profile
 * without namespaces): then this mode's actions fail with that reason. */
export class TemplateNamespace implements PreparedMode {
  /** The engine's root fragments, made by its first actions (with and without a temporary
   * directory). */
  #roots: RootFragment[] = [];

  constructor(
    readonly namespace: Fd | SystemError,
    /** Its special mounts, where an action's child finds them (templatesReachable). */
    readonly templates?: MountTemplates,
  ) {}

  /** The mode's steps for an action with these settings, made once. */
  rootFragment(
    { host, filesystems, unprivilegedActionIds }: PrepareSubject,
    temporary: boolean,
  ): RootFragment {
    const same = (other: RootFragment): boolean =>
      other.host === host &&
      other.filesystems === filesystems &&
      other.unprivilegedActionIds === unprivilegedActionIds;
    const made = this.#roots.find((root) => same(root) && root.temporary === temporary);
    if (made !== undefined) return made;
    const plan = new PlanBuilder();
    const inputRoot = plan.parameter();
    const temporaryDirectory = temporary ? plan.parameter() : undefined;
    const clones = planHostClones(
      plan,
      host,
      temporaryDirectory,
      filesystems,
      unprivilegedActionIds,
      this.templates,
    );
    const root = planRootInEmptyNamespace(plan, inputRoot, this.fd());
    planSpecialFilesystems(plan, root, clones, host, filesystems, unprivilegedActionIds);
    const fragment = {
      host,
      filesystems,
      unprivilegedActionIds,
      temporary,
      fragment: plan.fragment(),
      root,
    };
    // An engine has one host and one setting: what another call made is not kept.
    this.#roots = [...this.#roots.filter(same), fragment];
    return fragment;
  }

  fd(): Fd {
    if (this.namespace instanceof Fd) return this.namespace;
    throw new ActionError(
      'internal',
      `Failed to create the empty mount namespace that actions' namespaces copy: ${this.namespace.message}`,
      this.namespace,
    );
  }

  close(): void {
    if (this.namespace instanceof Fd) this.namespace.close();
  }
}

/** The action's mount namespace, as a copy of the template with a clone of the input root
 * attached in it; returns the clone's slot, the new root. */
function planRootInEmptyNamespace(plan: PlanBuilder, inputRoot: Slot, template: Fd): Slot {
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
  // host's. nosuid and nodev: setuid programs and device nodes shipped in the input root are
  // inert.
  plan.mountSetattr(
    clone,
    root,
    constants.MOUNT_ATTR_NOSUID | constants.MOUNT_ATTR_NODEV,
    constants.AT_RECURSIVE,
    MS_SLAVE,
  );
  plan.setns(
    runnerStep('enter the empty mount namespace'),
    plan.inherit(template.fd),
    constants.CLONE_NEWNS,
  );
  plan.unshare(runnerStep('create a mount namespace'), constants.CLONE_NEWNS);
  // pivot_root needs the new root attached; the empty namespace's root has a directory for it.
  const attach = runnerStep('attach the input root in the new mount namespace');
  const mountpoint = plan.open(attach, cwd, 'root', {
    flags: O_PATH | O_DIRECTORY,
    resolve: resolveBeneathOnly,
  });
  plan.moveMount(attach, root, mountpoint);
  return root;
}

/** Plans new PID, IPC and UTS namespaces: what namespaces and rootless modes share. */
export function planNamespaces(plan: PlanBuilder, extraCloneFlags = 0): void {
  // With CLONE_NEWUSER (extraCloneFlags) the other namespaces are owned by the new user
  // namespace, where the child holds every capability.
  plan.cloneFlags |=
    constants.CLONE_NEWPID | constants.CLONE_NEWIPC | constants.CLONE_NEWUTS | extraCloneFlags;
}

export function pivotInto(root: Slot): PlannedRoot['enter'] {
  return (plan) => plan.pivotRoot(runnerStep('pivot into the input root'), root);
}

/** Enters the action's root by stacking it on the namespace's root, the copy of the
 * template's (empty: the action's mounts were moved out of it), which stays beneath it: as
 * unreachable as pivot_root would leave it detached, since every path and ".." start in the
 * action's root (".." from the root of the mount on "/" steps back down into it) and
 * uncovering it takes unmounting or moving that mount, for which the action never holds
 * CAP_SYS_ADMIN over the namespace (the runner's user namespace owns it), and copies in a
 * nested user namespace are locked together. pivot_root would cost more for nothing: it
 * walks every thread of the host (chroot_fs_refs), and detaching the old root waits for an
 * expedited RCU grace period. */
function coverInto(root: Slot): PlannedRoot['enter'] {
  return (plan) => plan.coverRoot(runnerStep('enter the input root'), root);
}

export const namespacesMode: IsolationStrategy = {
  name: 'namespaces',
  summary:
    'new mount, PID, IPC and UTS namespaces; /proc, /sys, /dev and /tmp mounted inside; the input root moved over the namespace root and entered',
  init: 'pid1',
  killSignal: osConstants.signals.SIGKILL,
  actionUserNamespace: true,
  userNamespaceByClone: false,
  unprivilegedActionIds: unprivilegedWithRange,
  pivotsIntoRoot: true,
  specialMounts: 'action',
  temporaryDirectoryInside: (settings) => settings.filesystems.tmp,
  async prepare(subject) {
    try {
      const { namespace, templates } = await createTemplateMountNamespace(subject);
      const reachable = templates !== undefined && (await templatesReachable(namespace, templates));
      return new TemplateNamespace(namespace, reachable ? templates : undefined);
    } catch (error) {
      if (!isSystemError(error)) throw error;
      return new TemplateNamespace(error);
    }
  },
  planUserNamespaceProbe(plan, prepared) {
    // As the action's child: its user namespace is unshared after pivot_root, out of any
    // chroot of the runner's. Without a template every action fails for that reason anyway.
    if (prepared instanceof TemplateNamespace && prepared.namespace instanceof Fd) {
      plan.setns(
        runnerStep('enter the empty mount namespace'),
        plan.inherit(prepared.namespace.fd),
        constants.CLONE_NEWNS,
      );
    }
  },
  plan(plan, { settings, host, files, prepared, unprivilegedActionIds }) {
    planNamespaces(plan);
    if (!(prepared instanceof TemplateNamespace))
      throw new TypeError('namespaces mode is not prepared');
    const temporary = files.temporaryDirectory;
    const made = prepared.rootFragment(
      { host, filesystems: settings.filesystems, unprivilegedActionIds },
      temporary !== undefined,
    );
    const fds = temporary === undefined ? [files.inputRoot.fd] : [files.inputRoot.fd, temporary.fd];
    const root = plan.append(made.fragment, fds)(made.root);
    return { root, enter: coverInto(root) };
  },
  requirements: (findings) => [
    ...mountsHere(findings),
    ...mountApi(findings),
    ...launcherRequirements(findings),
    needCheck(findings, 'namespaces'),
    dropsBoundingSet(findings),
  ],
  probeScript: 'test "$(realpath /proc/self/exe)" = /bin/realpath && test -c /dev/null',
};
