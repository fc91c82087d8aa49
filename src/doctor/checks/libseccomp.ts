import { defaultSeccomp, unfilteredSyscalls } from '../../sandbox/seccomp.js';
import { isSystemError } from '../../syscalls/index.js';
import { seccompLibrary } from '../../syscalls/process.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** The actions' seccomp filter (chrootRunner.seccomp, on by default) is compiled with
 * libseccomp, loaded at run time: without it every action would fail, so serve refuses to
 * start (src/server/preflight.ts). */
export const libseccomp: DoctorCheck = {
  id: 'libseccomp',
  title: `seccomp filter library (${seccompLibrary.name})`,
  run() {
    let unknown: readonly string[];
    try {
      unknown = unfilteredSyscalls(defaultSeccomp);
    } catch (error) {
      if (!isSystemError(error, 'ELIBACC')) throw error;
      return unavailable(
        `${seccompLibrary.name} cannot be loaded (${error.message}): actions cannot get their seccomp filter`,
        `${seccompLibrary.fix}, or set chrootRunner.seccomp.enabled to false`,
      );
    }
    return ok(
      unknown.length === 0
        ? 'the default filter compiles'
        : `the default filter compiles; unknown to this libseccomp, so not filtered: ${unknown.join(', ')}`,
    );
  },
};
