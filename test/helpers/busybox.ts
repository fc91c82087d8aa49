// Build directories for tests: a busybox input root (the demo's own layout) and a temporary
// directory.
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { constants, mknodat } from '../../src/syscalls/index.js';

export { busyboxPath, populateBusyboxRoot } from '../../src/cli/busybox-root.js';

/** A build directory in a fresh temporary directory, with an input root `root` and a
 * temporary directory `tmp` in it. Call remove() when done. */
export interface BuildDirectory {
  readonly path: string;
  remove(): void;
}

/** Makes `path` and every directory beneath it 0777, as bb_worker creates an action's
 * directories (0777 less its umask): an action that runs as other ids than their owner's
 * (runCommandsAs, or the host ids of its own user namespace) writes its outputs there. */
export function writableByActions(path: string): void {
  chmodSync(path, 0o777);
  for (const entry of readdirSync(path)) {
    const child = join(path, entry);
    if (lstatSync(child).isDirectory()) writableByActions(child);
  }
}

/** A FIFO at `path` that the action may open either way (0666, whatever the umask): a gate
 * between a test and an action that runs as another uid. */
export function makeFifo(path: string): void {
  mknodat(null, path, constants.S_IFIFO | 0o666, 0, 0);
  chmodSync(path, 0o666);
}

export function makeBuildDirectory(prefix = 'chroot-runner-test-'): BuildDirectory {
  const path = mkdtempSync(join(tmpdir(), prefix));
  populateBusyboxRoot(join(path, 'root'));
  mkdirSync(join(path, 'tmp'));
  writableByActions(join(path, 'root'));
  writableByActions(join(path, 'tmp'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Compiles a test's C helper, static (it runs in input roots without a libc). */
export function compileStaticHelper(source: string, output: string): void {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', output, source]);
}
