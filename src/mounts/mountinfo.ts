// The mount table as /proc/self/mountinfo shows it (proc(5)), so that callers and tests can
// prove nothing was left behind and the runner can sweep stale mounts at start-up. Read with
// listmount/statmount where the kernel has them (Linux ≥ 6.8) and they reproduce mountinfo
// exactly; parsed from /proc/self/mountinfo otherwise.
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import {
  constants,
  isSystemError,
  listmount,
  type MountStatus,
  statmount,
} from '../syscalls/index.js';

export interface MountInfo {
  id: number;
  parentId: number;
  major: number;
  minor: number;
  /** The directory of the filesystem that forms this mount's root ('/' for a whole fs). */
  root: string;
  /** Where it is mounted, relative to the process's root. */
  mountPoint: string;
  /** Per-mount options (rw, nosuid, relatime…). */
  options: string[];
  propagation: {
    /** Peer group id when shared. */
    shared?: number;
    /** Peer group this mount receives from when it is a slave. */
    master?: number;
    /** Nearest dominating peer group in this namespace (slaves only). */
    propagateFrom?: number;
    unbindable: boolean;
  };
  fstype: string;
  source: string;
  /** Per-superblock options. */
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function decode(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}

function parseLine(line: string): MountInfo {
  const fields = line.split(' ');
  const separator = fields.indexOf('-', 6);
  if (fields.length < 10 || separator < 0) {
    throw new Error(`unexpected /proc/self/mountinfo line: ${line}`);
  }
  const [id = '', parentId = '', device = '', root = '', mountPoint = '', options = ''] = fields;
  const [major = '', minor = ''] = device.split(':');
  const propagation: MountInfo['propagation'] = { unbindable: false };
  for (const tag of fields.slice(6, separator)) {
    const [name, value] = tag.split(':');
    if (name === 'shared') propagation.shared = Number(value);
    else if (name === 'master') propagation.master = Number(value);
    else if (name === 'propagate_from') propagation.propagateFrom = Number(value);
    else if (name === 'unbindable') propagation.unbindable = true;
  }
  return {
    id: Number(id),
    parentId: Number(parentId),
    major: Number(major),
    minor: Number(minor),
    root: decode(root),
    mountPoint: decode(mountPoint),
    options: options.split(','),
    propagation,
    fstype: fields[separator + 1] ?? '',
    source: decode(fields[separator + 2] ?? ''),
    superOptions: (fields[separator + 3] ?? '').split(','),
  };
}

/** The mount table parsed from /proc/self/mountinfo. */
export function readMountinfo(): MountInfo[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map(parseLine);
}

const statmountFields =
  constants.STATMOUNT_SB_BASIC |
  constants.STATMOUNT_MNT_BASIC |
  constants.STATMOUNT_PROPAGATE_FROM |
  constants.STATMOUNT_MNT_ROOT |
  constants.STATMOUNT_MNT_POINT |
  constants.STATMOUNT_FS_TYPE |
  constants.STATMOUNT_MNT_OPTS |
  constants.STATMOUNT_FS_SUBTYPE |
  constants.STATMOUNT_SB_SOURCE |
  constants.STATMOUNT_OPT_SEC_ARRAY;

// The order in which mountinfo prints per-mount flags (fs/proc_namespace.c).
const mountFlagNames: readonly [number, string][] = [
  [constants.MOUNT_ATTR_NOSUID, 'nosuid'],
  [constants.MOUNT_ATTR_NODEV, 'nodev'],
  [constants.MOUNT_ATTR_NOEXEC, 'noexec'],
];
const superblockFlagNames: readonly [number, string][] = [
  [constants.SB_SYNCHRONOUS, 'sync'],
  [constants.SB_DIRSYNC, 'dirsync'],
  [constants.SB_LAZYTIME, 'lazytime'],
];

function mountOptions(attributes: number): string[] {
  const options = [attributes & constants.MOUNT_ATTR_RDONLY ? 'ro' : 'rw'];
  for (const [flag, name] of mountFlagNames) if (attributes & flag) options.push(name);
  const atime = attributes & constants.MOUNT_ATTR__ATIME;
  if (atime === constants.MOUNT_ATTR_NOATIME) options.push('noatime');
  if (attributes & constants.MOUNT_ATTR_NODIRATIME) options.push('nodiratime');
  if (atime === constants.MOUNT_ATTR_RELATIME) options.push('relatime');
  if (attributes & constants.MOUNT_ATTR_NOSYMFOLLOW) options.push('nosymfollow');
  if (attributes & constants.MOUNT_ATTR_IDMAP) options.push('idmapped');
  return options;
}

function fromStatus(status: MountStatus, mountPoint: string): MountInfo {
  const propagation: MountInfo['propagation'] = {
    unbindable: (status.propagation & constants.MS_UNBINDABLE) !== 0,
  };
  if (status.propagation & constants.MS_SHARED) propagation.shared = status.peerGroup;
  if (status.propagation & constants.MS_SLAVE) {
    propagation.master = status.master;
    if (status.propagateFrom !== 0 && status.propagateFrom !== status.master) {
      propagation.propagateFrom = status.propagateFrom;
    }
  }
  const superOptions = [status.superblockFlags & constants.SB_RDONLY ? 'ro' : 'rw'];
  for (const [flag, name] of superblockFlagNames) {
    if (status.superblockFlags & flag) superOptions.push(name);
  }
  superOptions.push(...(status.securityOptions ?? []));
  if (status.superOptions) superOptions.push(...status.superOptions.split(','));
  return {
    id: status.id,
    parentId: status.parentId,
    major: status.devMajor,
    minor: status.devMinor,
    root: status.root ?? '',
    mountPoint,
    options: mountOptions(status.attributes),
    propagation,
    fstype: status.fsSubtype ? `${status.fsType}.${status.fsSubtype}` : (status.fsType ?? ''),
    source: status.source ?? 'none',
    superOptions,
  };
}

/** The mount table from listmount and statmount; mounts that vanish meanwhile, or whose
 * mount point is not reachable from the process's root, are left out (as in mountinfo). */
export function readStatmount(): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const uniqueId of listmount()) {
    const status = statmount(uniqueId, statmountFields);
    if (status?.mountPoint !== undefined) mounts.push(fromStatus(status, status.mountPoint));
  }
  return mounts;
}

let source: (() => MountInfo[]) | undefined;

/** Chooses statmount once it has been seen to give exactly what mountinfo gives. */
function chooseSource(): () => MountInfo[] {
  try {
    const fromStatmount = readStatmount();
    if (isDeepStrictEqual(fromStatmount, readMountinfo())) return readStatmount;
  } catch (error) {
    // ENOSYS before Linux 6.8; EPERM under some seccomp profiles.
    if (!isSystemError(error)) throw error;
  }
  return readMountinfo;
}

/** Whether listAllMounts reads the table with listmount/statmount (else mountinfo). */
export function usesStatmount(): boolean {
  source ??= chooseSource();
  return source === readStatmount;
}

/** Every mount of the caller's namespace, oldest first (parents before children). */
export function listAllMounts(): MountInfo[] {
  source ??= chooseSource();
  return source();
}

/** The mounts whose mount point is `directory` (absolute, as the kernel prints it) or lies
 * beneath it. */
export function listMounts(directory: string): MountInfo[] {
  const trimmed = directory.length > 1 ? directory.replace(/\/+$/, '') : directory;
  const prefix = trimmed === '/' ? '/' : `${trimmed}/`;
  return listAllMounts().filter(
    (mount) => mount.mountPoint === trimmed || mount.mountPoint.startsWith(prefix),
  );
}
