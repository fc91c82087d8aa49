// mountat and unmountat: mounts made and removed through handles, never through a path
// string of the target. The target is opened beneath a directory handle with openat2
// (no symlinks, no magic links, no escape), the mount attached with move_mount onto that fd,
// and removed through the fd of its own root (/proc/self/fd/N resolves to that mount
// whatever happened to the path since).
import { readSync } from 'node:fs';
import {
  constants,
  type DirectoryHandle,
  Fd,
  fsconfigCreate,
  fsconfigSetFlag,
  fsconfigSetString,
  fsmount,
  fsopen,
  fstat,
  isSystemError,
  mkdirat,
  mknodat,
  mountSetattr,
  moveMount,
  openat2,
  openDirectoryBeneath,
  openTree,
  resolveBeneathOnly,
  systemError,
  umount2Stack,
  withPath,
} from '../syscalls/index.js';
import { listAllMounts } from './mountinfo.js';

export type Propagation = 'private' | 'slave' | 'shared' | 'unbindable';

/** Per-mount flags; unset means the kernel's default (read-write, suid, dev, exec, relatime). */
export interface MountFlags {
  readonly?: boolean;
  nosuid?: boolean;
  nodev?: boolean;
  noexec?: boolean;
  noatime?: boolean;
}

/** A new filesystem instance. */
export interface FilesystemSpec {
  fstype: string;
  /** fsconfig "source" (the device, or any name for virtual filesystems). */
  source?: string;
  /** fsconfig parameters: `true` sets a flag, a string sets a string value. */
  options?: Record<string, string | true>;
  attributes?: MountFlags;
  /** Propagation of the new mount once attached. */
  propagation?: Propagation;
}

/** A bind of a host path, or of an existing mount or handle, cloned with open_tree. */
export interface BindSpec {
  /** A trusted host path (symlinks followed), a Mount, or any handle. */
  bind: string | Fd;
  /** Bind the mounts beneath the source too. */
  recursive?: boolean;
  attributes?: MountFlags;
  propagation?: Propagation;
}

export type MountSpec = FilesystemSpec | BindSpec;

export interface MountatOptions {
  /** Create a missing mountpoint (only its last component): a directory, or an empty file
   * when binding a non-directory. */
  createMountpoint?: boolean;
}

/** A mount attached by mountat (or found by openMount): owns the fd of the mount's root. */
export class Mount extends Fd {
  /** The mountpoint as the caller named it, relative to the directory handle; for messages. */
  readonly mountpoint: string;
  readonly isDirectory: boolean;
  #mountId: number | undefined;

  constructor(fd: number, mountpoint: string, isDirectory: boolean) {
    super(fd);
    this.mountpoint = mountpoint;
    this.isDirectory = isDirectory;
  }

  /** The mount's id as in /proc/self/mountinfo. */
  get mountId(): number {
    if (this.#mountId === undefined) {
      const { mountId } = fstat(this);
      if (mountId === undefined) throw new Error('statx gives no mount id (Linux < 5.8)');
      this.#mountId = mountId;
    }
    return this.#mountId;
  }
}

const emptyPaths = constants.MOVE_MOUNT_F_EMPTY_PATH | constants.MOVE_MOUNT_T_EMPTY_PATH;

const propagationFlags: Record<Propagation, number> = {
  private: constants.MS_PRIVATE,
  slave: constants.MS_SLAVE,
  shared: constants.MS_SHARED,
  unbindable: constants.MS_UNBINDABLE,
};

/** MountFlags as mount_setattr and fsmount take them (MOUNT_ATTR_*). */
export function attributeFlags(flags: MountFlags | undefined): number {
  if (flags === undefined) return 0;
  return (
    (flags.readonly === true ? constants.MOUNT_ATTR_RDONLY : 0) |
    (flags.nosuid === true ? constants.MOUNT_ATTR_NOSUID : 0) |
    (flags.nodev === true ? constants.MOUNT_ATTR_NODEV : 0) |
    (flags.noexec === true ? constants.MOUNT_ATTR_NOEXEC : 0) |
    (flags.noatime === true ? constants.MOUNT_ATTR_NOATIME : 0)
  );
}

