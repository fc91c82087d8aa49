// Build directories for tests: a busybox input root (the demo's own layout) and a temporary
// directory.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';

export { busyboxPath, populateBusyboxRoot } from '../../src/cli/busybox-root.js';

/** A build directory in a fresh temporary directory, with an input root `root` and a
 * temporary directory `tmp` in it. Call remove() when done. */
export interface BuildDirectory {
  readonly path: string;
  remove(): void;
}

export function makeBuildDirectory(prefix = 'chroot-runner-test-'): BuildDirectory {
  const path = mkdtempSync(join(tmpdir(), prefix));
  populateBusyboxRoot(join(path, 'root'));
  mkdirSync(join(path, 'tmp'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
