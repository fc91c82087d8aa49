// What both versions' trees do alike: the scope, the runner's own cgroup beneath its cgroup
// (on each hierarchy) that holds its actions' cgroups and bounds them together. Its name says
// whose it is, `<prefix>.<pid namespace>.<pid>.<start time>.<n>` (n counts the trees one
// process opens: the demo runs several servers at once), so that a later runner can tell
// the scope of one that was killed from a live one's: the process with that pid in that pid
// namespace is gone, or started at another time (its pid was reused). Only names of that form
// with the runner's own prefix are ever touched; a scope whose pid namespace is not the
// sweeping runner's is left alone, as its /proc cannot say whether its owner lives.
import { mkdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import type { DirectoryHandle } from '../syscalls/index.js';
import { isSystemError } from '../syscalls/index.js';
import { abandonCgroup, childCgroups, makeCgroup, removeCgroupTree } from './files.js';
import type { ActionCgroup, CgroupRecipe, CgroupTree } from './types.js';

interface ScopeOwner {
  readonly pidNamespace: string;
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot at which the process started. */
  readonly startTime: string;
}

/** The start time of process `pid`, or undefined when there is none. */
function startTimeOf(pid: number | 'self'): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (error) {
    if (isSystemError(error, 'ENOENT') || isSystemError(error, 'ESRCH')) return undefined;
    throw error;
  }
  // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function ownOwner(): ScopeOwner {
  const pidNamespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
  const startTime = startTimeOf('self');
  if (pidNamespace === undefined || startTime === undefined) {
    throw new Error('cannot read the pid namespace and start time of the runner from /proc');
  }
  return { pidNamespace, pid: process.pid, startTime };
}

let scopesNamed = 0;

/** The name of a new scope of this process, with `prefix`: each call gives another. */
export function ownScopeName(prefix: string): string {
  const { pidNamespace, pid, startTime } = ownOwner();
  scopesNamed++;
  return `${prefix}.${pidNamespace}.${pid}.${startTime}.${scopesNamed}`;
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether `name` is a scope with `prefix` (or, `suffix`, a cgroup beside it) whose owner
 * is certainly gone. */
function isStale(name: string, prefix: string, suffix: string, own: ScopeOwner): boolean {
  const match = new RegExp(
    `^${escaped(prefix)}\\.(\\d+)\\.(\\d+)\\.(\\d+)\\.\\d+(?:${escaped(suffix)})?$`,
  ).exec(name);
  if (match === null) return false;
  const [, pidNamespace, pid, startTime] = match;
  if (pidNamespace !== own.pidNamespace) return false;
  return startTimeOf(Number(pid)) !== startTime;
}

/** Makes the scope's directories at `paths` (one per hierarchy) and sets its limits; what it
 * made is removed again if anything fails. */
export function makeScope(paths: readonly string[], setLimits: () => void): void {
  const made: string[] = [];
  try {
    for (const path of paths) {
      mkdirSync(path);
      made.push(path);
    }
    setLimits();
  } catch (error) {
    for (const path of made) removeCgroupTree(path);
    throw error;
  }
}

export interface ScopeBackend extends Omit<CgroupTree, 'create' | 'sweep' | 'close'> {
  /** The runner's cgroup on each hierarchy: where the scopes are. */
  readonly parents: readonly string[];
  /** The scope's prefix, and what the version may add to a scope's name for a cgroup beside
   * it (v2's `.runner` leaf). */
  readonly prefix: string;
  readonly besideSuffix: string;
  /** Kills every process in the cgroup `name` beneath each parent, and beneath those, and
   * resolves once they have exited. */
  killAll(name: string): Promise<void>;
  /** As CgroupTree.adopt, but leaves the cleaning up after a throw to the caller. */
  adopt(recipe: CgroupRecipe, directories: DirectoryHandle[]): ActionCgroup;
}

export function scopeTree(backend: ScopeBackend): CgroupTree {
  const { parents, prefix, besideSuffix, killAll, ...tree } = backend;
  return {
    ...tree,
    adopt(recipe, handles) {
      try {
        return tree.adopt(recipe, handles);
      } catch (error) {
        for (const handle of handles) handle.close();
        abandonCgroup(recipe);
        throw error;
      }
    },
    create(name, limits) {
      const recipe = tree.recipe(name, limits);
      return this.adopt(recipe, makeCgroup(recipe));
    },
    async sweep() {
      const own = ownOwner();
      const stale = [
        ...new Set(
          parents.flatMap((parent) =>
            childCgroups(parent).filter((name) => isStale(name, prefix, besideSuffix, own)),
          ),
        ),
      ].sort();
      for (const name of stale) {
        try {
          await killAll(name);
          for (const parent of parents) removeCgroupTree(`${parent}/${name}`);
        } catch (error) {
          // Another runner starting at the same time swept it first.
          if (!isSystemError(error, 'ENOENT')) throw error;
        }
      }
      return stale;
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
