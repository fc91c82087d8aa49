// `chroot-runner doctor` where each mode works and where it doesn't: as root, as uid 65534
// without capabilities, in a user namespace whose max_user_namespaces is 0, with /proc masked
// as container runtimes do, and with a build directory on FUSE without allow_other. Every
// unusual setting lives in a namespace of the test's own: nothing on the host is reconfigured.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { lostWithoutCgroups } from '../../src/cgroups/index.js';
import {
  type CheckResult as Check,
  decodeCapabilities,
  detectFeatures,
  isolationModeSupport,
  type ModeSupport,
} from '../../src/doctor/index.js';
import { chrootedPrefix } from '../helpers/chrooted.js';
import {
  assertNothingLeft,
  mountPoints,
  mountsBeneath,
  needsRoot,
  processState,
} from '../helpers/leaks.js';
import { binary } from '../helpers/serve.js';
import { unprivileged } from '../helpers/unprivileged.js';

interface Report {
  readonly status: number | null;
  readonly stdout: string;
  readonly checks: Record<string, Check>;
  readonly modes: Record<string, ModeSupport>;
}

/** Runs `doctor --json` through `prefix` (e.g. setpriv) and parses what it printed. */
function doctor(prefix: readonly string[], args: readonly string[] = []): Report {
  const argv = [...prefix, process.execPath, binary, 'doctor', '--json', ...args];
  const result = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' });
  assert.equal(result.stderr, '', `doctor wrote to stderr: ${result.stderr}`);
  const parsed = JSON.parse(result.stdout) as {
    checks: Record<string, Check>;
    modes: ModeSupport[];
  };
  return {
    status: result.status,
    stdout: result.stdout,
    checks: parsed.checks,
    modes: Object.fromEntries(parsed.modes.map((mode) => [mode.mode, mode])),
  };
}

/** Runs argv[1..] under a seccomp filter that fails the syscall DENIED with EPERM, as the
 * default profiles of container runtimes do for what they refuse. */
const denyingSource = `#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DENIED, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
  if (argc < 2 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return 125;
  execvp(argv[1], argv + 1);
  perror(argv[1]);
  return 127;
}
`;

let helpers: string | undefined;

/** The path of a helper that runs its arguments with `syscall` refused (compiled once). */
function denyingSyscall(syscall: string): string {
  helpers ??= mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-helpers-'));
  const source = join(helpers, 'deny.c');
  const helper = join(helpers, `deny-${syscall}`);
  if (!existsSync(helper)) {
    writeFileSync(source, denyingSource);
    const compiled = spawnSync(
      'gcc',
      ['-Wall', '-Werror', `-DDENIED=SYS_${syscall}`, '-o', helper, source],
      { encoding: 'utf8' },
    );
    assert.equal(compiled.status, 0, compiled.stderr);
  }
  return helper;
}

after(() => {
  if (helpers !== undefined) rmSync(helpers, { recursive: true, force: true });
});

function hostMaxUserNamespaces(): string {
  return readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim();
}

function leakFree(name: string, body: () => Promise<void> | void): void {
  it(name, { skip: needsRoot, timeout: 60_000 }, async () => {
    const state = processState();
    await body();
    assertNothingLeft(state, []);
  });
}

describe('feature detection', () => {
  it('decodes capability masks from /proc/self/status', () => {
    assert.deepEqual(decodeCapabilities('0000000000000000'), []);
    assert.deepEqual(decodeCapabilities('0000000000200000'), ['SYS_ADMIN']);
    assert.deepEqual(decodeCapabilities('00000000a80425fb').slice(0, 3), [
      'CHOWN',
      'DAC_OVERRIDE',
      'FOWNER',
    ]);
    const all = decodeCapabilities('000001ffffffffff');
    assert.equal(all.length, 41);
    assert.equal(all.at(-1), 'CHECKPOINT_RESTORE');
  });

  leakFree(
    'finds, as root, everything namespaces mode needs, and leaves nothing behind',
    async () => {
      const features = await detectFeatures({ buildDirectory: tmpdir() });
      const { checks } = features;
      for (const check of [
        checks.mountApi,
        checks.openat2,
        checks.mountSetattr,
        checks.clonePidfd,
        checks.namespaces,
        checks.buildDirectory,
      ]) {
        assert.equal(check?.status, 'ok', `${check?.title}: ${check?.detail}`);
      }
      assert.equal(features.canMountHere, true);
      assert.ok(features.privileges.effective.includes('SYS_ADMIN'));
      const modes = isolationModeSupport(features);
      assert.deepEqual(
        modes.filter((mode) => mode.available).map((mode) => mode.mode),
        ['namespaces', 'shared', 'none', 'rootless'],
      );
    },
  );
});

