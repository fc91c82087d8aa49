// What this kernel, container runtime and process allow, detected rather than assumed: each
// check tries the real thing (a syscall, a clone through the engine's own launcher) or reads
// what the kernel reports, and says in one line what it saw and, when negative, the fix.
// `doctor` prints these; the engine may use them to refuse a mode with a useful message.
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  readFileSync,
  realpathSync,
  statfsSync,
} from 'node:fs';
import { constants as osConstants, release } from 'node:os';
import { resolve } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { type CgroupLayout, cgroupLayout, chooseVersion } from '../cgroups/index.js';
import { type MountInfo, readMountinfo } from '../mounts/index.js';
import {
  constants,
  type Fd,
  fsopen,
  isSystemError,
  listmount,
  mountSetattr,
  openat2,
} from '../syscalls/index.js';
import { isStepError, spawn, watchExit } from '../syscalls/process.js';
import { capabilityNumbers } from './capabilities.js';
import { mountNamespaceTemplate } from './host.js';
import { beneathNoSymlinks, cwd, PlanBuilder, type StepInfo } from './plan.js';
import type { IsolationMode } from './types.js';

/** ok: present and usable; unavailable: absent or refused; unknown: could not be probed. */
export type CheckStatus = 'ok' | 'unavailable' | 'unknown';

export interface Check {
  readonly title: string;
  readonly status: CheckStatus;
  /** What was seen, one line. */
  readonly detail: string;
  /** How to make it available, one line; only when it is not. */
  readonly fix?: string;
}

export interface KernelVersion {
  readonly release: string;
  readonly major: number;
  readonly minor: number;
}

export interface ProcessPrivileges {
  readonly uid: number;
  /** Capability names without CAP_, as /proc/self/status reports them. */
  readonly effective: readonly string[];
  readonly bounding: readonly string[];
}

export interface Features {
  readonly kernel: KernelVersion;
  readonly privileges: ProcessPrivileges;
  /** fsopen works in the runner's own mount namespace: CAP_SYS_ADMIN in the user namespace
   * that owns it (not only in a user namespace of its own). */
  readonly canMountHere: boolean;
  readonly checks: {
    readonly kernel: Check;
    readonly capabilities: Check;
    readonly mountApi: Check;
    readonly openat2: Check;
    readonly mountSetattr: Check;
    readonly listmount: Check;
    readonly clonePidfd: Check;
    readonly pidfdOpen: Check;
    readonly clone3: Check;
    readonly closeRange: Check;
    readonly namespaces: Check;
    readonly userNamespaceSysctls: Check;
    readonly apparmorUserNamespaces: Check;
    readonly userNamespaces: Check;
    readonly procVisible: Check;
    readonly procInUserNamespace: Check;
    readonly seccomp: Check;
    readonly cgroup: Check;
    readonly buildDirectory?: Check;
  };
}

const CLONE_NEWNS = 0x00020000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;

const FUSE_SUPER_MAGIC = 0x65735546;

function ok(title: string, detail: string): Check {
  return { title, status: 'ok', detail };
}

function unavailable(title: string, detail: string, fix: string): Check {
  return { title, status: 'unavailable', detail, fix };
}

function unknown(title: string, detail: string, fix: string): Check {
  return { title, status: 'unknown', detail, fix };
}

