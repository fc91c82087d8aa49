import { realpathSync, statfsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type MountInfo, readMountinfo } from '../../mounts/index.js';
import { isSystemError } from '../../syscalls/index.js';
import { type DoctorCheck, type Observation, ok, unavailable } from '../check.js';

const FUSE_SUPER_MAGIC = 0x65735546;

/** The mount holding an absolute path: the longest mount point that contains it. */
function mountHolding(path: string): MountInfo | undefined {
  let holding: MountInfo | undefined;
  for (const mount of readMountinfo()) {
    const prefix = mount.mountPoint === '/' ? '/' : `${mount.mountPoint}/`;
    const contains = path === mount.mountPoint || path.startsWith(prefix);
    // Later entries are mounted on top of earlier ones at the same point.
    if (
      contains &&
      (holding === undefined || mount.mountPoint.length >= holding.mountPoint.length)
    ) {
      holding = mount;
    }
  }
  return holding;
}

/** Whether the build directory is on FUSE (as bb_worker's virtual build directory is), and
 * whether this user can reach it. */
function observe(path: string): Observation {
  const title = `build directory ${path}`;
  let canonical = resolve(path);
  let fuseType = false;
  let unreachable: string | undefined;
  try {
    canonical = realpathSync.native(canonical);
    fuseType = statfsSync(canonical).type === FUSE_SUPER_MAGIC;
  } catch (error) {
    unreachable = isSystemError(error) ? error.code : String(error);
  }
  const mount = mountHolding(canonical);
  const on = `on ${mount?.fstype ?? 'an unknown file system'} mounted at ${mount?.mountPoint ?? '?'}`;
  const fuse = fuseType || (mount?.fstype.startsWith('fuse') ?? false);
  const options = mount?.superOptions ?? [];
  const owner = options.find((option) => option.startsWith('user_id='))?.slice('user_id='.length);
  const uid = process.getuid?.() ?? -1;
  if (fuse && !options.includes('allow_other') && owner !== undefined && Number(owner) !== uid) {
    return {
      title,
      ...unavailable(
        `${on}: FUSE mounted by uid ${owner} without allow_other, so uid ${uid} cannot enter it`,
        'mount the FUSE file system with -o allow_other (bb_worker: allowOther: true)',
      ),
    };
  }
  if (unreachable !== undefined) {
    return {
      title,
      ...unavailable(`cannot be reached (${unreachable})`, 'create it, or fix its permissions'),
    };
  }
  const propagation = mount === undefined ? '' : `; ${describePropagation(mount)}`;
  return { title, ...ok(`${on}${fuse ? ' (FUSE)' : ''}${propagation}`) };
}

/** What the mount's propagation means for a runner beside bb_worker. */
function describePropagation(mount: MountInfo): string {
  const { shared, master } = mount.propagation;
  if (master !== undefined) {
    return "propagation: slave (receives the worker's mounts; sends nothing back)";
  }
  if (shared !== undefined) {
    return 'propagation: shared (shared-mode mounts would reach the worker; HostToContainer/rslave avoids it)';
  }
  return 'propagation: private (mounts the worker makes later, such as its FUSE file system after a restart, will not appear here; use HostToContainer/rslave)';
}

/** Only when doctor is given a build directory (--build-directory). */
export const buildDirectory: DoctorCheck = {
  id: 'buildDirectory',
  title: 'build directory',
  run: (context) =>
    context.buildDirectory === undefined ? undefined : observe(context.buildDirectory),
};
