// What this kernel, container runtime and process allow, detected rather than assumed: each
// check (registry.ts) tries the real thing or reads what the kernel reports, and says in one
// line what it saw and, when negative, the fix; each isolation mode says what it requires of
// them (src/sandbox/modes/). `chroot-runner doctor` prints both.
import type { IsolationMode } from '../sandbox/modes/registry.js';
import { isolationModes, isolationStrategy } from '../sandbox/modes/registry.js';
import type { HostFindings, Requirement } from '../sandbox/modes/requirements.js';
import type { CheckResult } from './check.js';
import { DoctorContext, type ProcessPrivileges } from './context.js';
import { doctorChecks } from './registry.js';

export type { CheckResult, CheckStatus } from './check.js';
export { decodeCapabilities, type ProcessPrivileges } from './context.js';

export interface Features {
  readonly privileges: ProcessPrivileges;
  /** fsopen works in the runner's own mount namespace: CAP_SYS_ADMIN in the user namespace
   * that owns it (not only in a user namespace of its own). */
  readonly canMountHere: boolean;
  /** Each check's result by its id, in the registry's order; a check that does not apply
   * (buildDirectory without one) is absent. */
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/** Runs every check, one after the other. The launch probes clone a few short-lived children
 * (about a millisecond each); the syscall probes start one perl. */
export async function detectFeatures(options: { buildDirectory?: string } = {}): Promise<Features> {
  const context = new DoctorContext(options);
  const checks: Record<string, CheckResult> = {};
  for (const check of doctorChecks) {
    const observation = await check.run(context);
    if (observation === undefined) continue;
    const fix = observation.fix ?? (observation.status === 'ok' ? undefined : check.fix);
    checks[check.id] = {
      title: check.title,
      ...observation,
      ...(fix === undefined ? {} : { fix }),
    };
  }
  return { privileges: context.privileges, canMountHere: context.canMountHere, checks };
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

function support(mode: IsolationMode, requirements: readonly Requirement[]): ModeSupport {
  const missing = requirements.find((requirement) => !requirement.met);
  if (missing !== undefined) {
    return { mode, supported: false, available: false, reason: missing.reason, fix: missing.fix };
  }
  return { mode, supported: true, available: true, reason: '', fix: '' };
}

/** Which isolation modes work here, and for each that does not, why and the fix: each mode
 * states its requirements. */
export function isolationModeSupport(features: Features): ModeSupport[] {
  const findings: HostFindings = {
    checks: new Map(Object.entries(features.checks)),
    uid: features.privileges.uid,
    effectiveCapabilities: features.privileges.effective,
    canMountHere: features.canMountHere,
  };
  return isolationModes.map((mode) =>
    support(mode, isolationStrategy(mode).requirements(findings)),
  );
}
