// shared: the runner mounts the special filesystems into the input root in its own mount
// namespace (mountat; contributions/shared-mounts.ts), and the action gets PID, IPC and UTS
// namespaces but no mount namespace of its own: it is chrooted, and the mounts are removed
// by handle afterwards. The procfs must be the action's PID namespace's, so the child mounts
// it onto a holder the runner made.
import { constants as osConstants } from 'node:os';
import { constants } from '../../syscalls/index.js';
import { runnerStep } from '../plan.js';
import { type IsolationStrategy, nothingPrepared, unprivilegedWithRange } from './mode.js';
import {
  dropsBoundingSet,
  launcherRequirements,
  mountApi,
  mountsHere,
  needCapability,
} from './requirements.js';

export const sharedMode: IsolationStrategy = {
  name: 'shared',
  summary:
    "the special filesystems mounted into the input root in the runner's mount namespace, removed by handle afterwards; chroot",
  init: 'pid1',
  killSignal: osConstants.signals.SIGKILL,
  actionUserNamespace: true,
  userNamespaceByClone: false,
  unprivilegedActionIds: unprivilegedWithRange,
  pivotsIntoRoot: false,
  specialMounts: 'runner',
  temporaryDirectoryInside: (settings) => settings.filesystems.tmp,
  prepare: async () => nothingPrepared,
  plan(plan, { files }) {
    // Everything but the mount namespace: the action cannot see, signal or ptrace the runner
    // or other actions, and its /proc shows its own processes only.
    plan.cloneFlags |= constants.CLONE_NEWPID | constants.CLONE_NEWIPC | constants.CLONE_NEWUTS;
    const root = plan.inherit(files.inputRoot.fd);
    return { root, enter: (p) => p.chroot(runnerStep('chroot into the input root'), root) };
  },
  requirements: (findings) => [
    ...mountsHere(findings),
    needCapability(findings, 'SYS_CHROOT', 'to chroot'),
    ...mountApi(findings),
    ...launcherRequirements(findings),
    dropsBoundingSet(findings),
  ],
  probeScript: 'test "$(realpath /proc/self/exe)" = /bin/realpath && test -c /dev/null',
};
