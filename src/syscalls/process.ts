// The typed façade over native/spawn.c and native/exit-watch.c: the plan's binary format,
// launching a plan with a vfork-style clone, watching an exit through a pidfd, and
// signalling through it.
import { getSystemErrorName } from 'node:util';
import { Fd } from './index.js';
import { native } from './native.js';

/** The operations a plan's steps name (native/plan-format.h numbers them). */
const planOperations = [
  'open',
  'openTree',
  'moveMount',
  'fsopen',
  'fsconfig',
  'fsmount',
  'mountSetattr',
  'mkdirat',
  'createFile',
  'symlinkat',
  'fchdir',
  'unshare',
  'setRootPropagation',
  'pivotRoot',
  'coverRoot',
  'chroot',
  'chdir',
  'dup2',
  'setCredentials',
  'dropBoundingCaps',
  'noNewPrivs',
  'pdeathsig',
  'loopbackUp',
  'cloexecFrom',
  'exec',
  'writeFile',
  'sameInode',
  'mknodat',
  'setns',
  'setsid',
  'joinSessionKeyring',
  'seccomp',
  'awaitIdMaps',
  'becomeNamespaceOwner',
  'exit',
] as const;

/** The records the init writes to its status pipe, each a kind and one value. */
const initRecords = ['execFailed', 'exited', 'signaled', 'initFailed', 'cancelled'] as const;

/** The init's getrusage(RUSAGE_CHILDREN) fields, one record each. */
const initUsageRecords = [
  'utimeSeconds',
  'utimeMicroseconds',
  'stimeSeconds',
  'stimeMicroseconds',
  'maxrss',
  'minflt',
  'majflt',
  'nswap',
  'inblock',
  'oublock',
  'msgsnd',
  'msgrcv',
  'nsignals',
  'nvcsw',
  'nivcsw',
] as const;

export type PlanOperation = (typeof planOperations)[number];
export type InitRecord = (typeof initRecords)[number];
export type InitUsageRecord = (typeof initUsageRecords)[number];

export interface PlanFormat {
  /** int32s per step: the operation, five arguments, two indices into the strings. */
  readonly stepWidth: number;
  readonly operations: Readonly<Record<PlanOperation, number>>;
  /** Option bits of the open and openTree operations. */
  readonly openOptions: Readonly<Record<'mkdir' | 'optional', number>>;
  readonly records: Readonly<Record<InitRecord, number>>;
  readonly usageRecords: Readonly<Record<InitUsageRecord, number>>;
}

/** A table of the addon's, checked to name exactly what this side uses. */
function table<Name extends string>(
  what: string,
  exported: Record<string, number>,
  names: readonly Name[],
): Record<Name, number> {
  const actual = Object.keys(exported).sort().join(',');
  const expected = [...names].sort().join(',');
  if (actual !== expected) {
    throw new Error(`the addon's ${what} are [${actual}], this code expects [${expected}]`);
  }
  return exported as Record<Name, number>;
}

/** The plan's format as the addon defines it (native/plan-format.h), checked at load. */
export const planFormat: PlanFormat = (() => {
  const exported = native.planFormat;
  return {
    stepWidth: exported.stepWidth,
    operations: table('plan operations', exported.operations, planOperations),
    openOptions: table('open options', exported.openOptions, ['mkdir', 'optional'] as const),
    records: table('init records', exported.records, initRecords),
    usageRecords: table('init usage records', exported.usageRecords, initUsageRecords),
  };
})();

/** A setup program for the child, as native/spawn.c reads it (src/sandbox/plan.ts builds
 * it): fixed-width steps over a table of fd slots. Typed arrays and one string buffer, so
 * that handing it to the addon is a few copies rather than a thousand property reads. */
