// The special filesystems of an action — /proc, /sys, /dev and /tmp — described once and
// provided in two ways: as steps of the child's plan inside the action's own mount namespace
// (namespaces mode), or with mountat in the runner's namespace (shared mode; there the child
// still mounts the procfs, for its PID namespace, onto a holder mount of the runner's).
import { type Mount, type MountSpec, mountat, unmountat } from '../mounts/index.js';
import {
  constants,
  type DirectoryHandle,
  type Fd,
  fstat,
  isSystemError,
  type SystemError,
  symlinkat,
  withPath,
} from '../syscalls/index.js';
import type { DeviceNode, HostResources } from './host.js';
import {
  beneathNoSymlinks,
  cwd,
  type PlanBuilder,
  runnerStep,
  type Slot,
  type StepInfo,
} from './plan.js';
import { ActionError, type SpecialFilesystems } from './types.js';

/** Directories of a fresh procfs that are bound read-only over themselves (as container
 * runtimes do): writing kernel settings or triggering sysrq is never an action's business.
 * Absent ones (e.g. with subset=pid) are skipped. */
const procReadOnly: readonly string[] = ['sys', 'sysrq-trigger', 'irq', 'bus'];

/** The symlinks of /dev. */
const devLinks: readonly (readonly [name: string, target: string])[] = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
  ['ptmx', 'pts/ptmx'],
];

const devptsOptions = { newinstance: true, ptmxmode: '0666', mode: '0620' } as const;

function devTmpfsOptions(filesystems: SpecialFilesystems): Record<string, string> {
  return { mode: '0755', size: filesystems.devSize };
}

function shmOptions(filesystems: SpecialFilesystems): Record<string, string> {
  return { mode: '1777', size: filesystems.shmSize };
}

const nosuid = constants.MOUNT_ATTR_NOSUID;
const nodev = constants.MOUNT_ATTR_NODEV;
const noexec = constants.MOUNT_ATTR_NOEXEC;
const readonly = constants.MOUNT_ATTR_RDONLY;
const directory = constants.O_PATH | constants.O_DIRECTORY;

/** A setup step that failed, in either mode: what was being done, and the system error. */
export class SetupError extends Error {
  constructor(
    readonly step: StepInfo,
    override readonly cause: SystemError,
  ) {
    super(`Failed to ${step.description}: ${cause.message}`);
  }
}

function mountpoint(path: string): StepInfo {
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

// ---- namespaces mode: steps of the child's plan ----

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
  readonly deviceNodes: readonly (readonly [name: string, source: DeviceNodeSource])[];
  readonly temporaryDirectory: Slot | undefined;
  /** A read-only clone of the host's /sys, attached instead of a fresh sysfs. */
  readonly sys?: Slot;
}

