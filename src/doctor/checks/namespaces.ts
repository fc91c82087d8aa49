import { failure } from '../../sandbox/launch-probe.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** Namespaces mode's own plan up to pivot_root, on a scratch input root (DoctorContext). */
export const namespaces: DoctorCheck = {
  id: 'namespaces',
  title: 'mount, PID, IPC and UTS namespaces, pivot_root',
  async run(context) {
    const outcome = await context.namespaces();
    if (outcome.ran)
      return ok('they can be made, with the special filesystems, and pivot_root works');
    const privileged = context.privileges.effective.includes('SYS_ADMIN');
    return unavailable(
      failure(outcome),
      privileged
        ? `allow ${outcome.syscall} in the seccomp profile and LSM policy (Docker's and containerd's default seccomp profiles refuse pivot_root): seccompProfile Unconfined, or a Localhost profile that allows it`
        : 'run as root or with CAP_SYS_ADMIN',
    );
  },
};