/** Opens the mountpoint beneath `dir` as an O_PATH fd of the type the mount needs. */
function openMountpoint(
  dir: DirectoryHandle | Mount,
  name: string,
  directory: boolean,
  create: boolean,
): Fd {
  const flags = directory ? constants.O_PATH | constants.O_DIRECTORY : constants.O_PATH;
  let target: Fd;
  try {
    target = openat2(dir, name, { flags, resolve: resolveBeneathOnly });
  } catch (error) {
    if (!create || !isSystemError(error, 'ENOENT')) throw error;
    createMountpoint(dir, name, directory);
    target = openat2(dir, name, { flags, resolve: resolveBeneathOnly });
  }
  if (!directory && fstat(target).type === 'directory') {
    target.close();
    throw systemError(
      'EISDIR',
      'mountat',
      name,
      'the source is not a directory but the mountpoint is',
    );
  }
  return target;
}

/** Creates the last component of `name` beneath `dir`: a directory or an empty file. */
function createMountpoint(dir: DirectoryHandle | Mount, name: string, directory: boolean): void {
  const slash = name.lastIndexOf('/');
  const last = name.slice(slash + 1);
  if (last === '' || last === '.' || last === '..') {
    throw systemError('EINVAL', 'mountat', name, 'cannot create a mountpoint with this name');
  }
  let parent: DirectoryHandle | null = null;
  try {
    if (slash >= 0) parent = openDirectoryBeneath(dir, name.slice(0, slash) || '/');
    if (directory) mkdirat(parent ?? dir, last, 0o755);
    else mknodat(parent ?? dir, last, constants.S_IFREG | 0o644);
  } catch (error) {
    if (!isSystemError(error, 'EEXIST')) throw withPath(error, name);
  } finally {
    parent?.close();
  }
}

/** The messages a filesystem context logged (fsopen(2): read(2) on its fd), e.g. "e proc:
 * Unknown parameter 'x'". */
function contextMessages(fs: Fd): string[] {
  const messages: string[] = [];
  const buffer = Buffer.alloc(4096);
  for (;;) {
    let length: number;
    try {
      length = readSync(fs.fd, buffer);
    } catch {
      return messages;
    }
    if (length === 0) return messages;
    // Each message starts with its level: "e " error, "w " warning, "i " information.
    messages.push(buffer.toString('utf8', 2, length).trim());
  }
}

/** A detached mount of a new filesystem instance. */
function createFilesystem(spec: FilesystemSpec): Fd {
  const fs = fsopen(spec.fstype);
  try {
    if (spec.source !== undefined) fsconfigSetString(fs, 'source', spec.source);
    if (spec.options !== undefined) {
      for (const [key, value] of Object.entries(spec.options)) {
        if (value === true) fsconfigSetFlag(fs, key);
        else fsconfigSetString(fs, key, value);
      }
    }
    fsconfigCreate(fs);
    return fsmount(fs, attributeFlags(spec.attributes));
  } catch (error) {
    const messages = contextMessages(fs);
    if (isSystemError(error) && messages.length > 0) {
      error.message += ` (kernel: ${messages.join('; ')})`;
    }
    throw error;
  } finally {
    fs.close();
  }
}

/** A detached clone of the bind source, with the requested attributes and propagation already
 * applied: a clone of a shared mount is its peer until then, and what is mounted beneath it
 * once attached would propagate back to the source. */
function cloneTree(spec: BindSpec): Fd {
  const recursive = spec.recursive === true ? constants.AT_RECURSIVE : 0;
  const tree =
    typeof spec.bind === 'string'
      ? openTree(null, spec.bind, constants.OPEN_TREE_CLONE | recursive)
      : openTree(spec.bind, '', constants.OPEN_TREE_CLONE | constants.AT_EMPTY_PATH | recursive);
  const attrSet = attributeFlags(spec.attributes);
  const propagation = spec.propagation === undefined ? 0 : propagationFlags[spec.propagation];
  if (attrSet !== 0 || propagation !== 0) {
    // Setting an atime mode needs the whole atime field cleared first.
    const attrClear = attrSet & constants.MOUNT_ATTR__ATIME ? constants.MOUNT_ATTR__ATIME : 0;
    try {
      mountSetattr(tree, '', constants.AT_EMPTY_PATH | recursive, {
        attrSet,
        attrClear,
        propagation,
      });
    } catch (error) {
      tree.close();
      throw error;
    }
  }
  return tree;
}

