// The per-action resources, in the order they are prepared (and torn down in reverse). A new
// one is one file of this folder and one line here.
import { cgroup } from './cgroup.js';
import type { Contribution } from './contribution.js';
import { sharedMounts } from './shared-mounts.js';

// The cgroup first: torn down last, it kills whatever the others' teardown did not end.
export const contributions: readonly Contribution[] = [cgroup, sharedMounts];
