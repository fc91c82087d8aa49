// A tiny static input root: Debian's busybox-static with its applets as symlinks in /bin.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

export const busyboxPath = '/bin/busybox';

/** Lays out an input root at `root`: bin/busybox, bin/<applet> → busybox, usr/bin/env, and
 * empty proc, sys, dev, tmp and etc directories. */
export function populateBusyboxRoot(root: string): void {
  const applets = execFileSync(busyboxPath, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((name) => name !== '' && name !== 'busybox');
  for (const directory of ['bin', 'usr/bin', 'proc', 'sys', 'dev', 'tmp', 'etc']) {
    mkdirSync(join(root, directory), { recursive: true });
  }
  copyFileSync(busyboxPath, join(root, 'bin/busybox'));
  for (const applet of applets) symlinkSync('busybox', join(root, 'bin', applet));
  symlinkSync('../../bin/busybox', join(root, 'usr/bin/env'));
}
