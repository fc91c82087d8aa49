// The special mounts of an action's input root — /proc, /sys, /dev and what is in them, /tmp —
// in one table. Everything else is derived from it: the steps of the child's plan
// (filesystems.ts), shared mode's mountat calls and the stale-mount sweep's recognition
// (contributions/shared-mounts.ts), and doctor's probes, which run the modes' own plans.
import type { MountFlags } from '../mounts/index.js';
import type { SpecialFilesystems } from './types.js';

/** What is mounted (or made) at an entry's place. */
export type SpecialMountSource =
  /** A new filesystem instance. */
  | {
      readonly kind: 'filesystem';
      readonly fstype: string;
      readonly options: (
        filesystems: SpecialFilesystems,
      ) => Readonly<Record<string, string | true>>;
    }
  /** The host's device node of the same name (made anew with mknod, or bound). */
  | { readonly kind: 'deviceNode' }
  /** A symlink, no mount. */
  | { readonly kind: 'symlink'; readonly target: string }
  /** The request's temporary directory, bound. */
  | { readonly kind: 'temporaryDirectory' }
  /** The entry of the enclosing filesystem at the same place, bound read-only over itself;
   * skipped where that filesystem has no such entry. */
  | { readonly kind: 'readOnlyOverItself' }
  /** The entry of the enclosing filesystem at the same place, covered: a directory by an
   * empty read-only tmpfs, a file by a read-only bind of the host's /dev/null (reads end at
   * once, writes vanish), as container runtimes mask them; skipped where that filesystem has
   * no such entry. */
  | { readonly kind: 'masked'; readonly type: 'file' | 'directory' };

export interface SpecialMount {
  /** Where, relative to the input root; an entry beneath another is made inside the
   * nearest entry that encloses it. */
  readonly at: string;
  /** The setting of SpecialFilesystems that provides it. */
  readonly enabledBy: 'proc' | 'sys' | 'dev' | 'tmp';
  readonly source: SpecialMountSource;
  readonly attributes: MountFlags;
  /** Inside a fresh filesystem: the mode of the directory (or file, for a node) made for
   * it. Top-level entries go on the input root's own mountpoints instead. */
  readonly createMode?: number;
  /** A mask or read-only bind over what the kernel lets in by handlers of its own rather
   * than by the owner and mode of its inodes: the sysctls, writable by whoever holds a
   * capability over the namespace a setting belongs to (the action's own user namespace's
   * user.* limits, a network or IPC namespace that the action's user namespace owns), and
   * by anyone where the table says 0666 (kernel.ns_last_pid). Made whatever the action's
   * ids (HostResources.hostRootOnlyEntries judges the others by owner and mode). */
  readonly permissionsOfItsOwn?: true;
}

/** The device nodes of an action's /dev, from the host's. */
export const deviceNodeNames: readonly string[] = [
  'null',
  'zero',
  'full',
  'random',
  'urandom',
  'tty',
];

const kernelFiles: MountFlags = { readonly: true, nosuid: true, nodev: true, noexec: true };
const noOptions = () => ({});

/** An empty directory that stays empty: a tmpfs of one inode (its root), read-only. */
export const emptyDirectoryFilesystem = {
  fstype: 'tmpfs',
  options: { size: '4k', nr_inodes: '1', mode: '0555' },
  attributes: kernelFiles,
} as const;

/** Host-wide kernel internals, of every process and every container of the host: physical
 * page flags, counts and cgroups (an aid to Rowhammer-style attacks), every CPU's timers and
 * the scheduler's state, the key users and the keys visible, kernel memory, the hardware's
 * and firmware's tables and energy counters (a side channel). The masked paths of runc's and
 * containerd's default specification, and the kpage files and key-users, which they leave to
 * a dropped CAP_SYS_ADMIN. No toolchain reads them. */
const maskedProcFiles = [
  'kcore',
  'keys',
  'key-users',
  'kpagecgroup',
  'kpagecount',
  'kpageflags',
  'latency_stats',
  'sched_debug',
  'timer_list',
  'timer_stats',
];
const maskedProcDirectories = ['acpi', 'asound', 'scsi'];
const maskedSysDirectories = ['firmware', 'devices/virtual/powercap'];
/** The physical address of the kernel's vmcoreinfo note (its layout for crash dumps, a KASLR
 * aid), world-readable. */
const maskedSysFiles = ['kernel/vmcoreinfo'];

/** The attributes of a mask's mount. A file's mask is a device node (the host's /dev/null),
 * so not nodev. */
export const maskAttributes: Readonly<Record<'file' | 'directory', MountFlags>> = {
  file: { readonly: true, nosuid: true, noexec: true },
  directory: kernelFiles,
};

function masked(at: string, type: 'file' | 'directory'): SpecialMount {
  const enabledBy = at.startsWith('proc/') ? 'proc' : 'sys';
  return { at, enabledBy, source: { kind: 'masked', type }, attributes: maskAttributes[type] };
}

