import { type DoctorCheck, ok, unavailable } from '../check.js';

/** The new mount API, called for real: fsopen("tmpfs") creates nothing until
 * fsconfig(CREATE), so it is harmless. EPERM means present but not permitted here; whether
 * it works here is what shared mode (and the host clones of namespaces mode) need. */
export const mountApi: DoctorCheck = {
  id: 'mountApi',
  title: 'new mount API (fsopen, fsmount, move_mount, open_tree)',
  run(context) {
    const result = context.mountApi();
    if (result === true) return ok('fsopen("tmpfs") works');
    if (result.code === 'EPERM') {
      const why = context.privileges.effective.includes('SYS_ADMIN')
        ? 'CAP_SYS_ADMIN does not cover this mount namespace, or a seccomp profile refuses it'
        : 'needs CAP_SYS_ADMIN';
      return ok(`present (fsopen refused with EPERM here: ${why})`);
    }
    return unavailable(
      `fsopen("tmpfs") failed with ${result.code}`,
      result.code === 'ENOSYS'
        ? 'needs Linux ≥ 5.2 and a seccomp profile that allows fsopen, fsconfig, fsmount, move_mount and open_tree'
        : 'allow fsopen, fsconfig, fsmount, move_mount and open_tree in the seccomp profile or LSM policy',
    );
  },
};
