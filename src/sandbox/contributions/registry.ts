// The per-action resources, in the order they are prepared (and torn down in reverse). A new
// one is one file of this folder and one line here.
import { cgroup } from './cgroup.js';
import type { Contribution } from './contribution.js';
import { network } from './network.js';
import { seccompFilter } from './seccomp-filter.js';
import { session } from './session.js';
import { sharedMounts } from './shared-mounts.js';
import { userNamespace } from './user-namespace.js';

// The cgroup first: torn down last, it kills whatever the others' teardown did not end. The
// user namespace after shared mode's mounts: its steps follow their procfs mount, which needs
// the runner's privileges. The session's keyring step precedes the filter, which refuses
// keyctl.
export const contributions: readonly Contribution[] = [
  cgroup,
  sharedMounts,
  network,
  userNamespace,
  session,
  seccompFilter,
];
