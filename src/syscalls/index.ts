// The typed syscall façade: the only module above the addon. Every fd the addon returns is
// wrapped in a handle with an explicit close() and Symbol.dispose; failures are Node-style
// system errors (code, errno, syscall, path).
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { constants, resolveBeneathOnly } from './constants.js';
import { native } from './native.js';

export { constants, resolveBeneathOnly } from './constants.js';

/** Handles that are open now, so that tests can prove none is forgotten. */
const openHandles = new Set<Fd>();

export function openHandleCount(): number {
  return openHandles.size;
}

/** An owned file descriptor. */
export class Fd implements Disposable {
  #fd: number;

  constructor(fd: number) {
    this.#fd = fd;
    openHandles.add(this);
  }

  /** The descriptor number; throws once closed so a stale number is never used. */
  get fd(): number {
    if (this.#fd < 0) throw new Error('file descriptor used after close()');
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Gives up ownership without closing: the caller wraps the number in another handle. */
  release(): number {
    const fd = this.fd;
    this.#fd = -1;
    openHandles.delete(this);
    return fd;
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    openHandles.delete(this);
    native.close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** An O_PATH|O_DIRECTORY handle on a directory. */
export class DirectoryHandle extends Fd {}

/** A system error like the ones Node's fs functions throw. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

export function isSystemError(error: unknown, code?: string): error is SystemError {
  return (
    error instanceof Error &&
    typeof (error as SystemError).syscall === 'string' &&
    (code === undefined || (error as SystemError).code === code)
  );
}

/** Makes an error of the same shape as the addon's, for failures found in TypeScript (e.g. a
 * mountpoint of the wrong type). `detail` replaces the generic errno text. */
export function systemError(
  code: keyof typeof osConstants.errno,
  syscall: string,
  path?: string,
  detail?: string,
): SystemError {
  const errno = -osConstants.errno[code];
  const text = detail ?? getSystemErrorMap().get(errno)?.[1] ?? code;
  const error = new Error(
    `${code}: ${text}, ${syscall}${path === undefined ? '' : ` '${path}'`}`,
  ) as SystemError;
  error.code = code;
  error.errno = errno;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  return error;
}

/** Replaces the path an error names (e.g. the addon saw '' and the caller knows the name). */
export function withPath(error: unknown, path: string): unknown {
  if (!isSystemError(error)) return error;
  const relabelled = systemError(error.code as keyof typeof osConstants.errno, error.syscall, path);
  relabelled.errno = error.errno;
  const end = error.message.indexOf(`, ${error.syscall}`);
  const head = end < 0 ? error.message : error.message.slice(0, end);
  relabelled.message = `${head}, ${error.syscall} '${path}'`;
  return relabelled;
}

function dirFd(dir: Fd | null): number {
  return dir === null ? constants.AT_FDCWD : dir.fd;
}

const directoryPath = constants.O_PATH | constants.O_DIRECTORY;

/** Opens a host directory by absolute path (the build directory): a trusted path, so
 * symlinks on the way are followed. */
export function openDirectory(absolutePath: string): DirectoryHandle {
  if (!absolutePath.startsWith('/')) {
    throw new TypeError(`openDirectory needs an absolute path, got '${absolutePath}'`);
  }
  return new DirectoryHandle(native.openat2(constants.AT_FDCWD, absolutePath, directoryPath, 0, 0));
}

export interface OpenHow {
  flags: number;
  mode?: number;
  resolve?: number;
}

/** openat2(2); `null` stands for AT_FDCWD. O_CLOEXEC is always added. */
export function openat2(dir: Fd | null, path: string, how: OpenHow): Fd {
  return new Fd(native.openat2(dirFd(dir), path, how.flags, how.mode ?? 0, how.resolve ?? 0));
}

/** Opens a directory beneath `dir`, refusing symlinks (ELOOP), magic links and escapes
 * through '..' or absolute paths (EXDEV). '' and '.' give a new handle on `dir` itself. */
export function openDirectoryBeneath(dir: DirectoryHandle, path: string): DirectoryHandle {
  return new DirectoryHandle(
    native.openat2(dir.fd, path === '' ? '.' : path, directoryPath, 0, resolveBeneathOnly),
  );
}

export type FileType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'character' | 'block';

export interface FileStatus {
  type: FileType;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: number;
  size: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  /** The id of the mount holding the node, as in /proc/self/mountinfo (Linux ≥ 5.8). */
  mountId: number | undefined;
  /** Whether the node is the root of a mount (Linux ≥ 5.8). */
  isMountRoot: boolean;
}

const fileTypes = new Map<number, FileType>([
  [constants.S_IFREG, 'file'],
  [constants.S_IFDIR, 'directory'],
  [constants.S_IFLNK, 'symlink'],
  [constants.S_IFIFO, 'fifo'],
  [constants.S_IFSOCK, 'socket'],
  [constants.S_IFCHR, 'character'],
  [constants.S_IFBLK, 'block'],
]);

// Positions in the array native.statx fills (native/syscalls.c, enum STAT_*).
const statxFields = 13;
const statxBuffer = new Float64Array(statxFields);

/** statx(2) of `path` relative to `dir` (null: the current directory; '': `dir` itself).
 * Symlinks on the way are followed: for untrusted trees, open beneath first and use fstat. */
export function statAt(
  dir: Fd | null,
  path: string,
  options: { follow?: boolean } = {},
): FileStatus {
  let flags = options.follow === true ? 0 : constants.AT_SYMLINK_NOFOLLOW;
  if (path === '') flags |= constants.AT_EMPTY_PATH;
  native.statx(dirFd(dir), path, flags, constants.STATX_BASIC_STATS, statxBuffer);
  const [
    ,
    attributes = 0,
    mode = 0,
    uid = 0,
    gid = 0,
    nlink = 0,
    ino = 0,
    size = 0,
    devMajor = 0,
    devMinor = 0,
    rdevMajor = 0,
    rdevMinor = 0,
    mountId = -1,
  ] = statxBuffer;
  const type = fileTypes.get(mode & constants.S_IFMT);
  if (type === undefined) throw new Error(`statx: unknown file type in mode ${mode.toString(8)}`);
  return {
    type,
    mode: mode & 0o7777,
    uid,
    gid,
    nlink,
    ino,
    size,
    devMajor,
    devMinor,
    rdevMajor,
    rdevMinor,
    mountId: mountId < 0 ? undefined : mountId,
    isMountRoot: (attributes & constants.STATX_ATTR_MOUNT_ROOT) !== 0,
  };
}

/** The status of the node a handle refers to. */
export function fstat(fd: Fd): FileStatus {
  return statAt(fd, '');
}

export function mkdirat(dir: Fd | null, path: string, mode = 0o755): void {
  native.mkdirat(dirFd(dir), path, mode);
}

/** mknodat(2); `mode` holds the type (S_IF*) and the permission bits. */
export function mknodat(dir: Fd | null, path: string, mode: number, major = 0, minor = 0): void {
  native.mknodat(dirFd(dir), path, mode, major, minor);
}

export function symlinkat(target: string, dir: Fd | null, path: string): void {
  native.symlinkat(target, dirFd(dir), path);
}

/** unlinkat(2); `flags` may be AT_REMOVEDIR. */
export function unlinkat(dir: Fd | null, path: string, flags = 0): void {
  native.unlinkat(dirFd(dir), path, flags);
}

/** fsopen(2): a filesystem context for `fstype`. */
export function fsopen(fstype: string): Fd {
  return new Fd(native.fsopen(fstype, 0));
}

/** fsconfig(2) as the kernel takes it; the typed helpers below are easier to read. */
export function fsconfig(
  fs: Fd,
  command: number,
  key: string | null,
  value: string | Buffer | null,
  aux: number,
): void {
  native.fsconfig(fs.fd, command, key, value, aux);
}

export function fsconfigSetFlag(fs: Fd, key: string): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_FLAG, key, null, 0);
}

export function fsconfigSetString(fs: Fd, key: string, value: string): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_STRING, key, value, 0);
}