describe('chroot-runner doctor', () => {
  leakFree('as root: every mode works; exit 0', () => {
    const result = spawnSync(process.execPath, [binary, 'doctor'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^ {2}namespaces {2}available$/m);
    assert.match(result.stdout, /^ {2}shared {6}available$/m);
    assert.match(result.stdout, /^ {2}none {8}available$/m);
    assert.match(result.stdout, /^ {2}rootless {4}available$/m);
  });

  leakFree('with a build directory that does not exist: no mode works; exit 1', () => {
    const report = doctor([], ['--build-directory', '/nonexistent/build']);
    assert.equal(report.status, 1);
    assert.match(report.checks.buildDirectory?.detail ?? '', /ENOENT/);
    for (const mode of Object.values(report.modes)) {
      assert.match(mode.reason, /^build directory \/nonexistent\/build: cannot be reached/);
    }
  });

  leakFree(
    'as uid 65534 without capabilities: namespaces needs root or CAP_SYS_ADMIN, rootless works',
    () => {
      const report = doctor(unprivileged, ['--probe']);
      assert.equal(report.status, 0);
      assert.equal(
        report.checks.capabilities?.detail,
        'uid 65534; effective: none; bounding set: none',
      );
      const { namespaces, shared, none, rootless } = report.modes;
      assert.equal(namespaces?.available, false);
      assert.match(namespaces?.reason ?? '', /root or CAP_SYS_ADMIN/);
      assert.match(namespaces?.fix ?? '', /CAP_SYS_ADMIN/);
      assert.equal(shared?.available, false);
      assert.match(none?.reason ?? '', /root or CAP_SYS_CHROOT/);
      // This host lets unprivileged users create user namespaces (../shared/FACTS.md): a
      // probe action runs in rootless mode.
      assert.notEqual(hostMaxUserNamespaces(), '0');
      assert.equal(rootless?.available, true, rootless?.reason);
      assert.equal(report.checks.namespaces?.status, 'unavailable');
      assert.equal(report.checks.userNamespaces?.status, 'ok');
      assert.equal(report.checks.procInUserNamespace?.status, 'ok');
      // This host's cgroups are root's: a rootless runner's actions get none, and doctor
      // names what they lose.
      assert.equal(report.checks.cgroup?.status, 'unavailable');
      assert.ok(
        report.checks.cgroup?.detail.endsWith(lostWithoutCgroups),
        report.checks.cgroup?.detail,
      );
    },
  );

  leakFree(
    'chrooted: shared mode gets no user namespace per action, namespaces mode does; doctor says what is lost',
    () => {
      const chroot = mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-chroot-'));
      try {
        const host = doctor([]).checks.actionUserNamespaces;
        assert.equal(host?.status, 'ok', host?.detail);
        assert.match(host?.detail ?? '', /^given in namespaces and shared mode/);
        const report = doctor(chrootedPrefix(chroot));
        const check = report.checks.actionUserNamespaces;
        assert.equal(check?.status, 'unavailable');
        assert.match(check?.detail ?? '', /^refused in shared mode: unshare failed with EPERM/);
        assert.match(check?.detail ?? '', /given in namespaces mode .*chrooted process/);
        assert.match(check?.detail ?? '', /uid 0 is the host's root/);
        assert.match(check?.fix ?? '', /actionUserNamespace\.enabled: false/);
      } finally {
        rmdirSync(chroot);
      }
    },
  );

  leakFree('in a user namespace whose max_user_namespaces is 0: rootless names it', () => {
    const before = hostMaxUserNamespaces();
    // The sysctl is per user namespace: writing it in a new one leaves the host's as it was.
    const report = doctor([
      'unshare',
      '--user',
      '--map-root-user',
      'sh',
      '-c',
      'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"',
      'sh',
    ]);
    assert.equal(hostMaxUserNamespaces(), before);
    assert.notEqual(before, '0');
    const { rootless, none } = report.modes;
    assert.equal(rootless?.supported, false);
    assert.match(rootless?.reason ?? '', /max_user_namespaces is 0/);
    assert.match(rootless?.fix ?? '', /max_user_namespaces/);
    assert.equal(report.checks.userNamespaceSysctls?.status, 'unavailable');
    assert.match(report.checks.userNamespaces?.detail ?? '', /ENOSPC/);
    // Root in a nested user namespace cannot mount in the mount namespace it inherited.
    assert.match(report.modes.namespaces?.reason ?? '', /own mount namespace/);
    assert.equal(none?.available, true);
    assert.equal(report.status, 0);
  });

  leakFree('with /proc masked as container runtimes do: rootless names /proc', () => {
    // In a private mount namespace, mask an entry of every whole-procfs mount (other tests
    // leave some around), as Docker masks /proc/keys; a fresh procfs is then refused in a
    // user namespace (mount_too_revealing).
    const mask =
      "for p in $(sed -n 's/^[^ ]* [^ ]* [^ ]* \\/ \\([^ ]*\\) .* - proc .*/\\1/p' /proc/self/mountinfo | sort -u); do " +
      'mount --bind /dev/null "$p/keys" || exit 1; done; exec "$@"';
    const report = doctor(['unshare', '--mount', 'sh', '-c', mask, 'sh', ...unprivileged]);
    assert.ok(!mountPoints().includes('/proc/keys'), 'the mask leaked to the host');
    assert.equal(report.checks.procVisible?.status, 'unavailable');
    assert.match(report.checks.procVisible?.detail ?? '', /\/proc\/keys/);
    assert.equal(report.checks.procInUserNamespace?.status, 'unavailable');
    assert.match(report.checks.procInUserNamespace?.detail ?? '', /EPERM/);
    const { rootless } = report.modes;
    assert.equal(rootless?.supported, false);
    assert.match(rootless?.reason ?? '', /fully visible \/proc/);
    assert.match(rootless?.fix ?? '', /procMount: Unmasked/);
  });

  leakFree("under a seccomp filter that refuses pivot_root (as Docker's default): names it", () => {
    const report = doctor([denyingSyscall('pivot_root')]);
    assert.equal(report.checks.namespaces?.status, 'unavailable');
    assert.match(report.checks.namespaces?.detail ?? '', /^pivot_root failed with EPERM/);
    assert.equal(report.checks.seccomp?.status, 'unavailable');
    assert.match(report.checks.seccomp?.detail ?? '', /pivot_root refused with EPERM/);
    const { namespaces, shared } = report.modes;
    assert.equal(namespaces?.available, false);
    assert.match(namespaces?.fix ?? '', /allow pivot_root in the seccomp profile/);
    // shared mode chroots instead.
    assert.equal(shared?.available, true);
    assert.equal(report.status, 0);
  });

  leakFree('--probe runs an action in each available mode, and leaves nothing behind', () => {
    // Its own temporary directory: other suites' probes come and go in the shared one.
    const temporary = mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-tmp-'));
    const result = spawnSync(process.execPath, [binary, 'doctor', '--probe'], {
      encoding: 'utf8',
      env: { ...process.env, TMPDIR: temporary },
    });
    const mounted = mountsBeneath(temporary);
    const left = readdirSync(temporary);
    if (mounted.length === 0) rmSync(temporary, { recursive: true, force: true });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    for (const mode of ['namespaces', 'shared', 'none']) {
      assert.match(
        result.stdout,
        new RegExp(`^  ${mode} +available \\(a probe action ran\\)$`, 'm'),
      );
    }
    assert.deepEqual(mounted, []);
    assert.deepEqual(left, []);
  });

  leakFree('--probe catches what the checks cannot see: a seccomp filter refusing chroot', () => {
    const report = doctor([denyingSyscall('chroot')], ['--probe']);
    const { namespaces, shared, none } = report.modes;
    assert.equal(namespaces?.available, true, namespaces?.reason);
    for (const mode of [shared, none]) {
      assert.equal(mode?.available, false);
      assert.match(mode?.reason ?? '', /could not run: .*chroot/);
      assert.match(mode?.fix ?? '', /allow chroot in the seccomp profile/);
    }
  });

  const bindfs = spawnSync('sh', ['-c', 'command -v bindfs']).status === 0;
  leakFree('with a build directory on FUSE without allow_other: names allow_other', () => {
    if (!bindfs) assert.fail('bindfs is not installed (apt-get install bindfs)');
    const base = mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-'));
    const source = join(base, 'source');
    const mounted = join(base, 'build');
    mkdirSync(source);
    mkdirSync(mounted);
    try {
      // A PID namespace of its own, so that the FUSE daemon dies and is reaped with it.
      const withFuse = (prefix: readonly string[]): Report =>
        doctor(
          [
            'unshare',
            '--mount',
            '--pid',
            '--fork',
            'sh',
            '-c',
            'bindfs --no-allow-other "$1" "$2" || exit 1; shift 2; "$@"; status=$?; fusermount -u "$0"; exit $status',
            mounted,
            source,
            mounted,
            ...prefix,
          ],
          ['--build-directory', mounted],
        );
      const asRoot = withFuse([]).checks.buildDirectory;
      assert.equal(asRoot?.status, 'ok', asRoot?.detail);
      assert.match(asRoot?.detail ?? '', /\(FUSE\)/);
      // unshare makes its mount namespace private: the worker's later mounts would not arrive.
      assert.match(asRoot?.detail ?? '', /propagation: private/);
      const asNobody = withFuse(unprivileged).checks.buildDirectory;
      assert.equal(asNobody?.status, 'unavailable');
      assert.match(asNobody?.detail ?? '', /without allow_other/);
      assert.match(asNobody?.fix ?? '', /allow_other/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
    assert.ok(!mountPoints().includes(mounted), 'the FUSE mount leaked to the host');
  });
});
