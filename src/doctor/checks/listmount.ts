import { isSystemError, listmount as list } from '../../syscalls/index.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

export const listmount: DoctorCheck = {
  id: 'listmount',
  title: 'listmount/statmount',
  run() {
    try {
      return ok(`works (${list().length} mounts)`);
    } catch (error) {
      if (!isSystemError(error)) throw error;
      // Optional: the mount table is read from /proc/self/mountinfo without them.
      return unavailable(
        `listmount failed with ${error.code}; /proc/self/mountinfo is used instead`,
        'optional; needs Linux ≥ 6.8',
      );
    }
  },
};
