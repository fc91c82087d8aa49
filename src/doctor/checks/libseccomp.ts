import { compiledSeccompFilter, defaultSeccomp } from '../../sandbox/seccomp.js';
import { isSystemError } from '../../syscalls/index.js';
import { type CompiledFilter, seccompLibrary, x32SystemCalls } from '../../syscalls/process.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

/** The actions' seccomp filter (chrootRunner.seccomp, on by default) is compiled with
 * libseccomp, loaded at run time: without it every action would fail, so serve refuses to
 * start (src/server/preflight.ts). */
export const libseccomp: DoctorCheck = {
  id: 'libseccomp',
  title: `seccomp filter library (${seccompLibrary.name})`,
  run() {
    let filter: CompiledFilter;
    try {
      filter = compiledSeccompFilter(defaultSeccomp);
    } catch (error) {
      if (!isSystemError(error, 'ELIBACC')) throw error;
      return unavailable(
        `${seccompLibrary.name} cannot be loaded (${error.message}): actions cannot get their seccomp filter`,
        `${seccompLibrary.fix}, or set chrootRunner.seccomp.enabled to false`,
      );
    }
    const { unknown, tree } = filter;
    return ok(
      [
        'the default filter compiles',
        ...(unknown.length === 0
          ? []
          : [`unknown to this libseccomp, so not filtered: ${unknown.join(', ')}`]),
        // Before 2.5 the syscall numbers are a list, which the kernel walks for every number
        // at each action's load (docs/seccomp.md).
        ...(tree ? [] : ['this libseccomp cannot sort the syscalls into a tree: slower loads']),
        // docs/seccomp.md: x32 is filtered only where the kernel runs x32 calls.
        ...(process.arch === 'x64' && !x32SystemCalls()
          ? ['this kernel runs no x32 calls: they fail ENOSYS, and the filter leaves x32 out']
          : []),
      ].join('; '),
    );
  },
};