export function fsconfigSetBinary(fs: Fd, key: string, value: Buffer): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_BINARY, key, value, 0);
}

export function fsconfigSetPath(fs: Fd, key: string, dir: Fd | null, path: string): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_PATH, key, path, dirFd(dir));
}

export function fsconfigSetPathEmpty(fs: Fd, key: string, fd: Fd): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_PATH_EMPTY, key, '', fd.fd);
}

export function fsconfigSetFd(fs: Fd, key: string, fd: Fd): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_SET_FD, key, null, fd.fd);
}

export function fsconfigCreate(fs: Fd): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_CMD_CREATE, null, null, 0);
}

export function fsconfigReconfigure(fs: Fd): void {
  native.fsconfig(fs.fd, constants.FSCONFIG_CMD_RECONFIGURE, null, null, 0);
}

/** fspick(2): a filesystem context on the superblock of a mounted filesystem, for
 * fsconfig(…, FSCONFIG_CMD_RECONFIGURE); `flags` are FSPICK_* (CLOEXEC always added). */
export function fspick(dir: Fd | null, path: string, flags = 0): Fd {
  return new Fd(native.fspick(dirFd(dir), path, flags));
}

/** fsmount(2): a detached mount of the created superblock; `attributes` are MOUNT_ATTR_*. */
export function fsmount(fs: Fd, attributes = 0): Fd {
  return new Fd(native.fsmount(fs.fd, 0, attributes));
}

