// The typed façade over native/spawn.c: launching a setup plan with a vfork-style clone,
// watching an exit through a pidfd, and signalling through it; and the empty mount namespace
// that actions' namespaces are copied from.
import { Fd } from './index.js';
import { native } from './native.js';

/** A setup program for the child, as native/spawn.c reads it (src/sandbox/plan.ts builds
 * it): fixed-width steps over a table of fd slots. Typed arrays and one string buffer, so
 * that handing it to the addon is a few copies rather than a thousand property reads. */
export interface SpawnPlan {
  /** 8 int32 per step: operation, five arguments, two indices into `strings` (-1: none). */
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
  /** Supplementary groups of OP_SET_CREDENTIALS. */
  readonly groups: Int32Array;
  /** CLONE_NEW* flags added to CLONE_VM|CLONE_VFORK|CLONE_PIDFD|SIGCHLD. */
  readonly cloneFlags: number;
  /** The slot that receives the write end of a new status pipe, or -1 for none. */
  readonly statusSlot: number;
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

/** A new mount namespace whose only mount is an empty read-only tmpfs holding an empty
 * directory `root` (its root). Entering it (setns) and unsharing it makes a namespace of one
 * mount, whatever the number of mounts of the runner's. Needs CAP_SYS_ADMIN. */
export function mountNamespaceTemplate(): Fd {
  return new Fd(native.mountNamespaceTemplate() as number);
}

/** Runs the plan in a new child and resolves once it has exec'd; rejects with a StepError
 * (the child has then been reaped) or a clone error. */
export async function spawn(plan: SpawnPlan): Promise<SpawnedProcess> {
  const { pid, pidfd, statusFd } = (await native.spawn(plan)) as {
    pid: number;
    pidfd: number;
    statusFd: number;
  };
  return { pid, pidfd: new Fd(pidfd), statusPipe: statusFd >= 0 ? new Fd(statusFd) : undefined };
}

export interface ProcessExit {
  readonly exitCode: number | null;
  readonly signal: number | null;
  /** The int32 words the process wrote to the status pipe before exiting. */
  readonly records: readonly number[];
}

/** Resolves when the process exits (uv_poll on its pidfd: no thread, no blocking), after
 * reaping it. Neither fd may be closed before the promise settles. */
export function watchExit(
  pidfd: Fd,
  pid: number,
  statusPipe: Fd | undefined,
): Promise<ProcessExit> {
  return native.watchExit(pidfd.fd, pid, statusPipe?.fd ?? -1);
}

/** pidfd_send_signal(2); false when the process has already exited. */
export function pidfdSendSignal(pidfd: Fd, signal: number): boolean {
  return native.pidfdSendSignal(pidfd.fd, signal);
}

/** pidfd_open(2) of a process the runner did not spawn (one left in an action's cgroup). */
export function pidfdOpen(pid: number): Fd {
  return new Fd(native.pidfdOpen(pid) as number);
}

/** Resolves once the fd polls readable (a pidfd: its process has exited), blocking no
 * thread. The fd may not be closed before the promise settles. */
export function waitReadable(fd: Fd): Promise<void> {
  return native.waitReadable(fd.fd);
}
