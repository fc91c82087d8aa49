import { type DoctorCheck, ok, unavailable } from '../check.js';

export const userNamespaceSysctls: DoctorCheck = {
  id: 'userNamespaceSysctls',
  title: 'user namespace sysctls',
  run({ userNamespaceSettings: { maxUserNamespaces, unprivilegedClone } }) {
    if (maxUserNamespaces === undefined) {
      return unavailable(
        '/proc/sys/user/max_user_namespaces is missing: no user namespaces in this kernel',
        'needs a kernel built with CONFIG_USER_NS',
      );
    }
    if (maxUserNamespaces === '0') {
      return unavailable(
        'user.max_user_namespaces is 0',
        'sysctl -w user.max_user_namespaces=15000 (in the namespace that runs the runner)',
      );
    }
    if (unprivilegedClone === '0') {
      return unavailable(
        'kernel.unprivileged_userns_clone is 0',
        'sysctl -w kernel.unprivileged_userns_clone=1',
      );
    }
    const clone =
      unprivilegedClone === undefined
        ? ''
        : `, kernel.unprivileged_userns_clone ${unprivilegedClone}`;
    return ok(`user.max_user_namespaces ${maxUserNamespaces}${clone}`);
  },
};
