import { cloneIntoCgroup as support } from '../../syscalls/process.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** Whether actions' first processes are cloned into their cgroup (v2), as the addon probed
 * it once: without, each joins it with its first step, a moment in the runner's cgroup. */
export const cloneIntoCgroup: DoctorCheck = {
  id: 'clone3',
  title: 'clone3 into a cgroup (CLONE_INTO_CGROUP)',
  run() {
    const { available, detail } = support();
    if (available) return ok(`${detail}: on cgroup v2 an action is cloned into its cgroup`);
    return unavailable(
      `${detail}: an action joins its cgroup with its first step instead, having been cloned into the runner's`,
      'needs Linux ≥ 5.7, x86_64 or aarch64, and a seccomp profile that allows clone3',
    );
  },
};
