// The special mounts of special-mounts.ts as steps of the child's plan: made inside the
// action's own mount namespace (namespaces and rootless modes), or, for the procfs of shared
// mode, by the child onto a holder mount of the runner's.
import { attributeFlags } from '../mounts/index.js';
import { constants, type Fd, resolveBeneathOnly } from '../syscalls/index.js';
import { type DeviceNode, type HostResources, kernelEntryKinds } from './host.js';
import { cwd, type PlanBuilder, runnerStep, type Slot, type StepInfo } from './plan.js';
import {
  emptyDirectoryFilesystem,
  enabledSpecialMounts,
  maskAttributes,
  nameOf,
  parentOf,
  type SpecialMount,
  specialMounts,
} from './special-mounts.js';
import type { SpecialFilesystems } from './types.js';

const directory = constants.O_PATH | constants.O_DIRECTORY;

/** Whose special mounts are planned: an engine's settings, on its host, for actions whose ids
 * are or are not unprivileged (IsolationStrategy.unprivilegedActionIds). */
export interface SpecialMountsSubject {
  readonly filesystems: SpecialFilesystems;
  readonly host: HostResources;
  readonly unprivilegedActionIds: boolean;
}

/** The entries of the table that these settings provide and this host's kernel has (no mask
 * nor read-only bind of what it lacks), but for actions whose ids are never the host's uid 0
 * (`unprivilegedActionIds`) none over what the kernel refuses them anyway
 * (HostResources.hostRootOnlyEntries). */
export function plannedSpecialMounts(
  filesystems: SpecialFilesystems,
  host: HostResources,
  unprivilegedActionIds: boolean,
): readonly SpecialMount[] {
  const byHost = planned.get(filesystems) ?? new WeakMap<HostResources, SpecialMount[][]>();
  planned.set(filesystems, byHost);
  const answers = byHost.get(host) ?? [];
  byHost.set(host, answers);
  const index = unprivilegedActionIds ? 1 : 0;
  let entries = answers[index];
  if (entries === undefined) {
    entries = enabledSpecialMounts(filesystems).filter(
      (entry) =>
        !kernelEntryKinds.has(entry.source.kind) ||
        (host.presentKernelEntries.has(entry.at) &&
          !(unprivilegedActionIds && host.hostRootOnlyEntries.has(entry.at))),
    );
    answers[index] = entries;
  }
  return entries;
}

/** plannedSpecialMounts' answers, by the engine's settings and host, and whether its
 * actions' ids are unprivileged (index 1) or not (0): the same for every action. */
const planned = new WeakMap<SpecialFilesystems, WeakMap<HostResources, SpecialMount[][]>>();

/** The step that opens a mountpoint of the input root: its failure is the request's. */
export function mountpointStep(path: string): StepInfo {
  return { description: `open the mountpoint ${path} in the input root`, subject: 'inputRoot' };
}

/** A step attaching a mount at or beneath a mountpoint of the input root, or cloning one
 * attached there: if the input root changes under it (the mountpoint directory is replaced
 * meanwhile, which unlinks it and makes the kernel detach what is mounted on it in every
 * namespace), the failure (ENOENT, or EINVAL from open_tree of the detached mount) is the
 * input root's. */
function onMountpoint(info: StepInfo): StepInfo {
  return { ...info, subject: 'inputRoot' };
}

/** How a mount of the table is described in errors ("mount a tmpfs at /dev"). */
export function mountDescription(entry: SpecialMount): string {
  const { source } = entry;
  if (source.kind === 'filesystem') {
    const what = source.fstype === 'tmpfs' ? 'a tmpfs' : source.fstype;
    return `mount ${what} at /${entry.at}`;
  }
  if (source.kind === 'temporaryDirectory') return `bind the temporary directory at /${entry.at}`;
  if (source.kind === 'deviceNode') return `bind the host's /${entry.at}`;
  if (source.kind === 'symlink') return `create /${entry.at}`;
  if (source.kind === 'masked') return `mask /${entry.at}`;
  return `bind /${entry.at} read-only`;
}

/** How a node of the action's /dev is made: anew with mknod (the host node's type, mode and
 * device number), or as a bind of a clone of the host's node where mknod is refused (in a
 * user namespace, or without CAP_MKNOD). mknod is also the cheaper (no mount to make, nor to
 * tear down), and the node is the action's own: a bound node is the host's inode, which a
 * uid-0 action keeping CAP_FOWNER could chmod. */
export type DeviceNodeSource = { readonly mknod: DeviceNode } | { readonly bind: Slot };

