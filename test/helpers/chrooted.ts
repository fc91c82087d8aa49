// Command prefixes that run their command in a private mount namespace of its own, set up by
// a shell line first: chrooted, as the v2 guest's runner is (test/helpers/guest.ts), or with
// a file bound over (startup.test.ts' missing libraries). What they mount goes with the
// namespace when the command exits.

/** `setup` (a shell line, `$0` being `argument`) in a new private mount namespace, then
 * the command after `execPrefix`. */
export function inPrivateMountNamespace(
  setup: string,
  argument: string,
  execPrefix = '',
): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    `${setup} && exec ${execPrefix}"$@"`,
    argument,
  ];
}

/** `/` bound recursively on `directory` (an empty directory) and chrooted there: every path
 * is the same, but the root is not the namespace's, so the kernel refuses the command user
 * namespaces. */
export function chrootedPrefix(directory: string): string[] {
  return inPrivateMountNamespace('mount --rbind / "$0"', directory, 'chroot "$0" ');
}
