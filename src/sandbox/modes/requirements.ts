// What a mode requires of the host, in terms of doctor's checks (src/doctor): each mode
// states its own requirements, doctor runs the checks and reports which modes work.

/** ok: present and usable; unavailable: absent or refused; unknown: could not be probed. */
export type CheckStatus = 'ok' | 'unavailable' | 'unknown';

/** What one of doctor's checks saw. */
export interface CheckResult {
  readonly title: string;
  readonly status: CheckStatus;
  /** What was seen, one line. */
  readonly detail: string;
  /** How to make it available, one line; only when it is not. */
  readonly fix?: string;
}

/** What doctor found, as the modes' requirements read it. */
export interface HostFindings {
  /** The result of each check that ran, by its id. */
  readonly checks: ReadonlyMap<string, CheckResult>;
  readonly uid: number;
  /** Capability names without CAP_ in the runner's effective set. */
  readonly effectiveCapabilities: readonly string[];
  /** fsopen works in the runner's own mount namespace: CAP_SYS_ADMIN in the user namespace
   * that owns it (not only in a user namespace of its own). */
  readonly canMountHere: boolean;
}

/** A requirement on the host, as doctor reports it. */
export interface Requirement {
  readonly met: boolean;
  readonly reason: string;
  readonly fix: string;
}

/** Met unless check `id` ran and found its subject unavailable. */
export function needCheck(findings: HostFindings, id: string): Requirement {
  const check = findings.checks.get(id);
  if (check === undefined) return { met: true, reason: '', fix: '' };
  return {
    met: check.status !== 'unavailable',
    reason: `${check.title}: ${check.detail}`,
    fix: check.fix ?? '',
  };
}

export function needCapability(findings: HostFindings, name: string, why: string): Requirement {
  return {
    met: findings.effectiveCapabilities.includes(name),
    reason: `needs root or CAP_${name} (${why}); running as uid ${findings.uid} without it`,
    fix: `run the runner as root, or grant CAP_${name} (securityContext.capabilities.add: [${name}])`,
  };
}

/** What every mode needs: requests resolved beneath the build directory, the launcher's
 * clone, and CAP_SETPCAP to drop capabilities from the bounding set before exec. */
export function launcherRequirements(findings: HostFindings): Requirement[] {
  return [
    needCheck(findings, 'buildDirectory'),
    needCheck(findings, 'openat2'),
    needCheck(findings, 'clonePidfd'),
  ];
}

export function dropsBoundingSet(findings: HostFindings): Requirement {
  return needCapability(findings, 'SETPCAP', 'to drop capabilities from the bounding set');
}

/** What mounting in the runner's own mount namespace needs (shared mode, and the host clones
 * of namespaces mode). */
export function mountsHere(findings: HostFindings): Requirement[] {
  return [
    needCapability(findings, 'SYS_ADMIN', 'to mount and create namespaces'),
    {
      met: findings.canMountHere,
      reason:
        "cannot mount in the runner's own mount namespace (fsopen: EPERM): CAP_SYS_ADMIN is needed in the user namespace that owns it, not only in a nested one",
      fix: 'run the runner as root in the host or container user namespace (not inside unshare -U)',
    },
  ];
}

export function mountApi(findings: HostFindings): Requirement[] {
  return [needCheck(findings, 'mountApi'), needCheck(findings, 'mountSetattr')];
}
