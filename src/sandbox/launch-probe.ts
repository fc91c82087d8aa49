// A probe clone through the engine's own launcher: a child that runs a plan and exits before
// exec, to ask the kernel whether it allows what actions will need (doctor's checks, and the
// engine's check at open of the action's user namespace).

import { isSystemError } from '../syscalls/index.js';
import { isStepError, spawn, watchExit } from '../syscalls/process.js';
import type { PlanBuilder } from './plan.js';

/** How a probe launched through the engine's own launcher (clone with
 * CLONE_VM|CLONE_VFORK|CLONE_PIDFD) ended. */
export type LaunchOutcome =
  | { readonly ran: true }
  | {
      readonly ran: false;
      readonly syscall: string;
      readonly code: string;
      readonly step?: string;
    };

/** "syscall failed with CODE (step)". */
export function failure(outcome: LaunchOutcome): string {
  if (outcome.ran) return '';
  const where = outcome.step === undefined ? '' : ` (${outcome.step})`;
  return `${outcome.syscall} failed with ${outcome.code}${where}`;
}

/** Clones a child that runs `plan` and exits before exec (a plan without an exec step ends
 * with EINVAL past its last step): nothing is left behind, and the child is reaped by the
 * launcher. */
export async function launchProbe(plan: PlanBuilder): Promise<LaunchOutcome> {
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