/** Mounts `spec` on `name` beneath `dir` (several components allowed). The mountpoint is
 * opened with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, so a symlink (ELOOP),
 * an escape through '..' (EXDEV), a file where a directory is needed (ENOTDIR) or the
 * reverse (EISDIR), and a missing mountpoint (ENOENT) are errors naming `name`. */
export function mountat(
  dir: DirectoryHandle | Mount,
  name: string,
  spec: MountSpec,
  options: MountatOptions = {},
): Mount {
  const create = options.createMountpoint === true;
  let source: Fd;
  let target: Fd;
  let isDirectory = true;
  if ('bind' in spec) {
    source = cloneTree(spec);
    try {
      isDirectory = fstat(source).type === 'directory';
      target = openMountpoint(dir, name, isDirectory, create);
    } catch (error) {
      source.close();
      throw error;
    }
  } else {
    target = openMountpoint(dir, name, true, create);
    try {
      source = createFilesystem(spec);
    } catch (error) {
      target.close();
      throw error;
    }
  }
  try {
    moveMount(source, '', target, '', emptyPaths);
  } catch (error) {
    source.close();
    throw withPath(error, name);
  } finally {
    target.close();
  }
  const mount = new Mount(source.release(), name, isDirectory);
  // A new filesystem's propagation once it is attached (a bind's was set on its clone).
  if (!('bind' in spec) && spec.propagation !== undefined) {
    try {
      mountSetattr(mount, '', constants.AT_EMPTY_PATH, {
        propagation: propagationFlags[spec.propagation],
      });
    } catch (error) {
      unmountat(mount);
      throw withPath(error, name);
    }
  }
  return mount;
}

export interface UnmountOptions {
  /** true (the default): detach the mount and everything mounted on or beneath it at once.
   * false: refuse with EBUSY, leaving the handle open, when other mounts sit on or beneath
   * it. */
  detach?: boolean;
}

/** Removes exactly the mount `mount` refers to, even after its mountpoint was renamed or
 * replaced by a symlink, then closes the handle (also when umount2 fails). No chdir, no lock.
 *
 * The unmount itself is always lazy (MNT_DETACH): the handle pins the mount, so a non-lazy
 * umount2 through it would always fail with EBUSY. Files still open inside the mount keep
 * its filesystem alive until they are closed; the mount leaves the tree at once.
 *
 * umount2 resolves its path down to the topmost mount stacked on the mount's root
 * (LOOKUP_MOUNTPOINT), so one call removes what was mounted over this mount rather than the
 * mount itself. It is repeated until the handle's mount is no longer attached (EINVAL): each
 * call removes the topmost of the stack, the last one this mount (umount2Stack). */
export function unmountat(mount: Mount, options: UnmountOptions = {}): void {
  if (options.detach === false) {
    // Refused before anything happens: the handle stays open for a retry.
    const id = mount.mountId;
    if (listAllMounts().some((other) => other.parentId === id)) {
      throw systemError('EBUSY', 'umount2', mount.mountpoint, 'other mounts sit on or beneath it');
    }
  }
  try {
    umount2Stack(`/proc/self/fd/${mount.fd}`, constants.MNT_DETACH);
  } finally {
    mount.close();
  }
}

/** A handle on the mount whose root is at `name` beneath `dir` (the topmost one when mounts
 * are stacked), for unmounting a mount that no handle refers to any more. EINVAL when `name`
 * is not the root of a mount. */
export function openMount(dir: DirectoryHandle, name: string): Mount {
  const root = openat2(dir, name, { flags: constants.O_PATH, resolve: resolveBeneathOnly });
  try {
    const status = fstat(root);
    if (!status.isMountRoot) throw systemError('EINVAL', 'openMount', name, 'not a mount point');
    return new Mount(root.release(), name, status.type === 'directory');
  } finally {
    root.close();
  }
}