/** A file of /proc or /sys, trimmed; undefined when it does not exist on this kernel. */
function readSetting(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    if (isSystemError(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** The lines of /proc/self/status as a map. */
function processStatus(): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

export function kernelVersion(): KernelVersion {
  const text = release();
  const [, major = '0', minor = '0'] = /^(\d+)\.(\d+)/.exec(text) ?? [];
  return { release: text, major: Number(major), minor: Number(minor) };
}

const capabilityNames = new Map<number, string>(
  Object.entries(capabilityNumbers).map(([name, number]) => [number, name]),
);

/** Names of the bits set in a /proc/self/status capability mask (hex). */
export function decodeCapabilities(mask: string): string[] {
  const bits = BigInt(`0x${mask}`);
  const names: string[] = [];
  for (let bit = 0n; bits >> bit !== 0n; bit++) {
    if (((bits >> bit) & 1n) === 1n) names.push(capabilityNames.get(Number(bit)) ?? `${bit}`);
  }
  return names;
}

export function processPrivileges(): ProcessPrivileges {
  const status = processStatus();
  return {
    uid: process.getuid?.() ?? -1,
    effective: decodeCapabilities(status.get('CapEff') ?? '0'),
    bounding: decodeCapabilities(status.get('CapBnd') ?? '0'),
  };
}

/** A capability set in few words: "all", "none", "all but X,Y" or the list. */
function describeSet(names: readonly string[]): string {
  const missing = Object.keys(capabilityNumbers).filter((name) => !names.includes(name));
  if (missing.length === 0) return 'all';
  if (names.length === 0) return 'none';
  return missing.length < names.length ? `all but ${missing.join(',')}` : names.join(',');
}

function capabilitiesCheck(privileges: ProcessPrivileges): Check {
  const { uid, effective, bounding } = privileges;
  return ok(
    'capabilities',
    `uid ${uid}; effective: ${describeSet(effective)}; bounding set: ${describeSet(bounding)}`,
  );
}

/** The new mount API, called for real: fsopen("tmpfs") creates nothing until
 * fsconfig(CREATE), so it is harmless. EPERM means present but not permitted here; whether
 * it works here is what shared mode (and the host clones of namespaces mode) need. */
function mountApiProbe(privileges: ProcessPrivileges): { check: Check; canMountHere: boolean } {
  const title = 'new mount API (fsopen, fsmount, move_mount, open_tree)';
  try {
    fsopen('tmpfs').close();
    return { check: ok(title, 'fsopen("tmpfs") works'), canMountHere: true };
  } catch (error) {
    if (!isSystemError(error)) throw error;
    if (error.code === 'EPERM') {
      const why = privileges.effective.includes('SYS_ADMIN')
        ? 'CAP_SYS_ADMIN does not cover this mount namespace, or a seccomp profile refuses it'
        : 'needs CAP_SYS_ADMIN';
      return {
        check: ok(title, `present (fsopen refused with EPERM here: ${why})`),
        canMountHere: false,
      };
    }
    const check = unavailable(
      title,
      `fsopen("tmpfs") failed with ${error.code}`,
      error.code === 'ENOSYS'
        ? 'needs Linux ≥ 5.2 and a seccomp profile that allows fsopen, fsconfig, fsmount, move_mount and open_tree'
        : 'allow fsopen, fsconfig, fsmount, move_mount and open_tree in the seccomp profile or LSM policy',
    );
    return { check, canMountHere: false };
  }
}

function openat2Check(): Check {
  const title = 'openat2 (RESOLVE_BENEATH)';
  try {
    openat2(null, '/', {
      flags: constants.O_PATH | constants.O_DIRECTORY,
      resolve: constants.RESOLVE_NO_MAGICLINKS,
    }).close();
    return ok(title, 'works');
  } catch (error) {
    if (!isSystemError(error)) throw error;
    return unavailable(
      title,
      `openat2 failed with ${error.code}`,
      'needs Linux ≥ 5.6 and a seccomp profile that allows openat2',
    );
  }
}

/** mount_setattr with nothing to change: EPERM means present but not permitted here. */
function mountSetattrCheck(): Check {
  const title = 'mount_setattr';
  try {
    mountSetattr(null, '/', 0, {});
    return ok(title, 'works');
  } catch (error) {
    if (!isSystemError(error)) throw error;
    if (error.code === 'EPERM') return ok(title, 'present (refused with EPERM here)');
    return unavailable(
      title,
      `mount_setattr failed with ${error.code}`,
      'needs Linux ≥ 5.12 and a seccomp profile that allows mount_setattr',
    );
  }
}

function listmountCheck(): Check {
  const title = 'listmount/statmount';
  try {
    return ok(title, `works (${listmount().length} mounts)`);
  } catch (error) {
    if (!isSystemError(error)) throw error;
    // Optional: the mount table is read from /proc/self/mountinfo without them.
    return unavailable(
      title,
      `listmount failed with ${error.code}; /proc/self/mountinfo is used instead`,
      'optional; needs Linux ≥ 6.8',
    );
  }
}

/** Syscalls the addon has no wrapper for, called from a short-lived perl (in every Debian
 * image: perl-base is essential). Numbers ≥ 424 are the same on every architecture.
 * Arguments are chosen so that a present syscall does nothing: pidfd_open of perl itself,
 * clone3 with a NULL argument (EINVAL), close_range(3, 2) (EINVAL). */
const syscallProbes = [
  { key: 'pidfdOpen', title: 'pidfd_open', number: 434, args: '$$ + 0, 0', linux: '5.3' },
  { key: 'clone3', title: 'clone3', number: 435, args: '0, 0', linux: '5.3' },
  { key: 'closeRange', title: 'close_range', number: 436, args: '3, 2, 0', linux: '5.9' },
] as const;

type SyscallProbeKey = (typeof syscallProbes)[number]['key'];

function syscallChecks(): Record<SyscallProbeKey, Check> {
  const script = syscallProbes
    .map((probe) => `$!=0; print((syscall(${probe.number}, ${probe.args}) < 0 ? $!+0 : 0), "\\n");`)
    .join(' ');
  const result = spawnSync('perl', ['-e', script], { encoding: 'utf8' });
  const errnos = result.status === 0 ? result.stdout.trim().split('\n').map(Number) : [];
  const checks = {} as Record<SyscallProbeKey, Check>;
  syscallProbes.forEach((probe, index) => {
    const errno = errnos[index];
    if (errno === undefined) {
      checks[probe.key] = unknown(
        probe.title,
        'not probed: perl, which calls it, could not be run',
        `expected on Linux ≥ ${probe.linux}; a native wrapper in the addon would probe it directly`,
      );
    } else if (errno === 0 || errno === osConstants.errno.EINVAL) {
      checks[probe.key] = ok(probe.title, 'present');
    } else {
      checks[probe.key] = unavailable(
        probe.title,
        `refused with ${getSystemErrorName(-errno)}`,
        `needs Linux ≥ ${probe.linux} and a seccomp profile that allows ${probe.title}`,
      );
    }
  });
  return checks;
}

/** How a probe launched through the engine's own launcher (clone with
 * CLONE_VM|CLONE_VFORK|CLONE_PIDFD) ended. */
type LaunchOutcome =
  | { readonly ran: true }
  | {
      readonly ran: false;
      readonly syscall: string;
      readonly code: string;
      readonly step?: string;
    };

/** Clones a child with `cloneFlags` that runs `steps` and exits before exec (a plan without
 * an exec step ends with EINVAL past its last step): nothing is left behind, and the child
 * is reaped by the launcher. */
async function launchProbe(
  cloneFlags: number,
  steps: (plan: PlanBuilder) => void = () => {},
): Promise<LaunchOutcome> {
  const plan = new PlanBuilder();
  plan.cloneFlags = cloneFlags;
  steps(plan);
  try {
    // Only if the launcher ever accepts a plan without exec: reap what it started.
    const spawned = await spawn(plan.build());
    try {
      await watchExit(spawned.pidfd, spawned.pid, spawned.statusPipe);
    } finally {
      spawned.pidfd.close();
      spawned.statusPipe?.close();
    }
    return { ran: true };
  } catch (error) {
    if (!isSystemError(error)) throw error;
    if (isStepError(error)) {
      const step = plan.step(error.step);
      if (step === undefined) return { ran: true };
      return { ran: false, syscall: error.syscall, code: error.code, step: step.description };
    }
    return { ran: false, syscall: error.syscall, code: error.code };
  }
}

function probeStep(description: string): StepInfo {
  return { description, subject: 'runner' };
}

/** What namespaces mode does in its child, on a scratch tmpfs instead of an input root: new
 * namespaces, a copy of the runner's empty template mount namespace (setns, unshare), the
 * tree made a slave, a fresh procfs, and pivot_root (which Docker's and containerd's default
 * seccomp profiles refuse even with CAP_SYS_ADMIN). Everything is gone when the child exits
 * with its mount namespace. */
async function namespacesProbe(): Promise<LaunchOutcome> {
  const { MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MS_SLAVE } = constants;
  let template: Fd;
  try {
    template = mountNamespaceTemplate();
  } catch (error) {
    if (!isSystemError(error)) throw error;
    return {
      ran: false,
      syscall: error.syscall,
      code: error.code,
      step: 'create the empty mount namespace that actions copy',
    };
  }
  return launchProbe(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS, (plan) => {
    plan.setns(
      probeStep('enter the empty mount namespace'),
      plan.inherit(template.fd),
      CLONE_NEWNS,
    );
    plan.unshare(probeStep('create a mount namespace'), CLONE_NEWNS);
    plan.makeRootPrivate(probeStep('make the mount tree a slave'), MS_SLAVE);
    const flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    plan.newFilesystem(probeStep('create a procfs'), 'proc', {}, flags);
    const scratch = plan.newFilesystem(probeStep('create a tmpfs'), 'tmpfs', {}, 0);
    const attach = probeStep('attach the tmpfs');
    const mountpoint = plan.open(attach, cwd, 'root', {
      flags: constants.O_PATH | constants.O_DIRECTORY,
      resolve: beneathNoSymlinks,
    });
    plan.moveMount(attach, scratch, mountpoint);
    plan.pivotRoot(probeStep('pivot_root into the tmpfs'), scratch);
  });
}

function failure(outcome: LaunchOutcome): string {
  if (outcome.ran) return '';
  const where = outcome.step === undefined ? '' : ` (${outcome.step})`;
  return `${outcome.syscall} failed with ${outcome.code}${where}`;
}

function clonePidfdCheck(outcome: LaunchOutcome): Check {
  const title = 'clone with CLONE_PIDFD (the launcher)';
  if (outcome.ran) return ok(title, 'works');
  return unavailable(
    title,
    failure(outcome),
    'needs Linux ≥ 5.2 and a seccomp profile that allows clone with CLONE_PIDFD',
  );
}

function namespacesCheck(outcome: LaunchOutcome, privileges: ProcessPrivileges): Check {
  const title = 'mount, PID, IPC and UTS namespaces, pivot_root';
  if (outcome.ran) return ok(title, 'a child can create them, mount procfs and tmpfs, pivot_root');
  const privileged = privileges.effective.includes('SYS_ADMIN');
  return unavailable(
    title,
    failure(outcome),
    privileged
      ? `allow ${outcome.syscall} in the seccomp profile and LSM policy (Docker's and containerd's default seccomp profiles refuse pivot_root): seccompProfile Unconfined, or a Localhost profile that allows it`
      : 'run as root or with CAP_SYS_ADMIN',
  );
}

interface UserNamespaceSettings {
  readonly maxUserNamespaces: string | undefined;
  readonly unprivilegedClone: string | undefined;
  readonly apparmorRestrict: string | undefined;
}

function userNamespaceSettings(): UserNamespaceSettings {
  return {
    maxUserNamespaces: readSetting('/proc/sys/user/max_user_namespaces'),
    unprivilegedClone: readSetting('/proc/sys/kernel/unprivileged_userns_clone'),
    apparmorRestrict: readSetting('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
  };
}

function userNamespaceSysctlsCheck(settings: UserNamespaceSettings): Check {
  const title = 'user namespace sysctls';
  const { maxUserNamespaces, unprivilegedClone } = settings;
  if (maxUserNamespaces === undefined) {
    return unavailable(
      title,
      '/proc/sys/user/max_user_namespaces is missing: no user namespaces in this kernel',
      'needs a kernel built with CONFIG_USER_NS',
    );
  }
  if (maxUserNamespaces === '0') {
    return unavailable(
      title,
      'user.max_user_namespaces is 0',
      'sysctl -w user.max_user_namespaces=15000 (in the namespace that runs the runner)',
    );
  }
  if (unprivilegedClone === '0') {
    return unavailable(
      title,
      'kernel.unprivileged_userns_clone is 0',
      'sysctl -w kernel.unprivileged_userns_clone=1',
    );
  }
  const clone =
    unprivilegedClone === undefined
      ? ''
      : `, kernel.unprivileged_userns_clone ${unprivilegedClone}`;
  return ok(title, `user.max_user_namespaces ${maxUserNamespaces}${clone}`);
}

function apparmorCheck(settings: UserNamespaceSettings): Check {
  const title = "AppArmor's restriction of unprivileged user namespaces";
  if (settings.apparmorRestrict === undefined) return ok(title, 'not present in this kernel');
  if (settings.apparmorRestrict === '0') {
    return ok(title, 'kernel.apparmor_restrict_unprivileged_userns is 0');
  }
  return unavailable(
    title,
    'kernel.apparmor_restrict_unprivileged_userns is 1: unprivileged user namespaces get no capabilities',
    'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile with "userns," for node',
  );
}

function userNamespacesCheck(
  outcome: LaunchOutcome,
  settings: UserNamespaceSettings,
  seccompMode: string,
): Check {
  const title = 'user namespace creation';
  if (outcome.ran) return ok(title, 'clone(CLONE_NEWUSER) works');
  const detail = failure(outcome);
  if (outcome.code === 'ENOSPC' || outcome.code === 'EUSERS') {
    return unavailable(
      title,
      `${detail}: user.max_user_namespaces is ${settings.maxUserNamespaces} (limit reached)`,
      'raise user.max_user_namespaces (sysctl) in the namespace that runs the runner',
    );
  }
  if (outcome.code === 'EPERM' && settings.unprivilegedClone === '0') {
    return unavailable(
      title,
      `${detail}: kernel.unprivileged_userns_clone is 0`,
      'sysctl -w kernel.unprivileged_userns_clone=1',
    );
  }
  if (outcome.code === 'EPERM' && seccompMode === '2') {
    return unavailable(
      title,
      `${detail}: refused by the seccomp filter`,
      'use a seccomp profile that allows clone/unshare with CLONE_NEWUSER',
    );
  }
  return unavailable(title, detail, 'allow user namespaces for this user (sysctls, seccomp, LSM)');
}

/** Directories in procfs that are permanently empty: a mount on them does not hide anything,
 * so the kernel still counts the procfs as fully visible. */
const permanentlyEmptyProcDirectories = new Set(['sys/fs/binfmt_misc']);

/** A fresh procfs can be mounted in a user namespace only if a procfs mount in this mount
 * namespace shows everything (the kernel's mount_too_revealing): no mounts over its entries,
 * as container runtimes make to mask /proc/kcore, /proc/sys and others. */
function procVisibleCheck(): Check {
  const title = 'fully visible /proc';
  const mounts = readMountinfo();
  const procMounts = mounts.filter((mount) => mount.fstype === 'proc');
  if (procMounts.length === 0) {
    return unavailable(title, 'no procfs is mounted', 'mount a procfs at /proc');
  }
  let masked: string[] = [];
  for (const proc of procMounts) {
    const prefix = proc.mountPoint === '/' ? '/' : `${proc.mountPoint}/`;
    const covering = mounts
      .filter((mount) => mount.parentId === proc.id && mount.id !== proc.id)
      .map((mount) => mount.mountPoint)
      .filter((point) => !permanentlyEmptyProcDirectories.has(point.slice(prefix.length)));
    if (proc.root === '/' && covering.length === 0) {
      return ok(title, `nothing is mounted over ${proc.mountPoint}`);
    }
    if (masked.length === 0) masked = covering;
  }
  const list = masked.length > 4 ? `${masked.slice(0, 4).join(', ')}, …` : masked.join(', ');
  return unavailable(
    title,
    `entries are masked by mounts over them (${list})`,
    'run the runner with an unmasked /proc (Kubernetes securityContext.procMount: Unmasked, docker --security-opt systempaths=unconfined)',
  );
}

function procInUserNamespaceCheck(outcome: LaunchOutcome): Check {
  const title = 'fresh procfs in a user namespace';
  if (outcome.ran) return ok(title, 'mounted in new user, mount and PID namespaces');
  return unavailable(
    title,
    failure(outcome),
    outcome.syscall === 'clone'
      ? 'user namespaces must be allowed first (see above)'
      : 'needs a fully visible /proc and capabilities in user namespaces (AppArmor, see above)',
  );
}

/** `refused`: syscalls the probes saw fail with EPERM where neither missing privileges nor a
 * sysctl explain it. */
function seccompCheck(
  mode: string,
  filters: string | undefined,
  refused: readonly string[],
): Check {
  const title = 'seccomp';
  if (mode === '0') return ok(title, 'no filter');
  if (mode === '1')
    return unavailable(title, 'strict mode', 'run the runner without strict seccomp');
  const count = filters === undefined ? '' : ` (${filters} filter${filters === '1' ? '' : 's'})`;
  if (refused.length > 0) {
    return unavailable(
      title,
      `filter mode${count}; ${refused.join(', ')} refused with EPERM`,
      `use a seccomp profile that allows ${refused.join(', ')} (e.g. seccompProfile: Unconfined)`,
    );
  }
  return ok(title, `filter mode${count}; nothing the probes need was refused`);
}

/** Whether actions can get a cgroup of their own: a cgroup the runner may make
 * sub-cgroups in, on v2 with the memory and pids controllers, or on the v1 hierarchies. */
function cgroupCheck(): Check {
  const title = 'cgroup';
  const lost =
    'actions run without a cgroup of their own: no per-action memory or process limits, accounting or OOM reporting';
  const fix =
    'delegate a cgroup to the runner (a container with its own cgroup namespace, or a systemd unit with Delegate=yes; docs/deployment.md)';
  let layout: CgroupLayout;
  let version: 1 | 2;
  try {
    layout = cgroupLayout();
    version = chooseVersion(layout, 'auto');
  } catch (error) {
    return unavailable(title, `${(error as Error).message}: ${lost}`, fix);
  }
  const directories =
    version === 2 && layout.unified !== null
      ? [layout.unified.directory]
      : [...new Set(layout.v1.values())];
  const closed = directories.filter((directory) => {
    try {
      accessSync(directory, fsConstants.W_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (closed.length > 0) {
    return unavailable(title, `v${version}, but ${closed.join(', ')} not writable: ${lost}`, fix);
  }
  return ok(title, `v${version}: a cgroup per action beneath ${directories.join(', ')}`);
}

/** The mount holding an absolute path: the longest mount point that contains it. */
function mountHolding(path: string): MountInfo | undefined {
  let holding: MountInfo | undefined;
  for (const mount of readMountinfo()) {
    const prefix = mount.mountPoint === '/' ? '/' : `${mount.mountPoint}/`;
    const contains = path === mount.mountPoint || path.startsWith(prefix);
    // Later entries are mounted on top of earlier ones at the same point.
    if (
      contains &&
      (holding === undefined || mount.mountPoint.length >= holding.mountPoint.length)
    ) {
      holding = mount;
    }
  }
  return holding;
}

/** Whether the build directory is on FUSE (as bb_worker's virtual build directory is), and
 * whether this user can reach it. */
export function buildDirectoryCheck(path: string): Check {
  const title = `build directory ${path}`;
  let canonical = resolve(path);
  let fuseType = false;
  let unreachable: string | undefined;
  try {
    canonical = realpathSync.native(canonical);
    fuseType = statfsSync(canonical).type === FUSE_SUPER_MAGIC;
  } catch (error) {
    unreachable = isSystemError(error) ? error.code : String(error);
  }
  const mount = mountHolding(canonical);
  const on = `on ${mount?.fstype ?? 'an unknown file system'} mounted at ${mount?.mountPoint ?? '?'}`;
  const fuse = fuseType || (mount?.fstype.startsWith('fuse') ?? false);
  const options = mount?.superOptions ?? [];
  const owner = options.find((option) => option.startsWith('user_id='))?.slice('user_id='.length);
  const uid = process.getuid?.() ?? -1;
  if (fuse && !options.includes('allow_other') && owner !== undefined && Number(owner) !== uid) {
    return unavailable(
      title,
      `${on}: FUSE mounted by uid ${owner} without allow_other, so uid ${uid} cannot enter it`,
      'mount the FUSE file system with -o allow_other (bb_worker: allowOther: true)',
    );
  }
  if (unreachable !== undefined) {
    return unavailable(
      title,
      `cannot be reached (${unreachable})`,
      'create it, or fix its permissions',
    );
  }
  const propagation = mount === undefined ? '' : `; ${describePropagation(mount)}`;
  return ok(title, `${on}${fuse ? ' (FUSE)' : ''}${propagation}`);
}

/** What the mount's propagation means for a runner beside bb_worker. */
function describePropagation(mount: MountInfo): string {
  const { shared, master } = mount.propagation;
  if (master !== undefined) {
    return "propagation: slave (receives the worker's mounts; sends nothing back)";
  }
  if (shared !== undefined) {
    return 'propagation: shared (shared-mode mounts would reach the worker; HostToContainer/rslave avoids it)';
  }
  return 'propagation: private (mounts the worker makes later, such as its FUSE file system after a restart, will not appear here; use HostToContainer/rslave)';
}

/** Runs every check. The launch probes clone a few short-lived children (about a
 * millisecond each); the syscall probes start one perl. */
export async function detectFeatures(options: { buildDirectory?: string } = {}): Promise<Features> {
  const kernel = kernelVersion();
  const privileges = processPrivileges();
  const settings = userNamespaceSettings();
  const status = processStatus();
  const seccompMode = status.get('Seccomp') ?? '0';
  const mountApi = mountApiProbe(privileges);

  const launcher = await launchProbe(0);
  const namespaces = await namespacesProbe();
  const userNamespaces = await launchProbe(CLONE_NEWUSER);
  const procInUserNamespace = await launchProbe(CLONE_NEWUSER | CLONE_NEWPID, (plan) => {
    plan.unshare(probeStep('create a mount namespace'), CLONE_NEWNS);
    const { MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC } = constants;
    const flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    plan.newFilesystem(probeStep('create a procfs'), 'proc', {}, flags);
  });
  // EPERM where neither missing privileges nor a sysctl explain it.
  const refused: string[] = [];
  if (
    !namespaces.ran &&
    namespaces.code === 'EPERM' &&
    privileges.effective.includes('SYS_ADMIN')
  ) {
    refused.push(namespaces.syscall);
  }
  if (
    !userNamespaces.ran &&
    userNamespaces.code === 'EPERM' &&
    settings.unprivilegedClone !== '0'
  ) {
    refused.push(`${userNamespaces.syscall} with CLONE_NEWUSER`);
  }
  const kernelCheck =
    kernel.major > 5 || (kernel.major === 5 && kernel.minor >= 12)
      ? ok('kernel', `Linux ${kernel.release}`)
      : unavailable(
          'kernel',
          `Linux ${kernel.release}: older than 5.12 (mount_setattr)`,
          'upgrade the kernel to Linux ≥ 5.12',
        );
  const checks: Features['checks'] = {
    kernel: kernelCheck,
    capabilities: capabilitiesCheck(privileges),
    mountApi: mountApi.check,
    openat2: openat2Check(),
    mountSetattr: mountSetattrCheck(),
    listmount: listmountCheck(),
    clonePidfd: clonePidfdCheck(launcher),
    ...syscallChecks(),
    namespaces: namespacesCheck(namespaces, privileges),
    userNamespaceSysctls: userNamespaceSysctlsCheck(settings),
    apparmorUserNamespaces: apparmorCheck(settings),
    userNamespaces: userNamespacesCheck(userNamespaces, settings, seccompMode),
    procVisible: procVisibleCheck(),
    procInUserNamespace: procInUserNamespaceCheck(procInUserNamespace),
    seccomp: seccompCheck(seccompMode, status.get('Seccomp_filters'), refused),
    cgroup: cgroupCheck(),
    ...(options.buildDirectory === undefined
      ? {}
      : { buildDirectory: buildDirectoryCheck(options.buildDirectory) }),
  };
  return { kernel, privileges, canMountHere: mountApi.canMountHere, checks };
}

export interface ModeSupport {
  readonly mode: IsolationMode;
  /** The kernel, runtime and privileges allow it. */
  readonly supported: boolean;
  /** Supported here, and not refuted by a probe action (doctor --probe). */
  readonly available: boolean;
  /** Why not, one line (empty when available). */
  readonly reason: string;
  readonly fix: string;
}

interface Requirement {
  readonly met: boolean;
  readonly reason: string;
  readonly fix: string;
}

function needCheck(check: Check): Requirement {
  return {
    met: check.status !== 'unavailable',
    reason: `${check.title}: ${check.detail}`,
    fix: check.fix ?? '',
  };
}

function needCapability(privileges: ProcessPrivileges, name: string, why: string): Requirement {
  const { uid } = privileges;
  return {
    met: privileges.effective.includes(name),
    reason: `needs root or CAP_${name} (${why}); running as uid ${uid} without it`,
    fix: `run the runner as root, or grant CAP_${name} (securityContext.capabilities.add: [${name}])`,
  };
}

function support(mode: IsolationMode, requirements: readonly Requirement[]): ModeSupport {
  const missing = requirements.find((requirement) => !requirement.met);
  if (missing !== undefined) {
    return { mode, supported: false, available: false, reason: missing.reason, fix: missing.fix };
  }
  return { mode, supported: true, available: true, reason: '', fix: '' };
}

/** Which isolation modes work here, and for each that does not, why and the fix. */
export function isolationModeSupport(features: Features): ModeSupport[] {
  const { checks, privileges } = features;
  // Every mode resolves requests beneath the build directory and launches through clone.
  const launcher = [checks.buildDirectory, checks.openat2, checks.clonePidfd]
    .filter((check) => check !== undefined)
    .map(needCheck);
  // Every mode drops capabilities from the bounding set before exec.
  const setpcap = needCapability(
    privileges,
    'SETPCAP',
    'to drop capabilities from the bounding set',
  );
  const mounting = [checks.mountApi, checks.mountSetattr].map(needCheck);
  const sysAdmin = needCapability(privileges, 'SYS_ADMIN', 'to mount and create namespaces');
  const mountHere: Requirement = {
    met: features.canMountHere,
    reason:
      "cannot mount in the runner's own mount namespace (fsopen: EPERM): CAP_SYS_ADMIN is needed in the user namespace that owns it, not only in a nested one",
    fix: 'run the runner as root in the host or container user namespace (not inside unshare -U)',
  };
  return [
    support('namespaces', [
      sysAdmin,
      mountHere,
      ...mounting,
      ...launcher,
      needCheck(checks.namespaces),
      setpcap,
    ]),
    support('shared', [
      sysAdmin,
      mountHere,
      needCapability(privileges, 'SYS_CHROOT', 'to chroot'),
      ...mounting,
      ...launcher,
      setpcap,
    ]),
    support('none', [needCapability(privileges, 'SYS_CHROOT', 'to chroot'), ...launcher, setpcap]),
    // No capability of the runner's: the action's user namespace grants what setup needs.
    support('rootless', [
      needCheck(checks.userNamespaceSysctls),
      needCheck(checks.apparmorUserNamespaces),
      needCheck(checks.userNamespaces),
      needCheck(checks.procVisible),
      needCheck(checks.procInUserNamespace),
      ...mounting,
      ...launcher,
    ]),
  ];
}