/** What the special filesystems are made from. Clones of host mounts are made before
 * unshare(CLONE_NEWNS): an fd opened by the runner refers to the runner's namespace, where
 * open_tree(OPEN_TREE_CLONE) still works; the detached clones can then be attached in the
 * new namespace. */
export interface HostClones {
  readonly deviceNodes: ReadonlyMap<string, DeviceNodeSource>;
  readonly temporaryDirectory: Slot | undefined;
  /** A read-only clone of the host's /sys, attached instead of a fresh sysfs. */
  readonly sys?: Slot;
  /** A clone of the host's /dev/null for each masked file without a template, by its
   * place. */
  readonly fileMasks: ReadonlyMap<string, Slot>;
  /** What the action's mount namespace holds ready, as copies of the template namespace's
   * mounts. */
  readonly templates?: MountTemplates;
}

/** Mounts of the template namespace that actions take instead of making their own, by their
 * path relative to the cwd that entering it gives (until the action enters its root). Every
 * action's mount namespace is a copy of the template's, so each is moved out of that copy
 * onto its place (one move_mount, no clone to make); pivot_root detaches the rest with the
 * old root. */
export interface MountTemplates {
  /** A mask for each masked place of the engine's settings, by place: a read-only bind of
   * the host's /dev/null, or one of the clones of one empty read-only tmpfs (the attributes
   * of special-mounts.ts's masks). */
  readonly masks: ReadonlyMap<string, string>;
  /** A read-only /dev (the table's attributes, and a tmpfs of devSize) with the table's
   * nodes, made with mknod, its links and the mountpoints of the filesystems inside it,
   * which each action mounts afresh. One filesystem that every action's /dev shows: written
   * by none (read-only, locked so in any namespace an action makes), it needs none of its
   * own. Absent where the nodes are bound (no CAP_MKNOD). */
  readonly dev?: string;
}

/** The templates for actions with these settings on this host: their names in the template
 * namespace. */
export function mountTemplates({
  filesystems,
  host,
  unprivilegedActionIds,
}: SpecialMountsSubject): MountTemplates {
  const masks = new Map(
    plannedSpecialMounts(filesystems, host, unprivilegedActionIds)
      .filter((entry) => entry.source.kind === 'masked')
      .map((entry) => [entry.at, `masked-${entry.at.replaceAll('/', '-')}`]),
  );
  return { masks, ...(filesystems.dev && host.makesDeviceNodes ? { dev: 'dev' } : {}) };
}

/** Makes `templates` beneath `tmpfs`, the template namespace's root filesystem, attached
 * and still writable. A mask's mountpoint, a file, is made with mknod, not an open: a file
 * open for writing in the runner's fd table (the template's child shares it) may be held by
 * any child cloned meanwhile, and its write access by the tmpfs, which then refuses to
 * become read-only (EBUSY). */
export function planMountTemplates(
  plan: PlanBuilder,
  tmpfs: Slot,
  templates: MountTemplates,
  { filesystems, host, unprivilegedActionIds }: SpecialMountsSubject,
): void {
  const info = runnerStep('make the special mounts that actions copy');
  let directoryMask: string | undefined;
  for (const [at, name] of templates.masks) {
    const entry = specialMounts.find((candidate) => candidate.at === at);
    if (entry?.source.kind !== 'masked') continue;
    const attributes = attributeFlags(maskAttributes[entry.source.type]);
    if (entry.source.type === 'file') {
      plan.mknodat(info, tmpfs, name, constants.S_IFREG | 0o444, { major: 0, minor: 0 });
      const clone = plan.openTree(info, cwd, '/dev/null', constants.OPEN_TREE_CLONE);
      plan.mountSetattr(info, clone, attributes);
      plan.moveMount(info, clone, tmpfs, name);
      continue;
    }
    plan.mkdirat(info, tmpfs, name, 0o555);
    if (directoryMask === undefined) {
      const { fstype, options } = emptyDirectoryFilesystem;
      plan.moveMount(info, plan.newFilesystem(info, fstype, options, attributes), tmpfs, name);
      directoryMask = name;
    } else {
      // One filesystem for every directory mask: clones of the first.
      const clone = plan.openTree(info, tmpfs, directoryMask, constants.OPEN_TREE_CLONE);
      plan.moveMount(info, clone, tmpfs, name);
    }
  }
  const { dev } = templates;
  if (dev === undefined) return;
  const entries = plannedSpecialMounts(filesystems, host, unprivilegedActionIds).filter(
    (entry) => entry.enabledBy === 'dev',
  );
  const clones: HostClones = {
    deviceNodes: new Map([...host.deviceNodes].map(([name, node]) => [name, { mknod: node }])),
    temporaryDirectory: undefined,
    fileMasks: new Map(),
  };
  plan.mkdirat(info, tmpfs, dev, 0o755);
  const target = plan.open(info, tmpfs, dev, { flags: directory, resolve: resolveBeneathOnly });
  const mounts = planEntries(plan, entries, () => target, clones, filesystems, 'mountpoints');
  const mount = mounts.get('dev')?.mount;
  if (mount !== undefined) plan.mountSetattr(info, mount, constants.MOUNT_ATTR_RDONLY);
}

