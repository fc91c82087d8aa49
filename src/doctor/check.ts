// The interface of a doctor check, and what checks share: each check is one file of checks/
// and one line of registry.ts; what several checks need (a probe clone, the process's
// privileges) is made once per run by the DoctorContext.
import { readFileSync } from 'node:fs';
import type { CheckResult } from '../sandbox/modes/requirements.js';
import { isSystemError } from '../syscalls/index.js';
import type { DoctorContext } from './context.js';

export type { CheckResult, CheckStatus } from '../sandbox/modes/requirements.js';

export interface DoctorCheck {
  /** The key of its result in the report, and what the modes' requirements name. */
  readonly id: string;
  readonly title: string;
  /** Tries the real thing (a syscall, a clone through the engine's launcher) or reads what
   * the kernel reports; undefined when it does not apply to this run. */
  run(context: DoctorContext): Observation | undefined | Promise<Observation | undefined>;
  /** How to make the subject available when the observation names no fix of its own. */
  readonly fix?: string;
}

/** What a check saw: the result, titled as the check unless it says otherwise. */
export type Observation = Omit<CheckResult, 'title'> & { readonly title?: string };

export function ok(detail: string): Observation {
  return { status: 'ok', detail };
}

export function unavailable(detail: string, fix: string): Observation {
  return { status: 'unavailable', detail, fix };
}

export function unknown(detail: string, fix: string): Observation {
  return { status: 'unknown', detail, fix };
}

/** A file of /proc or /sys, trimmed; undefined when it does not exist on this kernel. */
export function readSetting(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    if (isSystemError(error, 'ENOENT')) return undefined;
    throw error;
  }
}