/** move_mount(2); `null` stands for AT_FDCWD. */
export function moveMount(
  from: Fd | null,
  fromPath: string,
  to: Fd | null,
  toPath: string,
  flags: number,
): void {
  native.moveMount(dirFd(from), fromPath, dirFd(to), toPath, flags);
}

/** open_tree(2); OPEN_TREE_CLOEXEC is always added. */
export function openTree(dir: Fd | null, path: string, flags: number): Fd {
  return new Fd(native.openTree(dirFd(dir), path, flags));
}

export interface MountAttributes {
  attrSet?: number;
  attrClear?: number;
  /** One of MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE, or 0 to leave it. */
  propagation?: number;
  userNamespace?: Fd;
}

/** mount_setattr(2); `flags` may hold AT_EMPTY_PATH, AT_RECURSIVE, AT_SYMLINK_NOFOLLOW. */
export function mountSetattr(
  dir: Fd | null,
  path: string,
  flags: number,
  attributes: MountAttributes,
): void {
  native.mountSetattr(
    dirFd(dir),
    path,
    flags,
    attributes.attrSet ?? 0,
    attributes.attrClear ?? 0,
    attributes.propagation ?? 0,
    attributes.userNamespace?.fd ?? 0,
  );
}

/** listmount(2) (Linux ≥ 6.8): the unique ids of every mount in the caller's namespace,
 * oldest first. */
export function listmount(): number[] {
  return native.listmount();
}

/** What statmount(2) reports about a mount; strings are absent when the kernel did not
 * report them (see `mask`). */
export interface MountStatus {
  mask: number;
  devMajor: number;
  devMinor: number;
  /** SB_RDONLY, SB_SYNCHRONOUS, SB_DIRSYNC, SB_LAZYTIME. */
  superblockFlags: number;
  uniqueId: number;
  parentUniqueId: number;
  /** The ids /proc/self/mountinfo and statx show. */
  id: number;
  parentId: number;
  /** MOUNT_ATTR_* */
  attributes: number;
  /** MS_SHARED, MS_SLAVE, MS_UNBINDABLE bits, or MS_PRIVATE. */
  propagation: number;
  peerGroup: number;
  master: number;
  propagateFrom: number;
  fsType?: string;
  fsSubtype?: string;
  root?: string;
  mountPoint?: string;
  /** The filesystem's own options, comma-separated (mnt_opts). */
  superOptions?: string;
  source?: string;
  securityOptions?: string[];
}

/** statmount(2) (Linux ≥ 6.8) of a mount by unique id, `mask` of STATMOUNT_*; null when the
 * mount no longer exists. */
export function statmount(uniqueId: number, mask: number): MountStatus | null {
  return native.statmount(uniqueId, mask);
}

/** umount2(2) of a path; `flags` are MNT_* and UMOUNT_NOFOLLOW. */
export function umount2(path: string, flags = 0): void {
  native.umount2(path, flags);
}

/** umount2 repeated until `path` names no attached mount: through a handle's magic link, the
 * handle's mount and whatever was mounted over it. Throws only if the first call fails (or a
 * later one fails otherwise than with EINVAL, "nothing mounted there any more"). */
export function umount2Stack(path: string, flags = 0): void {
  native.umount2Stack(path, flags);
}
