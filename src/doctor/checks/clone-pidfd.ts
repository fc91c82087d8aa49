import { failure } from '../../sandbox/launch-probe.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const clonePidfd: DoctorCheck = {
  id: 'clonePidfd',
  title: 'clone with CLONE_PIDFD (the launcher)',
  async run(context) {
    const outcome = await context.launcher();
    if (outcome.ran) return ok('works');
    return unavailable(
      failure(outcome),
      'needs Linux ≥ 5.2 and a seccomp profile that allows clone with CLONE_PIDFD',
    );
  },
};
