// What every action needs from the host, opened once by the Engine and closed with it: the
// device nodes of /dev, /dev/null for stdin, the init executable, a pidfd of the runner
// itself, and which of the table's masks this kernel has (and which of those only its uid 0
// may use). No per-action opens.
import { existsSync, lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { constants, type Fd, fstat, openat2 } from '../syscalls/index.js';
import { initExecutablePath } from '../syscalls/native.js';
import { pidfdOpen } from '../syscalls/process.js';
import { deviceNodeNames, specialMounts } from './special-mounts.js';

/** A host device node, as an action's /dev gets it. */
export interface DeviceNode {
  /** O_PATH handle on the host's node, bound in where mknod is not allowed (a user
   * namespace) or not used (shared mode). */
  readonly fd: Fd;
  /** Its type and permission bits, and its device number: made anew with mknod in the
   * action's own /dev where the runner may (namespaces mode), so that no action can change
   * the host's node (chmod, chown, utimes with the capabilities a root action keeps). */
  readonly mode: number;
  readonly major: number;
  readonly minor: number;
}

/** A pidfd of the runner's own process (close-on-exec), or undefined where pidfd_open is
 * missing (Linux < 5.3) or refused (a container's seccomp profile older than the call: EPERM):
 * each child then has only its parent death signal, which a runner that dies before the child
 * set it never sends. */
function openRunnerPidfd(): Fd | undefined {
  try {
    return pidfdOpen(process.pid);
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    if (code === 'ENOSYS' || code === 'EPERM') return undefined;
    throw error;
  }
}

function openDeviceNode(name: string): DeviceNode {
  const path = `/dev/${name}`;
  const fd = openat2(null, path, { flags: constants.O_PATH });
  const status = fstat(fd);
  if (status.type !== 'character') {
    fd.close();
    throw new Error(`${path} is not a character device`);
  }
  return {
    fd,
    mode: constants.S_IFCHR | status.mode,
    major: status.rdevMajor,
    minor: status.rdevMinor,
  };
}

/** The kinds of entries that cover an entry of the kernel's filesystems, planned only where
 * the kernel has it (HostResources.presentKernelEntries). */
export const kernelEntryKinds: ReadonlySet<string> = new Set(['masked', 'readOnlyOverItself']);

/** The places of the table's masks and read-only binds (in /proc and /sys) that this kernel
 * has, as the runner's own /proc and /sys show them: a fresh procfs or sysfs of the same
 * kernel has the same entries, and each costs the child a lookup or mounts per action (made,
 * then torn down) even where there is nothing to cover. A runner's /proc or /sys that shows
 * nothing of the kernel's (a procfs mounted subset=pid has no /proc/sys; no sysfs mounted)
 * tells nothing: all its entries are kept then, and the child skips those the kernel lacks. */
function presentKernelEntries(): ReadonlySet<string> {
  const tells = { proc: existsSync('/proc/sys/kernel'), sys: existsSync('/sys/kernel') };
  return new Set(
    specialMounts
      .filter((entry) => kernelEntryKinds.has(entry.source.kind))
      .filter(
        (entry) =>
          !tells[entry.enabledBy === 'proc' ? 'proc' : 'sys'] || existsSync(`/${entry.at}`),
      )
      .map((entry) => entry.at),
  );
}

/** Whether `status` is owned by uid 0 and grants its group and others none of `bits`. */
function onlyOwnerRootMay(status: Stats, bits: number): boolean {
  return status.uid === 0 && (status.mode & bits) === 0;
}

/** Whether the kernel's entry at `path`, and with `beneath` everything in it on the same
 * filesystem, is owned by uid 0 and grants group and others none of `bits`. Symlinks are
 * passed over: what they point to is judged where it is. Only the entry of the filesystem
 * mounted at `filesystem` counts: one mounted over it or anywhere beneath it (a container
 * runtime's mask of the runner's /proc, nfsd at /proc/fs/nfsd) says nothing of the kernel's,
 * so the place is not judged. */
function rootOnly(path: string, filesystem: string, bits: number, beneath: boolean): boolean {
  let top: Stats;
  try {
    top = lstatSync(path);
    if (top.dev !== lstatSync(filesystem).dev) return false;
  } catch {
    return false;
  }
  const walk = (at: string, status: Stats): boolean => {
    if (status.isSymbolicLink()) return true;
    if (!onlyOwnerRootMay(status, bits)) return false;
    if (!beneath || !status.isDirectory()) return true;
    let names: string[];
    try {
      names = readdirSync(at);
    } catch {
      return false;
    }
    return names.every((name) => {
      const below = `${at}/${name}`;
      let child: Stats;
      try {
        child = lstatSync(below);
      } catch {
        // Gone meanwhile (a process's entry): nothing to judge.
        return true;
      }
      // Another filesystem mounted there on the host hides the kernel's entry beneath,
      // which the action's fresh one has: unjudged, the place keeps its mount.
      return child.dev === status.dev && walk(below, child);
    });
  };
  return walk(path, top);
}

/** Group and others' read, write and search bits; their write bits. */
const anyAccess = 0o077;
const writeAccess = 0o022;

/** The places of the table's masks and read-only binds whose kernel entry only the host's
 * uid 0 may use, as the runner's /proc and /sys show them: owned by uid 0 and granting its
 * group and others nothing of what the entry stands against (reading or writing a masked
 * file, or entering a masked directory; writing anything beneath a read-only bind). The
 * kernel decides who may use them by owner and mode alone (generic_permission: procfs's
 * entries and kernfs have no permission handler granting more; the sysctls do, and are
 * never counted: SpecialMount.permissionsOfItsOwn), and grants a capability over an inode
 * only where its owner and group are mapped in the holder's user namespace
 * (capable_wrt_inode_uidgid). So an action in a user namespace of its own whose ids are
 * other host ids than uid 0 is refused these whatever capabilities it holds there; its
 * group ids do not matter (no group bit is set). Several need init-namespace capabilities
 * besides (kcore CAP_SYS_RAWIO). Judged on this kernel's own modes: one whose modes grant
 * more keeps the mask. */
function hostRootOnlyEntries(present: ReadonlySet<string>): ReadonlySet<string> {
  return new Set(
    specialMounts
      .filter((entry) => present.has(entry.at) && entry.permissionsOfItsOwn !== true)
      .filter((entry) =>
        entry.source.kind === 'masked'
          ? rootOnly(`/${entry.at}`, `/${entry.enabledBy}`, anyAccess, false)
          : entry.source.kind === 'readOnlyOverItself' &&
            rootOnly(`/${entry.at}`, `/${entry.enabledBy}`, writeAccess, true),
      )
      .map((entry) => entry.at),
  );
}

const CAP_SETGID = 6n;
const CAP_SETUID = 7n;
const CAP_MKNOD = 27n;

/** Whether every one of `bits` is in the runner's effective set (/proc/self/status, CapEff). */
function holdsCapabilities(...bits: bigint[]): boolean {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (effective?.[1] === undefined) return false;
  const mask = BigInt(`0x${effective[1]}`);
  return bits.every((bit) => ((mask >> bit) & 1n) === 1n);
}

export class HostResources {
  /** The host's device nodes, by name. */
  readonly deviceNodes: ReadonlyMap<string, DeviceNode>;
  /** Whether the runner holds CAP_MKNOD, so that namespaces mode can make the nodes anew
   * (a container whose capabilities were dropped may lack it: the nodes are bound then). */
  readonly makesDeviceNodes: boolean;
  /** Whether the runner holds CAP_SETUID and CAP_SETGID (root, or granted them in its user
   * namespace), so that it may write any id map of a child's new user namespace, not only
   * one line of its own ids. */
  readonly mapsAnyIds: boolean;
  /** /dev/null opened for reading: every action's stdin. */
  readonly devNull: Fd;
  /** O_PATH handle on the static init, executed with execveat so that it works after
   * pivot_root into an input root that has no such file. */
  readonly init: Fd;
  /** A pidfd of the runner, polled by each child right after it set its parent death
   * signal (PlanBuilder.parentDeathSignal); undefined without pidfd_open. */
  readonly runnerPidfd: Fd | undefined;
  /** The places of the table's masks and read-only binds this kernel has
   * (presentKernelEntries): the others are not planned. */
  readonly presentKernelEntries: ReadonlySet<string>;
  /** Those of them that only the host's uid 0 may use (hostRootOnlyEntries): not planned for
   * actions whose ids are never the host's uid 0 (IsolationStrategy.unprivilegedActionIds). */
  readonly hostRootOnlyEntries: ReadonlySet<string>;

  private constructor(
    deviceNodes: ReadonlyMap<string, DeviceNode>,
    devNull: Fd,
    init: Fd,
    runnerPidfd: Fd | undefined,
  ) {
    this.deviceNodes = deviceNodes;
    this.makesDeviceNodes = holdsCapabilities(CAP_MKNOD);
    this.mapsAnyIds = holdsCapabilities(CAP_SETUID, CAP_SETGID);
    this.presentKernelEntries = presentKernelEntries();
    this.hostRootOnlyEntries = hostRootOnlyEntries(this.presentKernelEntries);
    this.devNull = devNull;
    this.init = init;
    this.runnerPidfd = runnerPidfd;
  }

  static open(): HostResources {
    const deviceNodes = new Map<string, DeviceNode>();
    const opened: Fd[] = [];
    try {
      for (const name of deviceNodeNames) {
        const node = openDeviceNode(name);
        opened.push(node.fd);
        deviceNodes.set(name, node);
      }
      const devNull = openat2(null, '/dev/null', { flags: constants.O_RDONLY });
      opened.push(devNull);
      const init = openat2(null, initExecutablePath, { flags: constants.O_PATH });
      opened.push(init);
      return new HostResources(deviceNodes, devNull, init, openRunnerPidfd());
    } catch (error) {
      for (const fd of opened) fd.close();
      throw error;
    }
  }

  close(): void {
    for (const node of this.deviceNodes.values()) node.fd.close();
    this.devNull.close();
    this.init.close();
    this.runnerPidfd?.close();
  }
}
