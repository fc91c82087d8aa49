// Whether the kernel gives this runner a user namespace per action in the modes that make one
// (actionUserNamespace: namespaces and shared), asked as the engine asks at open: the kernel
// refuses one to a chrooted process, which only namespaces mode leaves (it pivots first).
import { defaultActionUserNamespace } from '../../sandbox/defaults.js';
import { probeActionUserNamespace } from '../../sandbox/engine.js';
import { failure, type LaunchOutcome } from '../../sandbox/launch-probe.js';
import { isolationModes, isolationStrategy } from '../../sandbox/modes/registry.js';
import { type DoctorCheck, ok, unavailable } from '../check.js';

const loses =
  "without it (chrootRunner.actionUserNamespace.enabled: false) an action's uid 0 is the host's " +
  'root: it can rewrite the read-only inputs bb_worker hard-links from its cache, and holds ' +
  "root's per-user limits (SECURITY.md, 6b, R4)";

export const actionUserNamespaces: DoctorCheck = {
  id: 'actionUserNamespaces',
  title: 'a user namespace per action (actionUserNamespace)',
  async run(context) {
    // The modes that make one need root's mounts first: without them they do not work at all.
    if (!context.canMountHere) return undefined;
    const outcomes = new Map<string, LaunchOutcome>();
    for (const mode of isolationModes) {
      const strategy = isolationStrategy(mode);
      if (!strategy.actionUserNamespace) continue;
      const prepared = await strategy.prepare();
      try {
        outcomes.set(
          mode,
          await probeActionUserNamespace(
            strategy,
            prepared,
            defaultActionUserNamespace.firstHostId,
          ),
        );
      } finally {
        prepared.close();
      }
    }
    const refused = [...outcomes].filter(([, outcome]) => !outcome.ran);
    const given = [...outcomes.keys()].filter((mode) => outcomes.get(mode)?.ran);
    if (refused.length === 0) {
      const { firstHostId, idCount, concurrentActions } = defaultActionUserNamespace;
      const last = firstHostId + idCount * concurrentActions - 1;
      return ok(
        `given in ${given.join(' and ')} mode: by default each running action holds ${idCount} host ids of its own ` +
          `from ${firstHostId} to ${last} (${concurrentActions} at once), and the host id of its uid 0 owns its namespace`,
      );
    }
    const { maxUserNamespaces } = context.userNamespaceSettings;
    const why =
      maxUserNamespaces === '0'
        ? 'user.max_user_namespaces is 0'
        : context.seccompMode === '2'
          ? 'this process runs under a seccomp filter, which may refuse CLONE_NEWUSER'
          : given.length > 0
            ? `the kernel refuses a user namespace to a chrooted process, and only ${given.join(' and ')} mode leaves the runner's root first`
            : 'refused by the kernel';
    const detail = refused.map(([mode, outcome]) => `${mode} mode: ${failure(outcome)}`);
    return unavailable(
      `refused in ${detail.join('; ')}${given.length > 0 ? `; given in ${given.join(' and ')} mode` : ''} (${why}); ${loses}`,
      given.length > 0
        ? `run the runner unchrooted, or use ${given.join(' or ')} mode; or set chrootRunner.actionUserNamespace.enabled: false and accept the above`
        : 'allow user namespaces (sysctl user.max_user_namespaces, the seccomp profile); or set chrootRunner.actionUserNamespace.enabled: false and accept the above',
    );
  },
};
