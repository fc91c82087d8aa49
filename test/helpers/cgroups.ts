// Cgroup trees for tests: a scope of the test's own (a unique name beneath the runner's
// cgroup on each hierarchy) and the proof that nothing of it is left.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  type CgroupLimits,
  type CgroupTree,
  cgroupLayout,
  chooseVersion,
  openCgroupTree,
  type ScopeLimits,
} from '../../src/cgroups/index.js';

export const MiB = 1024 * 1024;

/** Small limits for the tests' workloads: a 128 MiB allocation or 33 processes exceed them. */
export const limits: CgroupLimits = {
  memoryMaxBytes: 64 * MiB,
  memoryHighBytes: null,
  swapMaxBytes: 0,
  pidsMax: 32,
  cpuMaxMillicores: null,
  cpuWeight: null,
};

let scopes = 0;

/** A scope prefix no other test, here or in another engineer's suite, uses. */
export function uniqueScope(label: string): string {
  scopes += 1;
  return `chroot-runner-test-${label}-${process.pid}-${scopes}`;
}

/** Why cgroup tests cannot run here, or false. */
export const needsCgroups: string | false = (() => {
  if (process.getuid?.() !== 0) return 'needs root: cgroups are real here';
  try {
    chooseVersion(cgroupLayout(), 'auto');
    return false;
  } catch (error) {
    return `no usable cgroups: ${(error as Error).message}`;
  }
})();

/** No bound on all the tree's actions together, unless a test gives one. */
export const unboundedScope: ScopeLimits = { memoryMaxBytes: null, pidsMax: null };

export function openTestTree(label: string, scopeLimits = unboundedScope): CgroupTree {
  return openCgroupTree({ scopePrefix: uniqueScope(label), version: 'auto', scopeLimits });
}

/** Closes the tree and asserts that none of its directories is left. */
export function closeAndAssertGone(tree: CgroupTree): void {
  tree.close();
  for (const directory of tree.directories) {
    assert.equal(existsSync(directory), false, `cgroup left: ${directory}`);
  }
}
