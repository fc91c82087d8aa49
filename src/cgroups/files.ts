// Reading and writing cgroup interface files, and what both versions do alike: listing and
// killing a cgroup's processes, removing a cgroup tree. Paths are the runner's own (beneath
// its cgroup), never the action's: cgroupfs has no symlinks to follow.
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import {
  constants,
  type DirectoryHandle,
  isSystemError,
  openat2,
  openDirectory,
} from '../syscalls/index.js';
import { pidfdOpen, pidfdSendSignal, waitReadable } from '../syscalls/process.js';
import type { CgroupRecipe } from './types.js';

/** Where reads go: cgroupfs reports every file's size as 0 (or 4096), so readFileSync
 * would fstat it and allocate a 64 KiB buffer per read, a dozen times an action. */
let readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A cgroup interface file: by path, or by name in its cgroup's directory (an openat, no
 * walk down the hierarchy's path: half the cost of a read here). */
export type CgroupFile = string | { readonly directory: DirectoryHandle; readonly name: string };

/** Reads the file whole; `oneRecord`: it is shown in one seq_file record (every interface
 * file but the process and thread lists), which the first read hands over whole (seq_file
 * grows its own buffer for it), so no second read is needed to see the end. */
function read(file: CgroupFile, oneRecord: boolean): string {
  const opened =
    typeof file === 'string'
      ? openSync(file, 'r')
      : openat2(file.directory, file.name, { flags: constants.O_RDONLY });
  const fd = typeof opened === 'number' ? opened : opened.fd;
  try {
    let length = 0;
    for (;;) {
      if (length === readBuffer.length) {
        const larger = Buffer.allocUnsafe(readBuffer.length * 2);
        readBuffer.copy(larger);
        readBuffer = larger;
      }
      const got = readSync(fd, readBuffer, length, readBuffer.length - length, null);
      length += got;
      if (got === 0 || (oneRecord && length < readBuffer.length)) {
        return readBuffer.toString('latin1', 0, length);
      }
    }
  } finally {
    if (typeof opened === 'number') closeSync(opened);
    else opened.close();
  }
}

/** The whole content of the one-record interface file open at `fd`, read again from its
 * start (seq_file makes it anew for a read at offset 0): one pread, no open. */
export function rereadRecord(fd: number): string {
  for (;;) {
    const got = readSync(fd, readBuffer, 0, readBuffer.length, 0);
    if (got < readBuffer.length) return readBuffer.toString('latin1', 0, got);
    readBuffer = Buffer.allocUnsafe(readBuffer.length * 2);
  }
}

export function readText(file: CgroupFile): string {
  return read(file, false);
}

