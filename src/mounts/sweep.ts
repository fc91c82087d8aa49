// Removal of stale mounts (left by a runner that was killed) beneath a directory.
import { realpathSync } from 'node:fs';
import { relative } from 'node:path';
import { openDirectory } from '../syscalls/index.js';
import { openMount, unmountat } from './mount.js';
import { listMounts } from './mountinfo.js';

/** Unmounts every mount strictly beneath the absolute `directory`, newest first, each through
 * a handle opened beneath `directory` (a mountpoint reached through a symlink is an error,
 * not followed). Returns how many mounts were removed (a detached tree counts once). */
export function sweepMounts(path: string): number {
  // mountinfo prints canonical paths.
  const directory = realpathSync.native(path);
  using dir = openDirectory(directory);
  const seen = new Set<number>();
  for (;;) {
    const stale = listMounts(directory).filter((mount) => mount.mountPoint !== directory);
    const newest = stale.at(-1);
    if (newest === undefined) return seen.size;
    if (seen.has(newest.id))
      throw new Error(`mount ${newest.id} at ${newest.mountPoint} survived unmounting`);
    seen.add(newest.id);
    unmountat(openMount(dir, relative(directory, newest.mountPoint)));
  }
}
