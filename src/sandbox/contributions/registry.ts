// The per-action resources, in the order they are prepared (and torn down in reverse). A new
// one is one file of this folder and one line here.
import type { Contribution } from './contribution.js';
import { sharedMounts } from './shared-mounts.js';

export const contributions: readonly Contribution[] = [sharedMounts];
