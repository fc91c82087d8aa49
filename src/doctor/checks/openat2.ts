import { constants, isSystemError, openat2 as open } from '../../syscalls/index.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const openat2: DoctorCheck = {
  id: 'openat2',
  title: 'openat2 (RESOLVE_BENEATH)',
  run() {
    try {
      open(null, '/', {
        flags: constants.O_PATH | constants.O_DIRECTORY,
        resolve: constants.RESOLVE_NO_MAGICLINKS,
      }).close();
      return ok('works');
    } catch (error) {
      if (!isSystemError(error)) throw error;
      return unavailable(
        `openat2 failed with ${error.code}`,
        'needs Linux ≥ 5.6 and a seccomp profile that allows openat2',
      );
    }
  },
};
