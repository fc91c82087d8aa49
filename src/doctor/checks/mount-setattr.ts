import { isSystemError, mountSetattr as setattr } from '../../syscalls/index.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** mount_setattr with nothing to change: EPERM means present but not permitted here. */
export const mountSetattr: DoctorCheck = {
  id: 'mountSetattr',
  title: 'mount_setattr',
  run() {
    try {
      setattr(null, '/', 0, {});
      return ok('works');
    } catch (error) {
      if (!isSystemError(error)) throw error;
      if (error.code === 'EPERM') return ok('present (refused with EPERM here)');
      return unavailable(
        `mount_setattr failed with ${error.code}`,
        'needs Linux ≥ 5.12 and a seccomp profile that allows mount_setattr',
      );
    }
  },
};
