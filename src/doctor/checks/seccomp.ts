import { type DoctorCheck, ok, unavailable } from '../check.js';

/** Reports the runner's own seccomp filter, and the syscalls the probes saw fail with EPERM
 * where neither missing privileges nor a sysctl explain it. */
export const seccomp: DoctorCheck = {
  id: 'seccomp',
  title: 'seccomp',
  async run(context) {
    const mode = context.seccompMode;
    if (mode === '0') return ok('no filter');
    if (mode === '1') return unavailable('strict mode', 'run the runner without strict seccomp');
    const refused: string[] = [];
    const namespaces = await context.namespaces();
    if (
      !namespaces.ran &&
      namespaces.code === 'EPERM' &&
      context.privileges.effective.includes('SYS_ADMIN')
    ) {
      refused.push(namespaces.syscall);
    }
    const userNamespace = await context.userNamespace();
    if (
      !userNamespace.ran &&
      userNamespace.code === 'EPERM' &&
      context.userNamespaceSettings.unprivilegedClone !== '0'
    ) {
      refused.push(`${userNamespace.syscall} with CLONE_NEWUSER`);
    }
    const filters = context.status.get('Seccomp_filters');
    const count = filters === undefined ? '' : ` (${filters} filter${filters === '1' ? '' : 's'})`;
    if (refused.length > 0) {
      return unavailable(
        `filter mode${count}; ${refused.join(', ')} refused with EPERM`,
        `use a seccomp profile that allows ${refused.join(', ')} (e.g. seccompProfile: Unconfined)`,
      );
    }
    return ok(`filter mode${count}; nothing the probes need was refused`);
  },
};
