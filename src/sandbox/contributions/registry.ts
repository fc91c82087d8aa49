// The per-action resources, in the order they are prepared (and torn down in reverse). A new
// one is one file of this folder and one line here.
import type { Contribution } from './contribution.js';
import { seccompFilter } from './seccomp-filter.js';
import { session } from './session.js';
import { sharedMounts } from './shared-mounts.js';
import { sharedNetwork } from './shared-network.js';

// The session's keyring step precedes the filter, which refuses keyctl.
export const contributions: readonly Contribution[] = [
  sharedMounts,
  sharedNetwork,
  session,
  seccompFilter,
];
