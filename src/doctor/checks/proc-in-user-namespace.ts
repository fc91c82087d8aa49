import { failure } from '../../sandbox/launch-probe.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const procInUserNamespace: DoctorCheck = {
  id: 'procInUserNamespace',
  title: 'fresh procfs in a user namespace',
  async run(context) {
    const outcome = await context.procInUserNamespace();
    if (outcome.ran) return ok('mounted in new user, mount and PID namespaces');
    return unavailable(
      failure(outcome),
      outcome.syscall === 'clone'
        ? 'user namespaces must be allowed first (see above)'
        : 'needs a fully visible /proc and capabilities in user namespaces (AppArmor, see above)',
    );
  },
};