/** One clone of the host's /dev/null per masked file the settings enable (a detached mount
 * is attached once), made by `cloneDevNull`. */
function planFileMaskClones(
  entries: readonly SpecialMount[],
  cloneDevNull: (info: StepInfo) => Slot,
): Map<string, Slot> {
  const clones = new Map<string, Slot>();
  for (const entry of entries) {
    if (entry.source.kind === 'masked' && entry.source.type === 'file') {
      clones.set(
        entry.at,
        cloneDevNull(runnerStep(`clone the host's /dev/null to mask /${entry.at}`)),
      );
    }
  }
  return clones;
}

/** The host's /dev/null, cloned through the runner's handle on it: from the runner's mount
 * namespace. */
function cloneDevNullByHandle(plan: PlanBuilder, host: HostResources): (info: StepInfo) => Slot {
  const node = host.deviceNodes.get('null');
  if (node === undefined) throw new TypeError("the host's /dev/null is not open");
  const slot = plan.inherit(node.fd.fd);
  return (info) => plan.openTree(info, slot, '', constants.OPEN_TREE_CLONE);
}

/** `temporaryDirectory`: the slot of the request's, as the runner opened it. */
export function planHostClones(
  plan: PlanBuilder,
  host: HostResources,
  temporaryDirectory: Slot | undefined,
  filesystems: SpecialFilesystems,
  unprivilegedActionIds: boolean,
  templates: MountTemplates | undefined,
): HostClones {
  const deviceNodes = new Map<string, DeviceNodeSource>();
  if (filesystems.dev) {
    for (const [name, node] of host.deviceNodes) {
      if (host.makesDeviceNodes) {
        deviceNodes.set(name, { mknod: node });
        continue;
      }
      const info = runnerStep(`clone the host's /dev/${name}`);
      const clone = plan.openTree(info, plan.inherit(node.fd.fd), '', constants.OPEN_TREE_CLONE);
      deviceNodes.set(name, { bind: clone });
    }
  }
  let temporary: Slot | undefined;
  if (filesystems.tmp && temporaryDirectory !== undefined) {
    const info = runnerStep('clone the temporary directory');
    temporary = plan.openTree(info, temporaryDirectory, '', constants.OPEN_TREE_CLONE);
  }
  const fileMasks = planFileMaskClones(
    plannedSpecialMounts(filesystems, host, unprivilegedActionIds).filter(
      (entry) => templates?.masks.has(entry.at) !== true,
    ),
    cloneDevNullByHandle(plan, host),
  );
  return {
    deviceNodes,
    temporaryDirectory: temporary,
    fileMasks,
    ...(templates === undefined ? {} : { templates }),
  };
}

/** The temporary directory as the runner opened it, and its path in the runner's mount
 * namespace. */
export interface TemporaryDirectoryLocation {
  readonly fd: Fd;
  readonly path: string;
}

/** Clones of host mounts for rootless mode, made after unshare(CLONE_NEWNS) inside the new
 * user namespace: cloning needs CAP_SYS_ADMIN over the owner of the mounts' namespace, and
 * an fd opened before unshare names a mount of the old namespace, which cannot be cloned
 * from the new one. So they are reached by path from the root (translated into the new
 * namespace by unshare). Without a network namespace of its own (`bindSys`), /sys is a
 * read-only recursive bind of the host's: the kernel refuses a fresh sysfs then, and the
 * submounts of /sys are locked to it. The temporary directory, found by its path, must be
 * the directory the runner opened. */
