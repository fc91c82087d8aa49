// Where the runner's own cgroups are: /proc/self/cgroup names them relative to the cgroup
// namespace's root, mountinfo says where each hierarchy is mounted and which of its
// directories each mount shows. Only a hierarchy whose mount shows the runner's cgroup can
// be used; the runner makes its sub-cgroups beneath that directory and changes nothing
// above it.
import { readFileSync } from 'node:fs';
import { type MountInfo, readMountinfo } from '../mounts/index.js';
import { readOptional } from './files.js';

/** The v1 controllers the runner uses. freezer is not: killing needs no freeze (files.ts). */
export const v1Controllers = ['memory', 'pids', 'cpu', 'cpuacct', 'blkio'] as const;
export type V1Controller = (typeof v1Controllers)[number];

/** The v2 controllers the runner enables for its actions when its cgroup offers them. */
export const v2Controllers = ['memory', 'pids', 'cpu', 'io'] as const;

export interface CgroupLayout {
  /** The runner's cgroup on the unified hierarchy, when it is mounted, and the controllers
   * that cgroup offers (its cgroup.controllers). */
  readonly unified: { readonly directory: string; readonly controllers: readonly string[] } | null;
  /** The runner's cgroup on each v1 hierarchy that has one of v1Controllers. */
  readonly v1: ReadonlyMap<V1Controller, string>;
}

interface OwnCgroup {
  readonly controllers: readonly string[];
  readonly path: string;
}

function ownCgroups(): OwnCgroup[] {
  return readFileSync('/proc/self/cgroup', 'latin1')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const first = line.indexOf(':');
      const second = line.indexOf(':', first + 1);
      const controllers = line.slice(first + 1, second);
      return {
        controllers: controllers === '' ? [] : controllers.split(','),
        path: line.slice(second + 1),
      };
    });
}

/** The directory of the mount that shows `path` of its hierarchy, if any does. */
function directoryOf(mounts: readonly MountInfo[], path: string): string | undefined {
  for (const mount of mounts) {
    const root = mount.root === '/' ? '' : mount.root;
    if (path !== root && !path.startsWith(`${root}/`)) continue;
    const below = path.slice(root.length);
    if (below === '' || below === '/') return mount.mountPoint;
    return mount.mountPoint === '/' ? below : `${mount.mountPoint}${below}`;
  }
  return undefined;
}

export function cgroupLayout(): CgroupLayout {
  const mounts = readMountinfo();
  const own = ownCgroups();
  const unifiedPath = own.find((line) => line.controllers.length === 0)?.path;
  const unifiedMounts = mounts.filter((mount) => mount.fstype === 'cgroup2');
  const unifiedDirectory =
    unifiedPath === undefined ? undefined : directoryOf(unifiedMounts, unifiedPath);
  const v1 = new Map<V1Controller, string>();
  for (const controller of v1Controllers) {
    const line = own.find((entry) => entry.controllers.includes(controller));
    if (line === undefined) continue;
    const hierarchy = mounts.filter(
      (mount) => mount.fstype === 'cgroup' && mount.superOptions.includes(controller),
    );
    const directory = directoryOf(hierarchy, line.path);
    if (directory !== undefined) v1.set(controller, directory);
  }
  return {
    unified:
      unifiedDirectory === undefined
        ? null
        : {
            directory: unifiedDirectory,
            controllers: (readOptional(`${unifiedDirectory}/cgroup.controllers`) ?? '')
              .trim()
              .split(' ')
              .filter((name) => name !== ''),
          },
    v1,
  };
}
