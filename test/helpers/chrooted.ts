// A command prefix that runs its command chrooted, as the v2 guest's runner is
// (test/helpers/guest.ts), for the kernel's refusal of user namespaces to a chrooted process.

/** In a private mount namespace of its own, `/` bound recursively on `directory` (an empty
 * directory) and chrooted there: every path is the same, but the root is not the namespace's.
 * The bind goes with the namespace when the command exits. */
export function chrootedPrefix(directory: string): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --rbind / "$0" && exec chroot "$0" "$@"',
    directory,
  ];
}
