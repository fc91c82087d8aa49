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
//
// Each running action holds a slot of the range: its ids are host ids of its own, and the
// child becomes the host id of its uid 0 right before the unshare, which makes that id the
// namespace's owner (as rootless container runtimes' are): the kernel charges the per-user
// counts of everything done inside (processes, inotify instances and watches, user
// namespaces, mqueue bytes, pending signals) to the owner at the host's level, so an action
// uses up no limit of root's, nor of another action's. Nothing needs a capability outside the
// new namespace after that: the maps are the runner's to write, and the steps that follow
// act inside it. In rootless mode run by a runner that may map any ids this only claims the
// slot: the mode's clone makes the namespace, as the slot's uid 0 (modes/rootless.ts).
import { constants } from '../../syscalls/index.js';
import type { PlanBuilder } from '../plan.js';
import { runnerStep } from '../plan.js';
import { ActionError, type ActionUserNamespace, type Credentials } from '../types.js';
import type { Contribution } from './contribution.js';

const root: Credentials = { uid: 0, gid: 0, additionalGroups: [] };

/** The host ids of one slot: ids 0 to idCount - 1 inside are firstHostId and up. */
export interface HostIdRange {
  readonly firstHostId: number;
  readonly idCount: number;
}

/** An id map in /proc's format (one "inside outside count" line per extent): ids 0 to
 * idCount - 1 to the range, but each of `own` other than 0 to itself (its place in the
 * range stays unused). */
export function idMap(range: HostIdRange, own: readonly number[]): string {
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

/** The slots held by running actions, by range ("firstHostId/idCount"): shared by every
 * engine of the process, as one process may serve several configurations of one range (the
 * demo does). Runners in other processes must be given ranges of their own. */
const heldSlots = new Map<string, Set<number>>();

/** Claims and releases an engine's slots of settings.actionUserNamespace's range. */
export class HostIdSlots {
  readonly #held: Set<number>;

  constructor(readonly range: ActionUserNamespace) {
    const key = `${range.firstHostId}/${range.idCount}`;
    let held = heldSlots.get(key);
    if (held === undefined) {
      held = new Set();
      heldSlots.set(key, held);
    }
    this.#held = held;
  }

  /** Claims the lowest free slot's ids; undefined when every slot is held. */
  claim(): (HostIdRange & { readonly slot: number }) | undefined {
    const { firstHostId, idCount, concurrentActions } = this.range;
    for (let slot = 0; slot < concurrentActions; slot++) {
      if (this.#held.has(slot)) continue;
      this.#held.add(slot);
      return { slot, firstHostId: firstHostId + slot * idCount, idCount };
    }
    return undefined;
  }

  release(slot: number): void {
    this.#held.delete(slot);
  }
}

export const userNamespace: Contribution = {
  name: 'userNamespace',
  appliesTo: ({ strategy, settings, host }) =>
    settings.actionUserNamespace !== undefined &&
    (strategy.actionUserNamespace || (strategy.userNamespaceByClone && host.mapsAnyIds)),
  prepare({ engine, spec }) {
    const slots = engine.hostIdSlots;
    if (slots === undefined) throw new Error('userNamespace: the engine has no id range');
    const range = slots.claim();
    if (range === undefined) {
      throw new ActionError(
        'internal',
        `All ${slots.range.concurrentActions} slots of host ids (actionUserNamespace) are held ` +
          'by running actions: no more may run at once',
      );
    }
    const teardown = () => slots.release(range.slot);
    // The mode maps the slot in the namespace its clone makes (rootless mode).
    if (!engine.strategy.actionUserNamespace) return { hostIds: range, teardown };
    const owner = range.firstHostId;
    // The action's uid 0 too is switched to: until then the child keeps root's saved and file
    // system ids.
    const credentials = spec.credentials ?? root;
    const uidMap = idMap(range, [credentials.uid]);
    const gidMap = idMap(range, [credentials.gid, ...credentials.additionalGroups]);
    const steps = (plan: PlanBuilder): void => {
      plan.becomeNamespaceOwner(
        runnerStep(`become host uid ${owner}, the owner of the action's user namespace`),
        owner,
        owner,
      );
      plan.unshare(runnerStep("create the action's user namespace"), constants.CLONE_NEWUSER);
      plan.awaitIdMaps(
        runnerStep(`map the action's ids to host ids from ${owner}`),
        uidMap,
        gidMap,
      );
    };
    return {
      plan: engine.strategy.pivotsIntoRoot ? { entered: steps } : { filesystems: steps },
      credentials,
      teardown,
    };
  },
};
