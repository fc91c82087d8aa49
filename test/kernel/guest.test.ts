// The cgroup tests again on cgroup v2 with every controller, on a second kernel (Linux 6.1),
// in an emulated guest (test/helpers/guest.ts). About two minutes on this 2-core machine; the
// guest is killed after ten.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runInGuest } from '../helpers/guest.js';
import { needsRoot } from '../helpers/leaks.js';

/** The test files that run in the guest too: the cgroup layer's, cloning into a cgroup, and
 * the engine's, in every mode. The guest's root is its initramfs (rootfs), which pivot_root refuses: namespaces mode's
 * actions take the switch_root-style fallback there (native/interpreter.c). */
const guestTests = [
  'dist/test/kernel/cgroups.test.js',
  'dist/test/kernel/clone-into-cgroup.test.js',
  'dist/test/kernel/sandbox-cgroups.test.js',
];

const insideGuest = process.env.CHROOT_RUNNER_GUEST === '1' ? 'already in the guest' : false;

describe('the cgroup tests on cgroup v2, in a Linux 6.1 guest', {
  skip: needsRoot || insideGuest,
}, () => {
  it('pass', { timeout: 900_000 }, async (t) => {
    const { exitCode, output } = await runInGuest(
      [process.execPath, '--test', '--test-reporter=tap', '--test-concurrency=1', ...guestTests],
      600_000,
    );
    assert.equal(exitCode, 0, output);
    assert.match(output, /^# pass [1-9]/m, output);
    assert.match(output, /^# fail 0$/m, output);
    assert.match(output, /^# skipped 0$/m, output);
    t.diagnostic(
      `in the guest: ${output
        .match(/^# (tests|pass|fail|todo|skipped) \d+$/gm)
        ?.map((line) => line.slice(2))
        .join(', ')}`,
    );
  });
});
