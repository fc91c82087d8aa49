// Running the runner as Buildbarn's example deployments do: uid and gid 65534, no capabilities.
import { execFileSync } from 'node:child_process';
import { type BuildDirectory, makeBuildDirectory } from './busybox.js';
import { binary } from './serve.js';

/** A command prefix: uid and gid 65534, no groups, no capabilities at all, no_new_privs. */
export const unprivileged: readonly string[] = [
  'setpriv',
  '--reuid=65534',
  '--regid=65534',
  '--clear-groups',
  '--inh-caps=-all',
  '--bounding-set=-all',
  '--no-new-privs',
];

/** A command prefix for an ordinary host user: uid and gid 65534, a login shell's bounding
 * set and no no_new_privs, under which a setuid bit or a file capability takes effect (it
 * never does under `unprivileged`): what an attack on the host's other users runs as. */
export const hostUser: readonly string[] = [
  'setpriv',
  '--reuid=65534',
  '--regid=65534',
  '--clear-groups',
];

/** A busybox build directory (see makeBuildDirectory) owned by uid and gid 65534. */
export function makeUnprivilegedBuildDirectory(prefix?: string): BuildDirectory {
  const build = makeBuildDirectory(prefix);
  execFileSync('chown', ['-R', '65534:65534', build.path]);
  return build;
}

/** `chroot-runner run --isolation rootless --input-root ROOT` as uid 65534: a command line to
 * which options, `--` and the action's argv are appended. */
export function rootlessRunCommand(inputRoot: string): string[] {
  return [
    ...unprivileged,
    process.execPath,
    binary,
    'run',
    '--isolation',
    'rootless',
    '--input-root',
    inputRoot,
  ];
}
