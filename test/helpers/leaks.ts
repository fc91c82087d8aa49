// Proves that a test left nothing behind: no mount beneath its directories, no extra fd, no
// extra child process.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcessState {
  readonly fds: number;
  /** What each fd refers to (fd number → link target), to name the ones left open. */
  readonly fdTargets: ReadonlyMap<string, string>;
  readonly children: readonly number[];
}

/** Mount points from /proc/<pid>/mountinfo (octal escapes decoded). */
export function mountPoints(pid: number | 'self' = 'self'): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) =>
      (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) =>
        String.fromCharCode(Number.parseInt(octal, 8)),
      ),
    );
}

/** Mount points at or beneath a directory, in this process's mount namespace or pid's. */
export function mountsBeneath(directory: string, pid: number | 'self' = 'self'): string[] {
  const prefix = directory.endsWith('/') ? directory : `${directory}/`;
  return mountPoints(pid).filter((point) => point === directory || point.startsWith(prefix));
}

export function childProcesses(): number[] {
  const children: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    const text = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
    if (text !== '') children.push(...text.split(' ').map(Number));
  }
  return children.sort((a, b) => a - b);
}

export function processState(): ProcessState {
  const fdTargets = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      fdTargets.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // The directory listing's own fd, closed by now.
    }
  }
  return { fds: fdTargets.size, fdTargets, children: childProcesses() };
}

/** Asserts that nothing is mounted beneath the directories and that fds and children are as
 * they were in `before`. */
export function assertNothingLeft(before: ProcessState, directories: readonly string[]): void {
  for (const directory of directories) {
    assert.deepEqual(mountsBeneath(directory), [], `mounts left beneath ${directory}`);
  }
  const after = processState();
  assert.deepEqual(after.children, before.children, 'child processes left behind');
  const opened = [...after.fdTargets]
    .filter(([fd, target]) => before.fdTargets.get(fd) !== target)
    .map(([fd, target]) => `${fd} → ${target}`);
  assert.equal(after.fds, before.fds, `file descriptors left open: ${opened.join(', ')}`);
}

/** The skip reason for tests that need root, or false when running as root. */
export const needsRoot: string | false =
  process.getuid?.() === 0 ? false : 'needs root: mounts and namespaces are real here';
