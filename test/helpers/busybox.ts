// A tiny static input root: Debian's busybox-static with its applets as symlinks in /bin.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const busyboxPath = '/bin/busybox';

const applets: readonly string[] = execFileSync(busyboxPath, ['--list'], { encoding: 'utf8' })
  .split('\n')
  .filter((name) => name !== '' && name !== 'busybox');

/** Lays out an input root at `root`: bin/busybox, bin/<applet> → busybox, usr/bin/env, and
 * empty proc, sys, dev and tmp directories. */
export function populateBusyboxRoot(root: string): void {
  for (const directory of ['bin', 'usr/bin', 'proc', 'sys', 'dev', 'tmp', 'etc']) {
    mkdirSync(join(root, directory), { recursive: true });
  }
  copyFileSync(busyboxPath, join(root, 'bin/busybox'));
  for (const applet of applets) symlinkSync('busybox', join(root, 'bin', applet));
  symlinkSync('../../bin/busybox', join(root, 'usr/bin/env'));
}

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
