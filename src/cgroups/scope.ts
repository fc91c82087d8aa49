// What both versions' trees do alike: the scope directory beneath the runner's cgroup that
// holds its actions' cgroups, swept at start-up and removed at shutdown.
import { rmdirSync } from 'node:fs';
import { isSystemError } from '../syscalls/index.js';
import type { ActionCgroup, CgroupTree } from './types.js';

export interface ScopeBackend extends Omit<CgroupTree, 'sweep' | 'close'> {
  /** Names of the cgroups in the scope now. */
  leftovers(): string[];
  /** The existing cgroup `name` in the scope. */
  adopt(name: string): ActionCgroup;
}

export function scopeTree(backend: ScopeBackend): CgroupTree {
  const { leftovers, adopt, ...tree } = backend;
  return {
    ...tree,
    async sweep() {
      const names = leftovers();
      for (const name of names) await adopt(name).remove();
      return names;
    },
    close() {
      for (const directory of backend.directories) {
        try {
          rmdirSync(directory);
        } catch (error) {
          if (!isSystemError(error, 'ENOENT')) throw error;
        }
      }
    },
  };
}
