// A user namespace for every action of the modes whose child sets up as the runner's own ids
// (namespaces and shared mode, the runner as root): without one the action's uid 0 is the
// host's root, owner of every file bb_worker (root) wrote, such as the read-only inputs it
// hard-links from its cache. The child makes the action's namespaces, mounts and root as
// the runner, and only then unshares the user namespace: every namespace and mount stays
// owned by the runner's, so the action's capabilities reach none of them, and the ids it
// is switched to are host ids of a configured range that own nothing. The unshare comes
// after pivot_root (which needs CAP_SYS_ADMIN over the mount namespace's owner), but before
// a chroot: the kernel refuses a user namespace to a chrooted process. Only a process of
// the runner's user namespace may map other ids than its own, so the runner writes the maps
// while the child waits (PlanBuilder.awaitIdMaps).
import { constants } from '../../syscalls/index.js';
import type { PlanBuilder } from '../plan.js';
import { runnerStep } from '../plan.js';
import type { ActionUserNamespace, Credentials } from '../types.js';
import type { Contribution } from './contribution.js';

const root: Credentials = { uid: 0, gid: 0, additionalGroups: [] };

/** An id map in /proc's format (one "inside outside count" line per extent): ids 0 to
 * idCount - 1 to the range, but each of `own` other than 0 to itself (its place in the
 * range stays unused). */
export function idMap(range: ActionUserNamespace, own: readonly number[]): string {
  const lines: string[] = [];
  let next = 0;
  const rangeUpTo = (end: number): void => {
    if (end > next) lines.push(`${next} ${range.firstHostId + next} ${end - next}\n`);
  };
  for (const id of [...new Set(own)].filter((id) => id !== 0).sort((a, b) => a - b)) {
    if (id < range.idCount) {
      rangeUpTo(id);
      next = id + 1;
    }
    lines.push(`${id} ${id} 1\n`);
  }
  rangeUpTo(range.idCount);
  return lines.join('');
}

export const userNamespace: Contribution = {
  name: 'userNamespace',
  appliesTo: ({ strategy, settings }) =>
    strategy.actionUserNamespace && settings.actionUserNamespace !== undefined,
  prepare({ engine, spec }) {
    const range = engine.settings.actionUserNamespace;
    if (range === undefined) throw new Error('userNamespace: the engine has no id range');
    // The action's uid 0 too is switched to: the child is still the host's root until then.
    const credentials = spec.credentials ?? root;
    const uidMap = idMap(range, [credentials.uid]);
    const gidMap = idMap(range, [credentials.gid, ...credentials.additionalGroups]);
    const steps = (plan: PlanBuilder): void => {
      plan.unshare(runnerStep("create the action's user namespace"), constants.CLONE_NEWUSER);
      plan.awaitIdMaps(
        runnerStep(`map the action's ids to host ids from ${range.firstHostId}`),
        uidMap,
        gidMap,
      );
    };
    return {
      plan: engine.strategy.pivotsIntoRoot ? { entered: steps } : { filesystems: steps },
      credentials,
      teardown: () => {},
    };
  },
};
