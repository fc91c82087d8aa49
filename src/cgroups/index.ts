// The cgroup layer: a cgroup per action beneath the runner's own, on cgroup v2 where the
// runner's cgroup offers the controllers, on the v1 hierarchies otherwise. See types.ts.
import { isSystemError } from '../syscalls/index.js';
import { type CgroupLayout, cgroupLayout } from './discovery.js';
import { ownScopeName } from './scope.js';
import type { CgroupTree, ScopeLimits } from './types.js';
import { v1Tree } from './v1.js';
import { v2Tree } from './v2.js';

export { type CgroupLayout, cgroupLayout } from './discovery.js';
export { abandonCgroup } from './files.js';
export * from './types.js';

/** Which version to use; 'auto': v2 where it can be used, v1 otherwise. */
export type CgroupVersionChoice = 'auto' | 1 | 2;

export interface CgroupTreeOptions {
  /** The prefix of the name of the runner's scope, the cgroup beneath its own that holds its
   * actions' cgroups (scope.ts): sweep removes only scopes with this prefix. */
  readonly scopePrefix: string;
  readonly version: CgroupVersionChoice;
  /** What all the runner's actions together may use. */
  readonly scopeLimits: ScopeLimits;
}

/** What actions lose without a cgroup of their own, for serve's start-up warning and doctor. */
export const lostWithoutCgroups =
  'no per-action memory or process limits, no bound on all actions together, no exact accounting, no OOM reporting';

/** Why the runner cannot give its actions cgroups, for errors and doctor. */
export class CgroupsUnavailable extends Error {
  override readonly name = 'CgroupsUnavailable';
}

const required = ['memory', 'pids'];

/** Which version `choice` comes to on this machine, or why none can be used. */
export function chooseVersion(layout: CgroupLayout, choice: CgroupVersionChoice): 1 | 2 {
  const v2Usable =
    layout.unified !== null && required.every((name) => layout.unified?.controllers.includes(name));
  const v1Usable = required.every((name) => layout.v1.has(name as 'memory' | 'pids'));
  if (choice !== 1 && v2Usable) return 2;
  if (choice !== 2 && v1Usable) return 1;
  const offered = layout.unified?.controllers.join(' ') || 'none';
  throw new CgroupsUnavailable(
    choice === 1
      ? "no cgroup v1 memory and pids hierarchies show the runner's cgroup"
      : `the runner's cgroup v2 (${layout.unified?.directory ?? 'not mounted'}) offers controllers: ${offered}; memory and pids must be delegated to it${choice === 2 ? '' : ', and there are no v1 memory and pids hierarchies either'}`,
  );
}

/** Opens (creating its scope directories) the tree the runner makes actions' cgroups in. */
export function openCgroupTree(options: CgroupTreeOptions): CgroupTree {
  const { scopePrefix, scopeLimits } = options;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(scopePrefix)) {
    throw new TypeError(`invalid cgroup scope prefix '${scopePrefix}'`);
  }
  const layout = cgroupLayout();
  const name = ownScopeName(scopePrefix);
  try {
    if (chooseVersion(layout, options.version) === 2 && layout.unified !== null) {
      const { directory, controllers } = layout.unified;
      return v2Tree(directory, controllers, scopePrefix, name, scopeLimits);
    }
    return v1Tree(layout.v1, scopePrefix, name, scopeLimits);
  } catch (error) {
    // Not delegated: an unprivileged runner on root's cgroups, or a read-only cgroupfs.
    if (isSystemError(error) && ['EACCES', 'EPERM', 'EROFS'].includes(error.code)) {
      throw new CgroupsUnavailable(
        `the runner may not make cgroups beneath its own (${error.message}): delegate its cgroup to it`,
        { cause: error },
      );
    }
    throw error;
  }
}
