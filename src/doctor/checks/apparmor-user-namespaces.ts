import { type DoctorCheck, ok, unavailable } from '../check.js';

export const apparmorUserNamespaces: DoctorCheck = {
  id: 'apparmorUserNamespaces',
  title: "AppArmor's restriction of unprivileged user namespaces",
  run({ userNamespaceSettings: { apparmorRestrict } }) {
    if (apparmorRestrict === undefined) return ok('not present in this kernel');
    if (apparmorRestrict === '0') return ok('kernel.apparmor_restrict_unprivileged_userns is 0');
    return unavailable(
      'kernel.apparmor_restrict_unprivileged_userns is 1: unprivileged user namespaces get no capabilities',
      'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile with "userns," for node',
    );
  },
};