export interface SpawnPlan {
  /** planFormat.stepWidth int32 per step: operation, five arguments, two indices into
   * `strings` (-1: none). */
  readonly steps: Int32Array;
  /** Every string of the plan, each NUL-terminated: the steps', then argv, then envp. */
  readonly strings: Buffer;
  /** The fd in each slot at the start (-1 for slots the steps fill). */
  readonly slots: Int32Array;
  /** argv and environment ("K=V") of the program OP_EXEC executes, as ranges of `strings`. */
  readonly argvStart: number;
  readonly argvCount: number;
  readonly envpStart: number;
  readonly envpCount: number;
  /** Supplementary groups of the OP_SET_CREDENTIALS steps, each step a slice. */
  readonly groups: Int32Array;
  /** The host uid and gid the clone is made as, -1 for the runner's own: the owner of the
   * user namespace a CLONE_NEWUSER clone creates. */
  readonly cloneOwnerUid: number;
  readonly cloneOwnerGid: number;
  /** CLONE_NEW* flags (and CLONE_FILES for runInRunnerFdTable) added to
   * CLONE_VM|CLONE_VFORK|CLONE_PIDFD|SIGCHLD. */
  readonly cloneFlags: number;
  /** A cgroup v2 directory fd the child is cloned into (clone3's CLONE_INTO_CGROUP), so that
   * it never runs outside it; -1 for the runner's cgroup. Only where cloneIntoCgroup says
   * the runner can. */
  readonly cgroupFd: number;
  /** The slot that receives the write end of a new status pipe, or -1 for none. */
  readonly statusSlot: number;
  /** The BPF program OP_SECCOMP loads (struct sock_filter[]), empty for none. */
  readonly seccompProgram: Buffer;
}

/** Whether a plan may carry a cgroupFd, probed once: clone3 with CLONE_INTO_CGROUP, and an
 * entry stub for this architecture (native/clone3-*.S). */
export interface CloneIntoCgroupSupport {
  readonly available: boolean;
  /** What was found, for doctor and logs. */
  readonly detail: string;
}

let cloneIntoCgroupSupport: CloneIntoCgroupSupport | undefined;

function probeCloneIntoCgroup(): CloneIntoCgroupSupport {
  const errno = native.cloneIntoCgroupErrno() as number;
  const name = errno === 0 ? '' : getSystemErrorName(-errno);
  switch (name) {
    case '':
      return { available: true, detail: 'clone3 with CLONE_INTO_CGROUP' };
    case 'ENOEXEC':
      return { available: false, detail: `no clone3 entry stub for ${process.arch}` };
    case 'ENOSYS':
      return {
        available: false,
        detail: 'clone3 refused with ENOSYS (Linux < 5.3, or a seccomp profile that refuses it)',
      };
    case 'EINVAL':
    case 'E2BIG':
      return {
        available: false,
        detail: `clone3 without CLONE_INTO_CGROUP (${name}: Linux < 5.7)`,
      };
    default:
      return { available: false, detail: `clone3 with CLONE_INTO_CGROUP refused with ${name}` };
  }
}

/** Whether the runner can clone a child straight into a cgroup v2 (SpawnPlan.cgroupFd). */
export function cloneIntoCgroup(): CloneIntoCgroupSupport {
  cloneIntoCgroupSupport ??= probeCloneIntoCgroup();
  return cloneIntoCgroupSupport;
}

/** A seccomp program as native/seccomp.c compiles it, and the policy's syscalls that the
 * installed libseccomp could not name. */
export interface CompiledFilter {
  readonly program: Buffer;
  readonly unknown: readonly string[];
  /** Whether each architecture's syscall numbers are a binary tree (libseccomp 2.5+), not a
   * list: the kernel runs the program for every syscall number at each load. */
  readonly tree: boolean;
}

export interface SeccompRule {
  readonly syscall: string;
  /** The native number when libseccomp does not know the name; -1 for none. */
  readonly number: number;
  readonly errno: number;
  /** [argument, libseccomp operator, datum a, datum b], all to hold. */
  readonly conditions: readonly (readonly [number, number, bigint, bigint])[];
}

/** The library native/seccomp.c loads, and how to install it when it is missing. */
export const seccompLibrary = {
  name: 'libseccomp.so.2',
  fix: 'apt-get install libseccomp2',
} as const;

/** Compiles a filter that allows everything but `rules` (each failing with its errno), for
 * the native architecture and `architectures` (libseccomp's names); a call of any other
 * architecture fails with `otherArchitectureErrno`. Throws ELIBACC when libseccomp.so.2
 * cannot be loaded. */
export function compileSeccompFilter(policy: {
  readonly architectures: readonly string[];
  readonly rules: readonly SeccompRule[];
  readonly otherArchitectureErrno: number;
}): CompiledFilter {
  return native.compileSeccompFilter(policy) as CompiledFilter;
}

