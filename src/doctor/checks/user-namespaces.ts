import { failure } from '../../sandbox/launch-probe.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const userNamespaces: DoctorCheck = {
  id: 'userNamespaces',
  title: 'user namespace creation',
  fix: 'allow user namespaces for this user (sysctls, seccomp, LSM)',
  async run(context) {
    const outcome = await context.userNamespace();
    if (outcome.ran) return ok('clone(CLONE_NEWUSER) works');
    const detail = failure(outcome);
    const settings = context.userNamespaceSettings;
    if (outcome.code === 'ENOSPC' || outcome.code === 'EUSERS') {
      return unavailable(
        `${detail}: user.max_user_namespaces is ${settings.maxUserNamespaces} (limit reached)`,
        'raise user.max_user_namespaces (sysctl) in the namespace that runs the runner',
      );
    }
    if (outcome.code === 'EPERM' && settings.unprivilegedClone === '0') {
      return unavailable(
        `${detail}: kernel.unprivileged_userns_clone is 0`,
        'sysctl -w kernel.unprivileged_userns_clone=1',
      );
    }
    if (outcome.code === 'EPERM' && context.seccompMode === '2') {
      return unavailable(
        `${detail}: refused by the seccomp filter`,
        'use a seccomp profile that allows clone/unshare with CLONE_NEWUSER',
      );
    }
    return { status: 'unavailable', detail };
  },
};