/** The table, in the order the mounts are made (a parent before what is inside it). */
export const specialMounts: readonly SpecialMount[] = [
  {
    at: 'proc',
    enabledBy: 'proc',
    source: { kind: 'filesystem', fstype: 'proc', options: (f) => f.procOptions },
    attributes: { nosuid: true, nodev: true, noexec: true },
  },
  // Writing kernel settings or triggering sysrq is never an action's business (container
  // runtimes' read-only paths): the sysctls, sysrq, interrupt affinities, the buses' and
  // filesystems' settings. Reading them stays (toolchains read /proc/sys/kernel and vm).
  ...['sys', 'sysrq-trigger', 'irq', 'bus', 'fs'].map(
    (name): SpecialMount => ({
      at: `proc/${name}`,
      enabledBy: 'proc',
      source: { kind: 'readOnlyOverItself' },
      attributes: kernelFiles,
      ...(name === 'sys' ? { permissionsOfItsOwn: true } : {}),
    }),
  ),
  ...maskedProcFiles.map((name) => masked(`proc/${name}`, 'file')),
  ...maskedProcDirectories.map((name) => masked(`proc/${name}`, 'directory')),
  {
    at: 'sys',
    enabledBy: 'sys',
    source: { kind: 'filesystem', fstype: 'sysfs', options: noOptions },
    attributes: kernelFiles,
  },
  ...maskedSysDirectories.map((name) => masked(`sys/${name}`, 'directory')),
  ...maskedSysFiles.map((name) => masked(`sys/${name}`, 'file')),
  {
    at: 'dev',
    enabledBy: 'dev',
    source: {
      kind: 'filesystem',
      fstype: 'tmpfs',
      options: (f) => ({ mode: '0755', size: f.devSize }),
    },
    attributes: { nosuid: true, noexec: true },
  },
  // Read-only, as every bind of a host node: the node stays writable (a device is not
  // written through its mount), but a root action cannot chmod, chown or touch the host's.
  ...deviceNodeNames.map(
    (name): SpecialMount => ({
      at: `dev/${name}`,
      enabledBy: 'dev',
      source: { kind: 'deviceNode' },
      attributes: { readonly: true, nosuid: true, noexec: true },
      createMode: 0o666,
    }),
  ),
  ...(
    [
      ['fd', '/proc/self/fd'],
      ['stdin', '/proc/self/fd/0'],
      ['stdout', '/proc/self/fd/1'],
      ['stderr', '/proc/self/fd/2'],
      ['ptmx', 'pts/ptmx'],
    ] as const
  ).map(
    ([name, target]): SpecialMount => ({
      at: `dev/${name}`,
      enabledBy: 'dev',
      source: { kind: 'symlink', target },
      attributes: {},
    }),
  ),
  {
    at: 'dev/pts',
    enabledBy: 'dev',
    source: {
      kind: 'filesystem',
      fstype: 'devpts',
      options: () => ({ newinstance: true, ptmxmode: '0666', mode: '0620' }),
    },
    attributes: { nosuid: true, noexec: true },
    createMode: 0o755,
  },
  {
    at: 'dev/shm',
    enabledBy: 'dev',
    source: {
      kind: 'filesystem',
      fstype: 'tmpfs',
      options: (f) => ({ mode: '1777', size: f.shmSize }),
    },
    attributes: { nosuid: true, nodev: true },
    createMode: 0o1777,
  },
  {
    at: 'tmp',
    enabledBy: 'tmp',
    source: { kind: 'temporaryDirectory' },
    attributes: { nosuid: true, nodev: true },
  },
];

/** The entries these settings provide. */
export function enabledSpecialMounts(filesystems: SpecialFilesystems): SpecialMount[] {
  return specialMounts.filter((entry) => filesystems[entry.enabledBy]);
}

const places = new Set(specialMounts.map((entry) => entry.at));

/** The nearest place of the table that encloses `at`, if any. */
function enclosingPlace(at: string): string | undefined {
  for (let slash = at.lastIndexOf('/'); slash > 0; ) {
    const enclosing = at.slice(0, slash);
    if (places.has(enclosing)) return enclosing;
    slash = enclosing.lastIndexOf('/');
  }
  return undefined;
}

/** Each entry's parent, found once: plans ask for it for every entry of every action. */
const parents = new Map(specialMounts.map((entry) => [entry, enclosingPlace(entry.at)]));

/** The entry `entry` is made inside (the nearest that encloses it), if any. */
export function parentOf(entry: SpecialMount): string | undefined {
  return parents.get(entry);
}

/** The path of `entry` inside its parent (a single name, but for masks deep in /sys). */
export function nameOf(entry: SpecialMount): string {
  const parent = parents.get(entry);
  return parent === undefined ? entry.at : entry.at.slice(parent.length + 1);
}

const mountedPlaces = new Set(
  specialMounts.filter((entry) => entry.source.kind !== 'symlink').map((entry) => entry.at),
);

/** Whether a mount at `relativePath` beneath a build directory is one of the table's, in
 * some input root (…/proc, …/dev/pts). */
export function isSpecialMountpoint(relativePath: string): boolean {
  const parts = relativePath.split('/');
  for (let start = 0; start < parts.length; start++) {
    if (mountedPlaces.has(parts.slice(start).join('/'))) return true;
  }
  return false;
}
