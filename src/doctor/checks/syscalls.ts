// Syscalls the addon has no wrapper for, called from a short-lived perl (in every Debian
// image: perl-base is essential). Numbers ≥ 424 are the same on every architecture.
// Arguments are chosen so that a present syscall does nothing: pidfd_open of perl itself,
// close_range(3, 2) (EINVAL). clone3 the addon probes itself (clone-into-cgroup.ts).
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { type DoctorCheck, ok, unavailable, unknown } from '../check.js';

const probes = [
  { id: 'pidfdOpen', title: 'pidfd_open', number: 434, args: '$$ + 0, 0', linux: '5.3' },
  { id: 'closeRange', title: 'close_range', number: 436, args: '3, 2, 0', linux: '5.9' },
] as const;

/** One perl for both: each syscall's errno, 0 when it succeeded; [] without perl. */
function probeErrnos(): number[] {
  const script = probes
    .map((probe) => `$!=0; print((syscall(${probe.number}, ${probe.args}) < 0 ? $!+0 : 0), "\\n");`)
    .join(' ');
  const result = spawnSync('perl', ['-e', script], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim().split('\n').map(Number) : [];
}

function syscallCheck(index: number): DoctorCheck {
  const probe = probes[index] ?? probes[0];
  return {
    id: probe.id,
    title: probe.title,
    run(context) {
      const errno = context.once('syscallErrnos', probeErrnos)[index];
      if (errno === undefined) {
        return unknown(
          'not probed: perl, which calls it, could not be run',
          `expected on Linux ≥ ${probe.linux}; a native wrapper in the addon would probe it directly`,
        );
      }
      if (errno === 0 || errno === osConstants.errno.EINVAL) return ok('present');
      return unavailable(
        `refused with ${getSystemErrorName(-errno)}`,
        `needs Linux ≥ ${probe.linux} and a seccomp profile that allows ${probe.title}`,
      );
    },
  };
}

export const pidfdOpen = syscallCheck(0);
export const closeRange = syscallCheck(1);