/** The file's content, or undefined when this kernel has no such file. */
export function readOptional(file: CgroupFile): string | undefined {
  try {
    return read(file, true);
  } catch (error) {
    if (isSystemError(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** A flat keyed file ("key value" lines: memory.events, cpu.stat, pids.events…). */
export function readKeyed(file: CgroupFile): Map<string, bigint> {
  return parseKeyed(readOptional(file) ?? '');
}

export function parseKeyed(text: string): Map<string, bigint> {
  const values = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key !== undefined && value !== undefined && /^\d+$/.test(value)) {
      values.set(key, BigInt(value));
    }
  }
  return values;
}

/** A single-number file; undefined when absent or not a number ("max"). */
export function readNumber(file: CgroupFile): number | undefined {
  const text = readOptional(file)?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

export function writeValue(path: string, value: string): void {
  writeFileSync(path, value);
}

/** The recipe of the cgroup at `directories`, given the files `writes` names by path. */
export function cgroupRecipe(
  name: string,
  directories: readonly string[],
  writes: readonly (readonly [path: string, value: string])[],
): CgroupRecipe {
  return {
    name,
    directories: directories.map((path) => ({
      path,
      writes: writes
        .filter(([file]) => file.startsWith(`${path}/`))
        .map(([file, value]) => [file.slice(path.length + 1), value] as const),
    })),
  };
}

/** Makes the recipe's cgroup and opens its directories, now; what it made is removed again
 * if anything fails. */
export function makeCgroup(recipe: CgroupRecipe): DirectoryHandle[] {
  const opened: DirectoryHandle[] = [];
  try {
    for (const { path, writes } of recipe.directories) {
      mkdirSync(path);
      opened.push(openDirectory(path));
      for (const [file, value] of writes) writeValue(`${path}/${file}`, value);
    }
    return opened;
  } catch (error) {
    for (const handle of opened) handle.close();
    abandonCgroup(recipe);
    throw error;
  }
}

/** Removes what a recipe's making made before it failed. */
export function abandonCgroup(recipe: CgroupRecipe): void {
  for (const { path } of recipe.directories) removeCgroupTree(path);
}

/** Directory names directly beneath `directory` (the cgroups nested in it). */
export function childCgroups(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
}

/** The processes in `directory`'s cgroup and every cgroup beneath it. */
export function processesIn(directory: string): number[] {
  const pids = readText(`${directory}/cgroup.procs`)
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
  // A cgroupfs directory's link count is 2 plus its subdirectories (kernfs): an action's
  // cgroup has none (nothing inside can make one), so its listing is skipped.
  if (statSync(directory).nlink === 2) return pids;
  for (const child of childCgroups(directory)) pids.push(...processesIn(`${directory}/${child}`));
  return pids;
}

/** Kills every process in the cgroups at `directories` (one per hierarchy on v1) and
 * beneath them, and resolves once all have exited (a pidfd polls readable once its process
 * has left its cgroups). Where the kernel has cgroup.kill, one write kills the tree with no
 * race against forks; elsewhere pids.max is set to 0 first, then each process listed is
 * killed through a pidfd and listing starts again until none is left. A pidfd counts only once its pid is listed again after it was
 * opened, so a reused pid is never signalled. */
export async function killProcesses(
  directories: readonly string[],
  killFile: string | undefined,
  pidsMaxFile?: string,
): Promise<void> {
  const { SIGKILL } = osConstants.signals;
  // Without cgroup.kill, a fork loop could outpace the loop below: with pids.max at 0 no
  // process of the cgroup forks any more, so each round only shrinks what is left.
  if (killFile === undefined && pidsMaxFile !== undefined) {
    try {
      writeValue(pidsMaxFile, '0');
    } catch (error) {
      if (!isSystemError(error, 'ENOENT')) throw error;
    }
  }
  for (;;) {
    const listed = new Set(directories.flatMap(processesIn));
    if (listed.size === 0) return;
    const pidfds = [];
    try {
      for (const pid of listed) {
        try {
          pidfds.push({ pid, fd: pidfdOpen(pid) });
        } catch (error) {
          if (!isSystemError(error, 'ESRCH')) throw error;
        }
      }
      const members = new Set(directories.flatMap(processesIn));
      const ours = pidfds.filter(({ pid }) => members.has(pid));
      if (killFile !== undefined) writeValue(killFile, '1');
      else for (const { fd } of ours) pidfdSendSignal(fd, SIGKILL);
      await Promise.all(ours.map(({ fd }) => waitReadable(fd)));
    } finally {
      for (const { fd } of pidfds) fd.close();
    }
  }
}

/** Removes the cgroups at `directories` (one per hierarchy on v1) with everything in them:
 * first by one rmdir each, which needs no fd (after an action whose processes are gone, or
 * one that ran out of fds, that is all); only when one is busy (processes or cgroups in
 * it) by `kill` and removeCgroupTree. */
export async function removeCgroup(
  directories: readonly string[],
  kill: () => Promise<void>,
): Promise<void> {
  let busy = false;
  for (const directory of directories) {
    try {
      rmdirSync(directory);
    } catch (error) {
      if (isSystemError(error, 'EBUSY')) busy = true;
      else if (!isSystemError(error, 'ENOENT')) throw error;
    }
  }
  if (!busy) return;
  await kill();
  for (const directory of directories) removeCgroupTree(directory);
}

/** Removes the cgroup at `directory` and every cgroup beneath it, deepest first. Absent
 * already: nothing to do. An empty cgroup (every action's) goes with one rmdir, which needs
 * no fd: the clean-up of a set-up that ran out of fds can still remove it. Only a cgroup
 * with cgroups beneath it (EBUSY) is listed. */
export function removeCgroupTree(directory: string): void {
  try {
    rmdirSync(directory);
    return;
  } catch (error) {
    if (isSystemError(error, 'ENOENT')) return;
    if (!isSystemError(error, 'EBUSY')) throw error;
  }
  for (const child of childCgroups(directory)) removeCgroupTree(`${directory}/${child}`);
  try {
    rmdirSync(directory);
  } catch (error) {
    if (!isSystemError(error, 'ENOENT')) throw error;
  }
}