export function planHostClones(
  plan: PlanBuilder,
  host: HostResources,
  temporaryDirectory: Fd | undefined,
  filesystems: SpecialFilesystems,
): HostClones {
  const deviceNodes: [string, DeviceNodeSource][] = [];
  if (filesystems.dev) {
    for (const [name, node] of host.deviceNodes) {
      if (host.makesDeviceNodes) {
        deviceNodes.push([name, { mknod: node }]);
        continue;
      }
      const info = runnerStep(`clone the host's /dev/${name}`);
      const clone = plan.openTree(info, plan.inherit(node.fd.fd), '', constants.OPEN_TREE_CLONE);
      deviceNodes.push([name, { bind: clone }]);
    }
  }
  let temporary: Slot | undefined;
  if (filesystems.tmp && temporaryDirectory !== undefined) {
    const info = runnerStep('clone the temporary directory');
    temporary = plan.openTree(
      info,
      plan.inherit(temporaryDirectory.fd),
      '',
      constants.OPEN_TREE_CLONE,
    );
  }
  return { deviceNodes, temporaryDirectory: temporary };
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
  bindSys: boolean,
): HostClones {
  const deviceNodes: [string, DeviceNodeSource][] = [];
  if (filesystems.dev) {
    for (const name of host.deviceNodes.keys()) {
      const info = runnerStep(`clone the host's /dev/${name}`);
      const clone = plan.openTree(info, cwd, `/dev/${name}`, constants.OPEN_TREE_CLONE);
      deviceNodes.push([name, { bind: clone }]);
    }
  }
  let sys: Slot | undefined;
  if (filesystems.sys && bindSys) {
    const info = runnerStep("clone the host's /sys");
    sys = plan.openTree(info, cwd, '/sys', constants.OPEN_TREE_CLONE | constants.AT_RECURSIVE);
    plan.mountSetattr(info, sys, readonly | nosuid | nodev | noexec, constants.AT_RECURSIVE);
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
  return { deviceNodes, temporaryDirectory: temporary, ...(sys === undefined ? {} : { sys }) };
}

function planMountpoint(
  plan: PlanBuilder,
  base: Slot,
  name: string,
  path: string,
  filesystems: SpecialFilesystems,
): Slot {
  return plan.open(mountpoint(path), base, name, {
    flags: directory,
    resolve: beneathNoSymlinks,
    mkdir: filesystems.createMountpoints,
  });
}

/** Mounts a fresh procfs on `target`, with the directories of procReadOnly bound read-only
 * over themselves. A procfs shows the PID namespace of the process that creates it: the
 * child's, PID 1 of the action's namespace. */
export function planProc(plan: PlanBuilder, target: Slot, filesystems: SpecialFilesystems): void {
  const info = runnerStep('mount proc at /proc');
  const proc = plan.newFilesystem(info, 'proc', filesystems.procOptions, nosuid | nodev | noexec);
  plan.moveMount(onMountpoint(info), proc, target);
  for (const name of procReadOnly) {
    const readOnly = runnerStep(`bind /proc/${name} read-only`);
    const clone = plan.openTree(
      onMountpoint(readOnly),
      proc,
      name,
      constants.OPEN_TREE_CLONE,
      true,
    );
    plan.mountSetattr(readOnly, clone, readonly | nosuid | nodev | noexec);
    const over = plan.open(readOnly, proc, name, {
      flags: constants.O_PATH,
      resolve: beneathNoSymlinks,
      optional: true,
    });
    plan.moveMount(onMountpoint(readOnly), clone, over);
  }
}

/** Mounts the special filesystems beneath `root`, a mount of the new namespace. */
export function planSpecialFilesystems(
  plan: PlanBuilder,
  root: Slot,
  clones: HostClones,
  filesystems: SpecialFilesystems,
): void {
  if (filesystems.proc) {
    planProc(plan, planMountpoint(plan, root, 'proc', '/proc', filesystems), filesystems);
  }
  if (filesystems.sys) {
    const target = planMountpoint(plan, root, 'sys', '/sys', filesystems);
    if (clones.sys !== undefined) {
      plan.moveMount(onMountpoint(runnerStep("bind the host's /sys at /sys")), clones.sys, target);
    } else {
      const info = runnerStep('mount sysfs at /sys');
      const sys = plan.newFilesystem(info, 'sysfs', {}, readonly | nosuid | nodev | noexec);
      plan.moveMount(onMountpoint(info), sys, target);
    }
  }
  if (filesystems.dev) {
    const target = planMountpoint(plan, root, 'dev', '/dev', filesystems);
    const info = runnerStep('mount a tmpfs at /dev');
    const dev = plan.newFilesystem(info, 'tmpfs', devTmpfsOptions(filesystems), nosuid | noexec);
    plan.moveMount(onMountpoint(info), dev, target);
    for (const [name, source] of clones.deviceNodes) {
      if ('mknod' in source) {
        plan.mknodat(runnerStep(`create /dev/${name}`), dev, name, source.mknod.mode, source.mknod);
        continue;
      }
      const bind = runnerStep(`bind the host's /dev/${name}`);
      // Read-only, as every bind of a host node: the node stays writable (a device is not
      // written through its mount), but a root action cannot chmod, chown or touch the
      // host's own node.
      plan.mountSetattr(bind, source.bind, readonly | nosuid | noexec);
      plan.createFile(bind, dev, name, 0o666);
      const over = plan.open(bind, dev, name, {
        flags: constants.O_PATH,
        resolve: beneathNoSymlinks,
      });
      plan.moveMount(onMountpoint(bind), source.bind, over);
    }
    for (const [name, link] of devLinks) {
      plan.symlinkat(runnerStep(`create /dev/${name}`), link, dev, name);
    }
    const pts = runnerStep('mount devpts at /dev/pts');
    plan.mkdirat(pts, dev, 'pts', 0o755);
    const ptsTarget = plan.open(pts, dev, 'pts', { flags: directory, resolve: beneathNoSymlinks });
    plan.moveMount(
      onMountpoint(pts),
      plan.newFilesystem(pts, 'devpts', devptsOptions, nosuid | noexec),
      ptsTarget,
    );
    const shm = runnerStep('mount a tmpfs at /dev/shm');
    plan.mkdirat(shm, dev, 'shm', 0o1777);
    const shmTarget = plan.open(shm, dev, 'shm', { flags: directory, resolve: beneathNoSymlinks });
    plan.moveMount(
      onMountpoint(shm),
      plan.newFilesystem(shm, 'tmpfs', shmOptions(filesystems), nosuid | nodev),
      shmTarget,
    );
  }
  if (clones.temporaryDirectory !== undefined) {
    const target = planMountpoint(plan, root, 'tmp', '/tmp', filesystems);
    const info = runnerStep('bind the temporary directory at /tmp');
    plan.mountSetattr(info, clones.temporaryDirectory, nosuid | nodev);
    plan.moveMount(onMountpoint(info), clones.temporaryDirectory, target);
  }
}

// ---- shared mode: mountat in the runner's namespace ----

/** Input roots that hold shared-mode mounts now, by device and inode: two actions mounting
 * on the same directories would stack their mounts, and detaching one would take the other's
 * along. Buildbarn gives every action its own input root; this catches the rest. */
const inputRootsInUse = new Set<string>();

/** Mounts made for one action in shared mode, removed by handle in reverse order. */
export class SharedMounts {
  readonly #mounts: Mount[] = [];
  #claimed: string | undefined;

  /** Reserves the input root for this action until unmountAll(). */
  claim(root: DirectoryHandle, path: string): void {
    const { devMajor, devMinor, ino } = fstat(root);
    const key = `${devMajor}:${devMinor}:${ino}`;
    if (inputRootsInUse.has(key)) {
      throw new ActionError(
        'invalidArgument',
        `Input root directory "${path}" is in use by another action, which has mounted into it`,
      );
    }
    inputRootsInUse.add(key);
    this.#claimed = key;
  }

  add(mount: Mount): Mount {
    this.#mounts.push(mount);
    return mount;
  }

  /** Unmounts everything (innermost first); the first failure is thrown after all were
   * tried, so that one stuck mount does not leave the others behind. */
  unmountAll(): void {
    let failure: unknown;
    for (let mount = this.#mounts.pop(); mount !== undefined; mount = this.#mounts.pop()) {
      try {
        unmountat(mount);
      } catch (error) {
        // Named by its mountpoint: the error's own path is the handle's /proc/self/fd/N.
        failure ??= withPath(error, mount.mountpoint);
      }
    }
    if (this.#claimed !== undefined) inputRootsInUse.delete(this.#claimed);
    this.#claimed = undefined;
    if (failure !== undefined) throw failure;
  }
}

/** Runs one shared-mode operation; a system error becomes a SetupError naming the step. */
function step<T>(info: StepInfo, operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    if (isSystemError(error)) throw new SetupError(info, error);
    throw error;
  }
}

function mountpointError(error: unknown): boolean {
  return (
    isSystemError(error) && ['ELOOP', 'ENOENT', 'ENOTDIR', 'EXDEV', 'EISDIR'].includes(error.code)
  );
}

/** mountat on a mountpoint of the input root: errors that concern the mountpoint are the
 * input root's, others the runner's. */
function mountInRoot(
  mounts: SharedMounts,
  root: DirectoryHandle,
  name: string,
  spec: MountSpec,
  filesystems: SpecialFilesystems,
  description: string,
): Mount {
  try {
    return mounts.add(
      mountat(root, name, spec, { createMountpoint: filesystems.createMountpoints }),
    );
  } catch (error) {
    if (!isSystemError(error)) throw error;
    const info = mountpointError(error) ? mountpoint(`/${name}`) : runnerStep(description);
    throw new SetupError(info, error);
  }
}

/** Binds the input root onto itself, nosuid and nodev (shared mode, where the action is only
 * chrooted): the mount an action's root and everything it writes there sits on. */
export function mountInertRoot(
  mounts: SharedMounts,
  root: DirectoryHandle,
  filesystems: SpecialFilesystems,
): Mount {
  return mountInRoot(
    mounts,
    root,
    '.',
    { bind: root, attributes: { nosuid: true, nodev: true } },
    filesystems,
    'bind the input root onto itself, nosuid and nodev',
  );
}

/** Mounts the special filesystems into the input root, except the procfs itself: it must be
 * made by the action's child, in the action's PID namespace. For it, a small read-only tmpfs
 * is mounted at /proc and returned; the child mounts the procfs onto that holder's root, so
 * that detaching the holder by its handle takes the procfs along, wherever the mountpoint
 * directory went meanwhile. */
export function mountSpecialFilesystems(
  mounts: SharedMounts,
  root: DirectoryHandle,
  host: HostResources,
  temporaryDirectory: DirectoryHandle | undefined,
  filesystems: SpecialFilesystems,
): Mount | undefined {
  const procHolder = filesystems.proc
    ? mountInRoot(
        mounts,
        root,
        'proc',
        {
          fstype: 'tmpfs',
          options: { size: '4k', nr_inodes: '1', mode: '0555' },
          attributes: { readonly: true, nosuid: true, nodev: true, noexec: true },
        },
        filesystems,
        'mount a holder for /proc',
      )
    : undefined;
  if (filesystems.sys) {
    mountInRoot(
      mounts,
      root,
      'sys',
      { fstype: 'sysfs', attributes: { readonly: true, nosuid: true, nodev: true, noexec: true } },
      filesystems,
      'mount sysfs at /sys',
    );
  }
  if (filesystems.dev) {
    const dev = mountInRoot(
      mounts,
      root,
      'dev',
      {
        fstype: 'tmpfs',
        options: devTmpfsOptions(filesystems),
        attributes: { nosuid: true, noexec: true },
      },
      filesystems,
      'mount a tmpfs at /dev',
    );
    /** A mount beneath /dev, on a mountpoint made for it in the fresh tmpfs. */
    const mountInDev = (description: string, name: string, spec: MountSpec) =>
      step(runnerStep(description), () =>
        mounts.add(mountat(dev, name, spec, { createMountpoint: true })),
      );
    for (const [name, node] of host.deviceNodes) {
      mountInDev(`bind the host's /dev/${name}`, name, {
        bind: node.fd,
        attributes: { readonly: true, nosuid: true, noexec: true },
      });
    }
    for (const [name, link] of devLinks) {
      step(runnerStep(`create /dev/${name}`), () => symlinkat(link, dev, name));
    }
    mountInDev('mount devpts at /dev/pts', 'pts', {
      fstype: 'devpts',
      options: { ...devptsOptions },
      attributes: { nosuid: true, noexec: true },
    });
    mountInDev('mount a tmpfs at /dev/shm', 'shm', {
      fstype: 'tmpfs',
      options: shmOptions(filesystems),
      attributes: { nosuid: true, nodev: true },
    });
  }
  if (filesystems.tmp && temporaryDirectory !== undefined) {
    mountInRoot(
      mounts,
      root,
      'tmp',
      { bind: temporaryDirectory, attributes: { nosuid: true, nodev: true } },
      filesystems,
      'bind the temporary directory at /tmp',
    );
  }
  return procHolder;
}

/** Whether a mount at `relativePath` beneath a build directory is one that shared mode makes
 * in an input root: /proc and what is bound in it, /sys, /dev and what is in it, /tmp. */
export function isSpecialMountpoint(relativePath: string): boolean {
  return /(^|\/)(proc|sys|dev|tmp)(\/[^/]+)?$/.test(relativePath);
}