export function planUserNamespaceClones(
  plan: PlanBuilder,
  host: HostResources,
  temporaryDirectory: TemporaryDirectoryLocation | undefined,
  filesystems: SpecialFilesystems,
  unprivilegedActionIds: boolean,
  bindSys: boolean,
): HostClones {
  const deviceNodes = new Map<string, DeviceNodeSource>();
  if (filesystems.dev) {
    for (const name of host.deviceNodes.keys()) {
      const info = runnerStep(`clone the host's /dev/${name}`);
      const clone = plan.openTree(info, cwd, `/dev/${name}`, constants.OPEN_TREE_CLONE);
      deviceNodes.set(name, { bind: clone });
    }
  }
  let sys: Slot | undefined;
  if (filesystems.sys && bindSys) {
    const info = runnerStep("clone the host's /sys");
    sys = plan.openTree(info, cwd, '/sys', constants.OPEN_TREE_CLONE | constants.AT_RECURSIVE);
    plan.mountSetattr(
      info,
      sys,
      attributeFlags({ readonly: true, nosuid: true, nodev: true, noexec: true }),
      constants.AT_RECURSIVE,
    );
  }
  let temporary: Slot | undefined;
  if (filesystems.tmp && temporaryDirectory !== undefined) {
    const info = runnerStep(`clone the temporary directory ${temporaryDirectory.path}`);
    const found = plan.open(info, cwd, temporaryDirectory.path, {
      flags: directory,
      resolve: constants.RESOLVE_NO_SYMLINKS | constants.RESOLVE_NO_MAGICLINKS,
    });
    plan.sameInode(info, found, plan.inherit(temporaryDirectory.fd.fd));
    temporary = plan.openTree(info, found, '', constants.OPEN_TREE_CLONE);
  }
  const fileMasks = planFileMaskClones(
    plannedSpecialMounts(filesystems, host, unprivilegedActionIds),
    (info) => plan.openTree(info, cwd, '/dev/null', constants.OPEN_TREE_CLONE),
  );
  return {
    deviceNodes,
    temporaryDirectory: temporary,
    fileMasks,
    ...(sys === undefined ? {} : { sys }),
  };
}

/** What planEntries says and sets for each entry of the table, made once. */
const entrySteps = new Map(
  specialMounts.map((entry) => {
    const info = runnerStep(mountDescription(entry));
    const attributes = attributeFlags(entry.attributes);
    return [entry, { info, onMountpoint: onMountpoint(info), attributes }] as const;
  }),
);

/** Where the entries inside a place are made: beneath `mount` (a slot, or the cwd), at
 * `prefix` followed by their name; in a template (`prepared`) only what is mounted inside is
 * left to make. */
interface Parent {
  readonly mount: Slot;
  readonly prefix: string;
  readonly prepared: boolean;
}

/** Plans the entries in order, and returns the places made, by place. A top-level entry is
 * attached on `mountpoint(entry)`; one inside another on a node made for it in the parent's
 * fresh filesystem. With `contents` 'mountpoints' (a template) the filesystems inside
 * another get only their mountpoint. */