let x32Support: boolean | undefined;

/** Whether this kernel runs x32 system calls (x86_64 only; asked once, in a child). */
export function x32SystemCalls(): boolean {
  x32Support ??= native.x32SystemCalls() as boolean;
  return x32Support;
}

export interface SpawnedProcess {
  readonly pid: number;
  readonly pidfd: Fd;
  /** The read end of the status pipe (non-blocking), when the plan asked for one. */
  readonly statusPipe: Fd | undefined;
}

/** A failure of a step of the plan in the child, before exec. */
export interface StepError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  /** The index of the failed step. */
  step: number;
}

export function isStepError(error: unknown): error is StepError {
  return error instanceof Error && typeof (error as StepError).step === 'number';
}

/** The length of the Int32Array that the addon writes what a spawn or an exit reports into
 * (native/errors.h). */
const reportWords = native.reportWords as number;

/** Hands the plan to the addon, its fields by position: the addon reading each by name would
 * cost a string table lookup (native/spawn.c). */
function nativeSpawn(plan: SpawnPlan, report: Int32Array): Promise<unknown> {
  return native.spawn(
    plan.steps,
    plan.strings,
    plan.slots,
    plan.groups,
    plan.seccompProgram,
    plan.argvStart,
    plan.argvCount,
    plan.envpStart,
    plan.envpCount,
    plan.cloneFlags,
    plan.cloneOwnerUid,
    plan.cloneOwnerGid,
    plan.cgroupFd,
    plan.statusSlot,
    report,
  );
}

/** Runs the plan in a new child and resolves once it has exec'd; rejects with a StepError
 * (the child has then been reaped) or a clone error (syscall 'clone', or 'clone3' for a plan
 * with a cgroupFd). */
export async function spawn(plan: SpawnPlan): Promise<SpawnedProcess> {
  const report = new Int32Array(reportWords);
  await nativeSpawn(plan, report);
  const statusFd = report[2] ?? -1;
  return {
    pid: report[0] ?? -1,
    pidfd: new Fd(report[1] ?? -1),
    statusPipe: statusFd >= 0 ? new Fd(statusFd) : undefined,
  };
}

/** Runs a plan that shares the runner's fd table (CLONE_FILES) and ends with the exit step,
 * for what it leaves there; resolves with its slots once the child has exited (it has been
 * reaped). The caller owns every fd the steps opened. On a StepError those were closed. */
export async function runInRunnerFdTable(plan: SpawnPlan): Promise<Int32Array> {
  const slots = await nativeSpawn(plan, new Int32Array(reportWords));
  if (!(slots instanceof Int32Array))
    throw new TypeError('a plan run for its fds must end with exit');
  return slots;
}

export interface ProcessExit {
  readonly exitCode: number | null;
  readonly signal: number | null;
  /** The int32 words the process wrote to the status pipe before exiting. */
  readonly records: ArrayLike<number>;
}

/** Resolves when the process exits (its pidfd in the addon's epoll instance, polled by the
 * event loop: no thread, no blocking), after reaping it. Neither fd may be closed before the
 * promise settles. */
export async function watchExit(
  pidfd: Fd,
  pid: number,
  statusPipe: Fd | undefined,
): Promise<ProcessExit> {
  const report = new Int32Array(reportWords);
  await native.watchExit(pidfd.fd, pid, statusPipe?.fd ?? -1, report);
  // Whether it exited, its exit code or signal, the status words' count, then the words.
  const exited = report[0] === 1;
  const value = report[1] ?? 0;
  return {
    exitCode: exited ? value : null,
    signal: exited ? null : value,
    records: report.subarray(3, 3 + (report[2] ?? 0)),
  };
}

/** pidfd_send_signal(2); false when the process has already exited. */
export function pidfdSendSignal(pidfd: Fd, signal: number): boolean {
  return native.pidfdSendSignal(pidfd.fd, signal);
}

/** pidfd_open(2) of a process the runner did not spawn (one left in an action's cgroup, or
 * the runner itself). */
export function pidfdOpen(pid: number): Fd {
  return new Fd(native.pidfdOpen(pid) as number);
}

/** Resolves once the fd polls readable (a pidfd: its process has exited), blocking no
 * thread. The fd may not be closed before the promise settles. */
export function waitReadable(fd: Fd): Promise<void> {
  return native.waitReadable(fd.fd);
}

