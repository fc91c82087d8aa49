// Proves that a test left nothing behind: no mount beneath its directories, no extra fd, no
// extra child process.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { it } from 'node:test';
import { openHandleCount } from '../../src/syscalls/index.js';

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

/** The children of this process or of pid, from every thread. */
export function childProcesses(pid: number | 'self' = 'self'): number[] {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    } catch (error) {
      // A thread that ended since the listing (a runtime's worker); its children, if any,
      // went to another thread of the process.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if (text !== '') children.push(...text.split(' ').map(Number));
  }
  return children.sort((a, b) => a - b);
}

/** How many threads of this process have the name `comm` (as /proc/<tid>/comm shows it). */
export function threadsNamed(comm: string): number {
  return readdirSync('/proc/self/task').filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, 'utf8') === `${comm}\n`;
    } catch {
      // A thread that ended since the listing.
      return false;
    }
  }).length;
}

/** Files that the runtime opens for a moment on its own threads, whatever the test does: glibc
 * reads overcommit_memory once, the first time a thread's malloc arena shrinks (shrink_heap). */
const transientRuntimeFiles = new Set(['/proc/sys/vm/overcommit_memory']);

/** The open fds of this process or of pid (fd number → link target). */
export function openFds(pid: number | 'self' = 'self'): Map<string, string> {
  const fdTargets = new Map<string, string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!transientRuntimeFiles.has(target)) fdTargets.set(fd, target);
    } catch {
      // The directory listing's own fd, closed by now.
    }
  }
  return fdTargets;
}

export function processState(): ProcessState {
  const fdTargets = openFds();
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
  const changed = (from: ProcessState, to: ProcessState) =>
    [...to.fdTargets]
      .filter(([fd, target]) => from.fdTargets.get(fd) !== target)
      .map(([fd, target]) => `${fd} → ${target}`)
      .join(', ');
  assert.equal(
    after.fds,
    before.fds,
    `file descriptors opened: ${changed(before, after)}; closed: ${changed(after, before)}`,
  );
}

/** The skip reason for tests that need root, or false when running as root. */
export const needsRoot: string | false =
  process.getuid?.() === 0 ? false : 'needs root: mounts and namespaces are real here';

/** A test that must leave nothing behind: mounts beneath `directory()`, fds, children and
 * the addon's handles are checked after it. */
export function leakFree(name: string, directory: () => string, body: () => Promise<void>): void {
  it(name, { skip: needsRoot, timeout: 60_000 }, async () => {
    const state = processState();
    const handles = openHandleCount();
    await body();
    assertNothingLeft(state, [directory()]);
    assert.equal(openHandleCount(), handles, 'handles left open');
  });
}