function planEntries(
  plan: PlanBuilder,
  entries: readonly SpecialMount[],
  mountpoint: (entry: SpecialMount) => Slot,
  clones: HostClones,
  filesystems: SpecialFilesystems,
  contents: 'all' | 'mountpoints' = 'all',
): ReadonlyMap<string, Parent> {
  const mounts = new Map<string, Parent>();
  /** Moves of templates, made once what is mounted inside them is. */
  const moves: (() => void)[] = [];
  for (const entry of entries) {
    const parentAt = parentOf(entry);
    const parent = parentAt === undefined ? undefined : mounts.get(parentAt);
    if (parentAt !== undefined && parent === undefined) continue;
    const name = nameOf(entry);
    const inParent = parent === undefined ? name : `${parent.prefix}${name}`;
    const steps = entrySteps.get(entry);
    if (steps === undefined) throw new TypeError(`/${entry.at} is not in the table`);
    const { info, attributes } = steps;
    /** Attaches `mount` on the entry's node inside its parent, a filesystem of the sandbox's
     * own (fresh, a template, or the host's /sys bound): move_mount resolves the name there,
     * with no open of its own. */
    const attach = (mount: Slot, optional = false): void => {
      if (parent === undefined) throw new TypeError(`/${entry.at} has no parent mount`);
      plan.moveMount(steps.onMountpoint, mount, parent.mount, inParent, optional);
    };
    const { source } = entry;
    switch (source.kind) {
      case 'filesystem': {
        // Rootless mode without a network namespace of its own: the host's, bound.
        if (entry.at === 'sys' && clones.sys !== undefined) {
          const target = mountpoint(entry);
          plan.moveMount(
            onMountpoint(runnerStep("bind the host's /sys at /sys")),
            clones.sys,
            target,
          );
          mounts.set(entry.at, { mount: clones.sys, prefix: '', prepared: false });
          break;
        }
        const template = entry.at === 'dev' ? clones.templates?.dev : undefined;
        if (template !== undefined) {
          const target = mountpoint(entry);
          moves.push(() =>
            plan.moveAttachedMount(steps.onMountpoint, cwd, template, target, undefined),
          );
          mounts.set(entry.at, { mount: cwd, prefix: `${template}/`, prepared: true });
          break;
        }
        const target = parent === undefined ? mountpoint(entry) : undefined;
        if (parent !== undefined && !parent.prepared) {
          plan.mkdirat(info, parent.mount, inParent, entry.createMode ?? 0o755);
        }
        if (parent !== undefined && contents === 'mountpoints') break;
        const options = source.options(filesystems);
        const mount = plan.newFilesystem(info, source.fstype, options, attributes);
        if (target === undefined) attach(mount);
        else plan.moveMount(steps.onMountpoint, mount, target);
        mounts.set(entry.at, { mount, prefix: '', prepared: false });
        break;
      }
      case 'readOnlyOverItself': {
        if (parent === undefined) throw new TypeError(`/${entry.at} has no parent mount`);
        const clone = plan.openTree(
          steps.onMountpoint,
          parent.mount,
          inParent,
          constants.OPEN_TREE_CLONE,
          true,
        );
        plan.mountSetattr(info, clone, attributes);
        attach(clone, true);
        break;
      }
      case 'masked': {
        if (parent === undefined) throw new TypeError(`/${entry.at} has no parent mount`);
        const template = clones.templates?.masks.get(entry.at);
        if (template !== undefined) {
          plan.moveAttachedMount(info, cwd, template, parent.mount, inParent, true);
          break;
        }
        if (source.type === 'directory') {
          const { fstype, options } = emptyDirectoryFilesystem;
          attach(plan.newFilesystem(info, fstype, options, attributes), true);
          break;
        }
        const clone = clones.fileMasks.get(entry.at);
        if (clone === undefined) break;
        plan.mountSetattr(info, clone, attributes);
        attach(clone, true);
        break;
      }
      case 'deviceNode': {
        const node = clones.deviceNodes.get(name);
        if (node === undefined || parent === undefined || parent.prepared) break;
        if ('mknod' in node) {
          plan.mknodat(
            runnerStep(`create /${entry.at}`),
            parent.mount,
            inParent,
            node.mknod.mode,
            node.mknod,
          );
          break;
        }
        plan.mountSetattr(info, node.bind, attributes);
        plan.createFile(info, parent.mount, inParent, entry.createMode ?? 0o666);
        attach(node.bind);
        break;
      }
      case 'symlink':
        if (parent !== undefined && !parent.prepared) {
          plan.symlinkat(info, source.target, parent.mount, inParent);
        }
        break;
      case 'temporaryDirectory': {
        if (clones.temporaryDirectory === undefined) break;
        const target = mountpoint(entry);
        plan.mountSetattr(info, clones.temporaryDirectory, attributes);
        plan.moveMount(steps.onMountpoint, clones.temporaryDirectory, target);
        break;
      }
    }
  }
  for (const move of moves) move();
  return mounts;
}

/** Mounts the special filesystems beneath `root`, a mount of the new namespace. */
export function planSpecialFilesystems(
  plan: PlanBuilder,
  root: Slot,
  clones: HostClones,
  host: HostResources,
  filesystems: SpecialFilesystems,
  unprivilegedActionIds: boolean,
): void {
  planEntries(
    plan,
    plannedSpecialMounts(filesystems, host, unprivilegedActionIds),
    (entry) =>
      plan.open(mountpointStep(`/${entry.at}`), root, entry.at, {
        flags: directory,
        resolve: resolveBeneathOnly,
        mkdir: filesystems.createMountpoints,
      }),
    clones,
    filesystems,
  );
}

/** Mounts a fresh procfs, with what the table binds read-only and masks inside it, on
 * `target`, from the runner's mount namespace. A procfs shows the PID namespace of the
 * process that creates it: the child's, PID 1 of the action's namespace. */
export function planProc(
  plan: PlanBuilder,
  target: Slot,
  host: HostResources,
  filesystems: SpecialFilesystems,
  unprivilegedActionIds: boolean,
): void {
  const proc = plannedSpecialMounts(filesystems, host, unprivilegedActionIds).filter(
    (entry) => entry.enabledBy === 'proc',
  );
  const fileMasks = planFileMaskClones(proc, cloneDevNullByHandle(plan, host));
  const clones: HostClones = { deviceNodes: new Map(), temporaryDirectory: undefined, fileMasks };
  planEntries(plan, proc, () => target, clones, filesystems);
}