/** How the thread that makes and checks network namespaces runs a job: 'idle' is
 * SCHED_IDLE (it runs only on a core that nothing else wants), where the kernel allows it. */
export type NetworkNamespacePriority = 'normal' | 'idle';

/** What files of a network namespace's /proc/net held, in the order asked; null for one
 * that could not be read (absent: snmp6 without IPv6). */
export type NetworkNamespaceFiles = readonly (string | null)[];

/** What a check found in each file of a namespace, in the order made: true where it reads
 * as it did when the namespace was made, else what it holds now (null: unreadable). */
export type NetworkNamespaceReading = readonly (string | null | true)[];

/** A network namespace made by a NetworkNamespaceWorker, with the files of its /proc/net
 * that it opened there (close-on-exec) and keeps open for the namespace's checks, and the
 * sysfs of it that the worker was asked to hold. */
export class MadeNetworkNamespace implements Disposable {
  /** Entering it (setns) puts a process in it. */
  readonly namespace: Fd;
  /** A detached read-only mount of a sysfs of it, held while the namespace is (absent where
   * not asked for, or refused by the kernel). */
  readonly sysfs: Fd | undefined;
  /** What the files held once it was made. */
  readonly files: NetworkNamespaceFiles;
  /** The files kept open, in the order asked (undefined where absent). */
  readonly #kept: readonly (Fd | undefined)[];
  /** Their numbers (-1 where absent) and what the worker compares them with. */
  readonly #keptFds: readonly number[];
  readonly #made: unknown;

  constructor(made: {
    fd: number;
    /** -1: none. */
    sysfs: number;
    fileFds: number[];
    files: NetworkNamespaceFiles;
    made: unknown;
  }) {
    this.namespace = new Fd(made.fd);
    this.sysfs = made.sysfs < 0 ? undefined : new Fd(made.sysfs);
    this.files = made.files;
    this.#kept = made.fileFds.map((fd) => (fd < 0 ? undefined : new Fd(fd)));
    this.#keptFds = made.fileFds;
    this.#made = made.made;
  }

  /** The namespace's descriptor number (what a plan's child inherits and enters). */
  get fd(): number {
    return this.namespace.fd;
  }

  /** For NetworkNamespaceWorker.check. */
  get kept(): { readonly fds: readonly number[]; readonly made: unknown } {
    if (this.namespace.closed) throw new Error('network namespace used after close()');
    return { fds: this.#keptFds, made: this.#made };
  }

  close(): void {
    this.namespace.close();
    this.sysfs?.close();
    for (const file of this.#kept) file?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A thread that makes network namespaces and checks them, one job at a time in the order
 * asked. It never keeps the event loop alive while idle; close ends it. */
export class NetworkNamespaceWorker {
  readonly #worker: unknown = native.openNetworkNamespaceWorker();
  readonly #sysfs: boolean;

  /** sysfs: whether each namespace made holds a sysfs of its own (MadeNetworkNamespace). */
  constructor({ sysfs = false }: { sysfs?: boolean } = {}) {
    this.#sysfs = sysfs;
  }

  /** A new network namespace with its loopback interface up, owned by the runner's user
   * namespace (needs CAP_SYS_ADMIN there), with the named files of its /proc/net opened and
   * read. */
  async create(
    priority: NetworkNamespacePriority,
    files: readonly string[],
  ): Promise<MadeNetworkNamespace> {
    return new MadeNetworkNamespace(
      await native.createNetworkNamespace(this.#worker, priority === 'idle', files, this.#sysfs),
    );
  }

  /** What the files of a namespace it made hold now, read through the files it kept open
   * (a file absent when made is looked up again in the namespace: setns, which needs
   * CAP_SYS_ADMIN over its owner). The namespace must stay open until the promise settles. */
  check(
    made: MadeNetworkNamespace,
    priority: NetworkNamespacePriority,
  ): Promise<NetworkNamespaceReading> {
    const { fds, made: files } = made.kept;
    return native.checkNetworkNamespace(
      this.#worker,
      made.namespace.fd,
      fds,
      files,
      priority === 'idle',
    );
  }

  /** Ends the thread, after the job under way: call it once no promise is pending. */
  close(): void {
    native.closeNetworkNamespaceWorker(this.#worker);
  }
}
