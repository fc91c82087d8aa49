// none: a plain chroot with nothing mounted, as bb_runner does. The init is a child
// subreaper in the runner's PID namespace, which kills its tree itself.
import { constants as osConstants } from 'node:os';
import { constants } from '../../syscalls/index.js';
import { cwd, runnerStep } from '../plan.js';
import { type IsolationStrategy, nothingPrepared } from './mode.js';
import { dropsBoundingSet, launcherRequirements, needCapability } from './requirements.js';

export const noneMode: IsolationStrategy = {
  name: 'none',
  summary: 'a plain chroot with nothing mounted, as bb_runner does',
  init: 'subreaper',
  killSignal: osConstants.signals.SIGTERM,
  actionUserNamespace: false,
  userNamespaceByClone: false,
  // No user namespace: the action's ids are the host's.
  unprivilegedActionIds: () => false,
  pivotsIntoRoot: false,
  specialMounts: 'none',
  temporaryDirectoryInside: () => false,
  prepare: async () => nothingPrepared,
  plan(plan, { files }) {
    // Without a PID namespace the init finds the processes it must kill through its
    // children list, which it cannot open after the chroot.
    const children = plan.open(
      runnerStep("open the init's children list"),
      cwd,
      '/proc/thread-self/children',
      { flags: constants.O_RDONLY, resolve: 0 },
    );
    const root = plan.inherit(files.inputRoot.fd);
    return {
      root,
      children,
      enter: (p) => p.chroot(runnerStep('chroot into the input root'), root),
    };
  },
  requirements: (findings) => [
    needCapability(findings, 'SYS_CHROOT', 'to chroot'),
    ...launcherRequirements(findings),
    dropsBoundingSet(findings),
  ],
  probeScript: 'test -x /bin/realpath',
};
