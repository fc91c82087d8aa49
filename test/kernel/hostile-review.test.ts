// A second review's attacks (2026-12-01, on 5f48d8c), tried as a hostile action would from
// inside its sandbox in namespaces, shared and rootless mode (the runner as root), in the style
// of test/kernel/hostile-outside.test.ts: each case ends with nothing left and the host
// unchanged. Those marked `todo` are open on that commit (the reason says why); the others
// are attacks that were tried and held, kept so that they stay held.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe } from 'node:test';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { defaultIsolation } from '../../src/sandbox/defaults.js';
import { HostResources } from '../../src/sandbox/host.js';
import type { ActionError } from '../../src/sandbox/index.js';
import { specialMounts } from '../../src/sandbox/special-mounts.js';
import { RunnerClient } from '../../src/server/client.js';
import { makeFifo } from '../helpers/busybox.js';
import { openEngine, runAction } from '../helpers/engine.js';
import { ownMountNamespace } from '../helpers/hostile.js';
import { HostileActions } from '../helpers/hostile-actions.js';
import { needsRoot } from '../helpers/leaks.js';
import { binary, ServeProcess, writeServeConfiguration } from '../helpers/serve.js';
import { hostUser } from '../helpers/unprivileged.js';

// The host these tests compare before and after is this file's alone.
await ownMountNamespace(import.meta.url);

type Mode = 'namespaces' | 'shared' | 'rootless';
const modes: readonly Mode[] = ['namespaces', 'shared', 'rootless'];

/** The C source of this review's attack helper. */
const reviewSource = new URL('../../../test/helpers/hostile-review.c', import.meta.url).pathname;

let review: string;
const suite = new HostileActions('chroot-runner-review-', () => ({ 'bin/review': review }));
const { contained, actionDirectory, spec, run } = suite;

before(() => {
  if (needsRoot !== false) return;
  // An unprivileged host user must reach the files an action leaves, as on a worker whose
  // build directory other users may traverse.
  chmodSync(suite.build.path, 0o755);
  review = join(suite.build.path, 'review');
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-Werror', '-o', review, reviewSource]);
});

/** The helper run on the host, as root. */
function onHost(args: readonly string[]): string {
  return execFileSync(review, args, { encoding: 'utf8' });
}

/** The files R1 leaves, checked from the host: no capability, and a host user running them
 * stays who they are (or cannot run them at all: the action, not the owner of its stdout log,
 * could not make it executable). */
function assertNoCapabilities(files: readonly string[]): void {
  for (const file of files) {
    assert.match(onHost(['getcap', file]), /^no-caps ENODATA\n$/, `${file} has capabilities`);
    const ran = spawnSync(hostUser[0] ?? 'setpriv', [...hostUser.slice(1), file, 'become-root'], {
      encoding: 'utf8',
    });
    if (ran.status !== 0) {
      assert.match(ran.stderr, /Permission denied/, `${file}: ${ran.stderr}`);
      continue;
    }
    assert.doesNotMatch(
      ran.stdout,
      /^uid 0 /,
      `an unprivileged host user became root through ${file}`,
    );
  }
}

/** R1's script: file capabilities on a file of the input root, of /tmp, and on the stdout log
 * made an ELF (fd 3; the messages go to stderr), last, as a later write would clear it. */
const capabilityScript =
  'exec 3>&1 >&2; cp /bin/review /capable; review setcap /capable; ' +
  'cp /bin/review /tmp/capable; review setcap /tmp/capable; ' +
  'cat /bin/review >&3; chmod 755 /proc/self/fd/3; review setcap /proc/self/fd/3';

/** The owners (`review userns-owner`) of the user namespaces of this process's children that
 * are in another than its own: the inits of the actions it runs. */
function actionNamespaceOwners(): string[] {
  const own = readlinkSync('/proc/self/ns/user');
  const children = readdirSync('/proc/self/task').flatMap((task) =>
    readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter(Boolean),
  );
  return children
    .filter((pid) => readlinkSync(`/proc/${pid}/ns/user`) !== own)
    .map((pid) => onHost(['userns-owner', pid]));
}

/** Two slots of host ids of this process's own: what R4's cases make an action's ids hold is
 * then held by no action of another runner (other suites on this machine), whose first slot
 * is the default range's. */
const ownRange = {
  firstHostId: 0x40000000 + (process.pid % 8192) * 2 * 65536,
  idCount: 65536,
  concurrentActions: 2,
};
const ownRangeIsolation = (mode: Mode) => ({
  isolation: { ...defaultIsolation, mode, actionUserNamespace: ownRange },
});

/** fs.inotify.max_user_instances: per user, host-wide for the init user namespace. */
const inotifyLimit = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));

for (const mode of modes) {
  describe(`a hostile action stays inside, second review (${mode})`, () => {
    contained(
      'R1. leaves no file capability on its outputs, its /tmp or its stdout log',
      {},
      async () => {
        const name = actionDirectory();
        const action = spec(mode, name, capabilityScript);
        await run(action);
        assertNoCapabilities([
          join(suite.build.path, name, 'root/capable'),
          join(suite.build.path, name, 'tmp/capable'),
          join(suite.build.path, action.stdoutPath),
        ]);
      },
    );

    contained(
      'R2. opens no AF_VSOCK socket (the host’s and hypervisor’s port space, past its network namespace)',
      {},
      async () => {
        const stdout = await run(spec(mode, actionDirectory(), 'review vsock'));
        // EAFNOSUPPORT where the machine has no vsock transport.
        assert.match(stdout, /^vsock-refused (EPERM|EAFNOSUPPORT)\n$/, stdout);
      },
    );

    contained('R3. writes no record into the host’s audit log', {}, async () => {
      const stdout = await run(
        spec(mode, actionDirectory(), 'review audit "op=login acct=root res=success"'),
      );
      assert.match(stdout, /^audit-refused (EPERM|ECONNREFUSED|EPROTONOSUPPORT)\n$/, stdout);
    });

    contained(
      'R4. cannot use up the host root’s inotify instances while it runs',
      {},
      async (t) => {
        if (!(inotifyLimit > 0 && inotifyLimit < 100_000)) {
          return t.skip(`max_user_instances is ${inotifyLimit}`);
        }
        const name = actionDirectory((_, directory) => {
          for (const fifo of ['ready', 'gate']) {
            makeFifo(join(directory, 'tmp', fifo));
          }
        });
        const tmp = join(suite.build.path, name, 'tmp');
        const running = run(
          spec(mode, name, 'review inotify-hold /tmp/ready /tmp/gate', ownRangeIsolation(mode)),
        );
        let onHostWhileHeld: string;
        try {
          await readFile(join(tmp, 'ready'), 'utf8');
          onHostWhileHeld = onHost(['inotify-one']);
        } finally {
          await writeFile(join(tmp, 'gate'), 'go\n');
        }
        await running;
        assert.equal(
          onHostWhileHeld,
          'inotify-ok\n',
          'the action used up root’s inotify instances',
        );
      },
    );

    contained(
      'R4. two actions at once: each holds all the inotify instances its user may have and the other still gets all of its own; each user namespace has an owner of its own, not root',
      {},
      async (t) => {
        if (!(inotifyLimit > 0 && inotifyLimit < 100_000)) {
          return t.skip(`max_user_instances is ${inotifyLimit}`);
        }
        const names = [0, 1].map(() =>
          actionDirectory((_, directory) => {
            for (const fifo of ['ready', 'gate']) makeFifo(join(directory, 'tmp', fifo));
          }),
        );
        // One engine, as one runner runs its actions.
        const { buildDirectory, isolation } = spec(
          mode,
          names[0] ?? '',
          'true',
          ownRangeIsolation(mode),
        );
        const engine = await openEngine(buildDirectory, isolation);
        const running: Promise<unknown>[] = [];
        const held: number[] = [];
        let owners: string[] = [];
        let onHostWhileHeld = '';
        try {
          for (const name of names) {
            const {
              buildDirectory: _,
              isolation: __,
              ...action
            } = spec(mode, name, 'review inotify-hold /tmp/ready /tmp/gate');
            const ran = engine.run(action);
            running.push(ran);
            const ready = await Promise.race([
              readFile(join(suite.build.path, name, 'tmp', 'ready'), 'utf8'),
              ran.then(() => assert.fail('the action ended before it held its instances')),
            ]);
            held.push(Number(ready));
          }
          owners = actionNamespaceOwners();
          onHostWhileHeld = onHost(['inotify-one']);
        } finally {
          // Only the actions that hold are waiting on their gate.
          for (const name of names.slice(0, held.length)) {
            await writeFile(join(suite.build.path, name, 'tmp', 'gate'), 'go\n');
          }
          await Promise.allSettled(running);
          await engine.close();
        }
        await Promise.all(running);
        // Before, both were charged to the namespaces' owner, root: the second got none.
        assert.deepEqual(
          held,
          [inotifyLimit, inotifyLimit],
          'an action used up another’s (or root’s) inotify instances',
        );
        assert.equal(onHostWhileHeld, 'inotify-ok\n', 'the actions used up root’s instances');
        // Each owned by the host id of its slot's uid 0 (before: both by uid 0).
        const { firstHostId, idCount } = ownRange;
        assert.deepEqual(
          owners.sort(),
          [`owner ${firstHostId}\n`, `owner ${firstHostId + idCount}\n`],
          'the owners of the actions’ user namespaces',
        );
      },
    );

    contained(
      'R4. two actions at once: one holds all the pipe buffers its host uid may have, and the other’s pipes keep their size',
      {},
      async () => {
        const [holder, other] = [0, 1].map(() =>
          actionDirectory((_, directory) => {
            for (const fifo of ['ready', 'gate']) makeFifo(join(directory, 'tmp', fifo));
          }),
        );
        const { buildDirectory, isolation } = spec(
          mode,
          holder ?? '',
          'true',
          ownRangeIsolation(mode),
        );
        const engine = await openEngine(buildDirectory, isolation);
        /** Runs on the one engine; its stdout once it has run. */
        const action = (name: string, script: string) => {
          const { buildDirectory: _, isolation: __, ...rest } = spec(mode, name, script);
          return {
            ran: engine.run(rest),
            stdout: () => readFileSync(join(suite.build.path, rest.stdoutPath), 'utf8'),
          };
        };
        const tmp = join(suite.build.path, holder ?? '', 'tmp');
        const holding = action(holder ?? '', 'review pipe-hold /tmp/ready /tmp/gate');
        let sizing: ReturnType<typeof action> | undefined;
        try {
          await Promise.race([
            readFile(join(tmp, 'ready'), 'utf8'),
            holding.ran.then(() => assert.fail('the action ended before it held its pipes')),
          ]);
          // While the holder holds them.
          sizing = action(other ?? '', 'review pipe-size');
          await sizing.ran;
        } finally {
          if (sizing !== undefined) await writeFile(join(tmp, 'gate'), 'go\n');
          await Promise.allSettled([holding.ran, sizing?.ran]);
          await engine.close();
        }
        // fs.pipe-user-pages-soft is per host uid: a uid past it gets pipes of 2 pages.
        assert.match(holding.stdout(), /^pipes-held EPERM\n$/, holding.stdout());
        assert.equal(
          sizing?.stdout(),
          'pipe-size 65536\n',
          'the other action shares the holder’s host uid',
        );
      },
    );

    contained(
      'R5. reads none of the host-wide kernel internals that container runtimes mask',
      {},
      async () => {
        // runc's and containerd's masked paths, plus the physical page files and key-users,
        // which they leave to a dropped CAP_SYS_ADMIN; what a kernel lacks is not asked for.
        // Masked, or refused by the kernel where only the host's root may read them and the
        // action's ids are never it (the next cases).
        const files = [
          '/proc/kpageflags',
          '/proc/kpagecount',
          '/proc/kpagecgroup',
          '/proc/timer_list',
          '/proc/sched_debug',
          '/proc/keys',
          '/proc/key-users',
          '/proc/kcore',
          '/proc/latency_stats',
          '/proc/timer_stats',
          '/sys/kernel/vmcoreinfo',
        ].filter((path) => existsSync(path));
        const directories = [
          '/proc/acpi',
          '/proc/asound',
          '/proc/scsi',
          '/sys/firmware',
          '/sys/devices/virtual/powercap',
        ].filter((path) => existsSync(path) && readdirSync(path).length > 0);
        assert.ok(files.length > 0, 'this kernel has none of them');
        // What toolchains read stays: the JVM, Go and rustc size themselves from these.
        const kept = [
          '/proc/cpuinfo',
          '/proc/meminfo',
          '/proc/self/status',
          '/sys/devices/system/cpu/online',
        ];
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            [
              // First try to take the masks off (no CAP_SYS_ADMIN: EPERM).
              `umount -l ${[...files, ...directories].join(' ')} 2>/dev/null`,
              ...files.map(
                (path) =>
                  `[ "$(head -c 64 ${path} 2>/dev/null | wc -c)" -gt 0 ] && echo "read ${path}"`,
              ),
              ...directories.map(
                (path) => `[ -n "$(ls -A ${path} 2>/dev/null)" ] && echo "listed ${path}"`,
              ),
              ...kept.map(
                (path) =>
                  `[ "$(head -c 64 ${path} 2>/dev/null | wc -c)" -gt 0 ] || echo "lost ${path}"`,
              ),
              'true',
            ].join('; '),
          ),
        );
        assert.equal(stdout, '', stdout);
      },
    );

    contained(
      'R5. the masks stay read-only, mounted and its own: no write, remount or unmount',
      {},
      async () => {
        // Masks are clones of templates made once per engine (namespaces mode) or made per
        // action: either way read-only, and nothing of the templates is in the action's view.
        const files = ['/proc/keys', '/proc/key-users', '/proc/kpageflags', '/proc/timer_list']
          .filter((path) => existsSync(path))
          .slice(0, 2);
        const directories = ['/proc/acpi', '/sys/firmware'].filter(
          (path) => existsSync(path) && readdirSync(path).length > 0,
        );
        assert.ok(files.length > 0 && directories.length > 0, 'this kernel has no masked place');
        const masks = [...files, ...directories];
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            [
              ...masks.map(
                (path) =>
                  `mount -o remount,rw ${path} 2>/dev/null && echo "remounted ${path}"; ` +
                  `mount -o remount,bind,rw ${path} 2>/dev/null && echo "remounted ${path} rw"`,
              ),
              // The mask's own node: its times, mode and owner (the host's /dev/null's, for a
              // file mask) stay untouched; nothing can be made inside a directory mask.
              ...files.map(
                (path) =>
                  `touch ${path} 2>/dev/null && echo "touched ${path}"; ` +
                  `chmod 600 ${path} 2>/dev/null && echo "chmod ${path}"; ` +
                  `chown 1:1 ${path} 2>/dev/null && echo "chown ${path}"`,
              ),
              ...directories.map(
                (path) =>
                  `mkdir ${path}/made 2>/dev/null && echo "made ${path}/made"; ` +
                  `touch ${path} 2>/dev/null && echo "touched ${path}"`,
              ),
              // Each mask once, where the table puts it, and no template anywhere in view.
              ...masks.map(
                (path) =>
                  `[ "$(grep -c " ${path} " /proc/self/mountinfo)" = 1 ] || echo "not one mount at ${path}"`,
              ),
              'grep masked- /proc/self/mountinfo',
              'ls -d /masked-* 2>/dev/null',
              ...masks.map((path) => `umount ${path} 2>/dev/null; umount -l ${path} 2>/dev/null`),
              ...masks.map(
                (path) => `grep -q " ${path} ro," /proc/self/mountinfo || echo "unmasked ${path}"`,
              ),
              'true',
            ].join('; '),
          ),
        );
        assert.equal(stdout, '', stdout);
      },
    );

    contained(
      'R5. the host root’s files left unmasked are refused to its uid 0: no read, write or chmod',
      {},
      async () => {
        // What the engine does not mask or bind read-only, since its actions' ids are never
        // the host's uid 0 (IsolationStrategy.unprivilegedActionIds): the kernel must refuse
        // each, by owner and mode, whatever capabilities the action holds in its namespace.
        const host = HostResources.open();
        const skipped = [...host.hostRootOnlyEntries].map((at) => `/${at}`);
        host.close();
        for (const path of ['/proc/kpageflags', '/proc/timer_list', '/proc/irq']) {
          if (existsSync(path)) assert.ok(skipped.includes(path), `${path} is masked`);
        }
        assert.ok(skipped.length > 0, 'this kernel has no file only its root may use');
        const masked = new Set(
          specialMounts.filter((entry) => entry.source.kind === 'masked').map((e) => `/${e.at}`),
        );
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            [
              // EACCES or EPERM from the kernel's checks, not EROFS (a mount) nor ENOENT.
              'refused() { case "$1" in *"Permission denied"*|*"Operation not permitted"*) ;; *) echo "$2: $1";; esac; }',
              ...skipped.map(
                (path) => `grep -q " ${path} " /proc/self/mountinfo && echo "mounted ${path}"`,
              ),
              ...skipped
                .filter((path) => masked.has(path))
                .map(
                  (path) =>
                    `out=$(head -c 1 ${path} 2>&1 >/dev/null) && echo "read ${path}" || refused "$out" "read ${path}"; ` +
                    `out=$( (: >> ${path}) 2>&1) && echo "wrote ${path}" || refused "$out" "write ${path}"`,
                ),
              // Beneath a place bound read-only elsewhere: every file and directory.
              ...skipped
                .filter((path) => !masked.has(path))
                .map(
                  (path) =>
                    `for f in $(find ${path} ! -type l); do ` +
                    // procfs makes no file in a directory (ENOENT, as the host's root): its
                    // attributes and files are what is left to attack.
                    'if [ ! -d "$f" ]; then out=$( (: >> "$f") 2>&1) && echo "wrote $f" || refused "$out" "write $f"; fi; ' +
                    'out=$(chmod "$(stat -c %a "$f")" "$f" 2>&1) && echo "chmod $f" || refused "$out" "chmod $f"; ' +
                    'done',
                ),
              'true',
            ].join('\n'),
          ),
        );
        assert.equal(stdout, '', stdout);
      },
    );

    contained(
      'R5. where its uid 0 may be the host’s root (no user namespace per action), those files stay masked or read-only',
      {},
      async () => {
        const host = HostResources.open();
        const kept = [...host.hostRootOnlyEntries].map((at) => `/${at}`);
        host.close();
        assert.ok(kept.length > 0, 'this kernel has no file only its root may use');
        const { actionUserNamespace: _, ...withoutUserNamespace } = defaultIsolation;
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            [
              ...kept.map(
                (path) => `grep -q " ${path} ro," /proc/self/mountinfo || echo "unmasked ${path}"`,
              ),
              'true',
            ].join('; '),
            { isolation: { ...withoutUserNamespace, mode } },
          ),
        );
        assert.equal(stdout, '', stdout);
      },
    );

    // This file runs in a private mount namespace of its own: the runner's /proc changes here.
    if (mode === 'namespaces')
      contained(
        'R5. a file of the runner’s /proc covered by another mount keeps its mask: only the kernel’s own entry is judged',
        {},
        async () => {
          const path = '/proc/timer_list';
          assert.ok(existsSync(path), 'this kernel has no /proc/timer_list');
          // Root-only as the kernel's is, but not the kernel's: it tells nothing of that one.
          const cover = join(suite.build.path, 'cover');
          writeFileSync(cover, '', { mode: 0o400 });
          execFileSync('mount', ['--bind', cover, path]);
          try {
            const host = HostResources.open();
            const judged = host.hostRootOnlyEntries.has('proc/timer_list');
            host.close();
            assert.equal(judged, false, 'the cover was taken for the kernel’s entry');
            const stdout = await run(
              spec(
                mode,
                actionDirectory(),
                `grep -q " ${path} ro," /proc/self/mountinfo || echo "unmasked ${path}"`,
              ),
            );
            assert.equal(stdout, '', stdout);
          } finally {
            execFileSync('umount', [path]);
            unlinkSync(cover);
          }
        },
      );

    contained(
      'R6. a RunRequest cannot hand it the whole build directory as /tmp or as its root',
      {},
      async () => {
        const victim = actionDirectory();
        writeFileSync(join(suite.build.path, victim, 'root/secret'), 'another action’s\n');
        // A symlink that climbs back to the build directory, beneath it all the way.
        const name = actionDirectory((_, directory) => symlinkSync('..', join(directory, 'up')));
        for (const overrides of [
          { temporaryDirectory: '.' },
          { temporaryDirectory: `${name}/..` },
          { temporaryDirectory: `${name}/up` },
          // The build directory as the root: the program by its path there.
          {
            inputRoot: '.',
            arguments: [`/${name}/root/bin/sh`, '-c', `cat /${victim}/root/secret`],
          },
        ]) {
          const action = spec(
            mode,
            name,
            `cat /tmp/${victim}/root/secret /${victim}/root/secret`,
            overrides,
          );
          await assert.rejects(runAction(action), (error: ActionError) => {
            assert.equal(error.kind, 'invalidArgument', error.message);
            assert.match(error.message, /^Failed to open (temporary|input root) directory /);
            return true;
          });
        }
      },
    );

    // Held on 5f48d8c.

    contained(
      'the seccomp filter also sees the i386 entry (int 0x80): no setuid bit through it',
      {},
      async () => {
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            'cp /bin/review /a; cp /bin/review /b; review int80-getpid; ' +
              'review int80-setuid-bit /a 306; review int80-setuid-bit /b 452; ls -l /a /b',
          ),
        );
        const [getpid, fchmodat, fchmodat2] = stdout.split('\n');
        // The entry works (so the refusals below are the filter's, not a missing ABI).
        assert.equal(getpid, 'int80-getpid ok', stdout);
        assert.equal(fchmodat, 'int80-refused EPERM', stdout);
        assert.equal(fchmodat2, 'int80-refused EPERM', stdout);
        assert.doesNotMatch(stdout, /^-rws/m, stdout);
      },
    );

    contained(
      'x32 calls: refused where the kernel runs them, ENOSYS as on the host where it runs none',
      {},
      async () => {
        // The filter covers x32 only where the kernel runs its calls (x32SystemCalls):
        // elsewhere any x32 call fails ENOSYS, which is what the kernel itself answers.
        const onHostGetpid = onHost(['x32-getpid']).trim();
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            'cp /bin/review /a; review x32-getpid; review x32-setuid-bit /a; ls -l /a',
          ),
        );
        const [getpid, fchmodat] = stdout.split('\n');
        assert.equal(getpid, onHostGetpid, stdout);
        assert.equal(
          fchmodat,
          onHostGetpid === 'x32-getpid ok' ? 'x32-refused EPERM' : 'x32-refused ENOSYS',
          stdout,
        );
        assert.doesNotMatch(stdout, /^-rws/m, stdout);
      },
    );

    contained(
      'cannot set the host’s clock, shield itself from the OOM killer or raise its priorities',
      {},
      async () => {
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            'review settime-now; ' +
              '(echo -1000 > /proc/self/oom_score_adj) 2>/dev/null && echo oom-immune || echo oom-refused; ' +
              'renice -n -20 -p $$ >/dev/null 2>&1 && echo nice-raised || echo nice-refused; ' +
              'ionice -c 1 -p $$ >/dev/null 2>&1 && echo realtime-io || echo io-refused',
          ),
        );
        assert.equal(stdout, 'settime-refused EPERM\noom-refused\nnice-refused\nio-refused\n');
      },
    );

    contained(
      'sees nothing of another action running beside it: neither its files nor its processes',
      {},
      async () => {
        const victim = actionDirectory((_, directory) => {
          for (const fifo of ['ready', 'gate']) {
            makeFifo(join(directory, 'tmp', fifo));
          }
        });
        const tmp = join(suite.build.path, victim, 'tmp');
        // The attacker's script names the marker in two halves, so that its own command line
        // does not match.
        const [first, second] = ['victim-marker-', `${process.pid}-${suite.roots}`];
        const marker = first + second;
        const running = run(
          spec(
            mode,
            victim,
            `echo secret > /${marker}; echo secret > /tmp/${marker}; ` +
              `exec sh -c 'echo ready > /tmp/ready; cat /tmp/gate' ${marker}`,
          ),
        );
        let seen: string;
        try {
          await Promise.race([
            readFile(join(tmp, 'ready'), 'utf8'),
            running.then(() => assert.fail('the other action ended before it was ready')),
          ]);
          seen = await run(
            spec(
              mode,
              actionDirectory(),
              `m=${first}; m=\${m}${second}; find / -name "$m*" 2>/dev/null; ` +
                'grep -l "$m" /proc/[0-9]*/cmdline 2>/dev/null; true',
            ),
          );
        } finally {
          await writeFile(join(tmp, 'gate'), 'go\n');
        }
        await running;
        assert.equal(seen, '', `the action saw the other one: ${seen}`);
      },
    );

    contained(
      'leaves no immutable or append-only file that the worker could not remove',
      {},
      async () => {
        const name = actionDirectory();
        const stdout = await run(
          spec(
            mode,
            name,
            'touch /i /tmp/a; review flag /i immutable; review flag /tmp/a append; ' +
              'review flag /proc/self/fd/1 append',
          ),
        );
        assert.equal(
          stdout,
          'immutable-refused EPERM\nappend-refused EPERM\nappend-refused EPERM\n',
          stdout,
        );
      },
    );

    contained(
      'argv[0] /proc/self/exe runs the runner’s init, which gives the action no handle on the host’s binary',
      {},
      async () => {
        const name = actionDirectory();
        const action = {
          ...spec(mode, name, ''),
          arguments: [
            '/proc/self/exe',
            'subreaper',
            '/bin/sh',
            'sh',
            '-c',
            '(head -c 4 /proc/$PPID/exe >/dev/null) 2>/dev/null && echo opened || echo refused; ' +
              '(cat /proc/$PPID/environ >/dev/null) 2>/dev/null && echo environ || echo refused',
          ],
        };
        // The init, run as the action, started the shell: the second init is not dumpable either.
        assert.equal(await run(action), 'refused\nrefused\n');
      },
    );

    // runCommandsAs does not apply in rootless mode (the ids mapped are the action's).
    if (mode !== 'rootless') {
      contained(
        'as runCommandsAs, a setuid-root or file-capable program in its input root gives it no root',
        {},
        async () => {
          // What bb_worker would lay out from a REAPI unix_mode, or a file capability set by
          // an earlier tool: both root's, both executable by anyone.
          const name = actionDirectory((root) => {
            for (const file of ['setuid', 'capable']) {
              copyFileSync(review, join(root, file));
              chmodSync(join(root, file), 0o755);
            }
            chmodSync(join(root, 'setuid'), 0o4755);
            onHost(['setcap', join(root, 'capable')]);
          });
          const stdout = await run(
            spec(mode, name, '/setuid become-root; /capable become-root', {
              credentials: { uid: 65534, gid: 65534, additionalGroups: [] },
            }),
          );
          // no_new_privs: neither the setuid bit nor the capability takes effect on exec.
          assert.equal(stdout, 'setuid-refused EPERM\nsetuid-refused EPERM\n');
        },
      );
    }
  });
}

for (const mode of ['namespaces', 'shared'] as const) {
  describe(`serve: a hostile action stays inside, second review (${mode})`, () => {
    contained(
      'R1. leaves no file capability on its outputs or on the stdout log serve made',
      {},
      async () => {
        const directory = join(suite.build.path, `serve-${suite.roots++}`);
        mkdirSync(directory, { mode: 0o755 });
        const configuration = writeServeConfiguration(directory, 'runner', mode);
        const root = join(configuration.buildPath, 'action/root');
        populateBusyboxRoot(root);
        copyFileSync(review, join(root, 'bin/review'));
        mkdirSync(join(configuration.buildPath, 'action/tmp'));
        for (const path of ['action', 'action/root', 'action/tmp']) {
          chmodSync(join(configuration.buildPath, path), 0o777);
        }
        const serve = await ServeProcess.start(['--config', configuration.file]);
        const client = new RunnerClient(configuration.socket);
        try {
          const response = await client.run({
            arguments: ['sh', '-c', capabilityScript],
            environmentVariables: { PATH: '/bin' },
            inputRootDirectory: 'action/root',
            temporaryDirectory: 'action/tmp',
            stdoutPath: 'action/stdout',
            stderrPath: 'action/stderr',
          });
          assert.equal(response.exitCode, 0n);
        } finally {
          client.close();
          assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
        }
        assertNoCapabilities(
          ['root/capable', 'tmp/capable', 'stdout'].map((file) =>
            join(configuration.buildPath, 'action', file),
          ),
        );
      },
    );
  });
}

for (const mode of modes) {
  describe(`chroot-runner run: a hostile action stays inside, second review (${mode})`, () => {
    /** The action's stdout, from `chroot-runner run` (stdio passed through). */
    const runCommand = (name: string, script: string): string =>
      execFileSync(
        process.execPath,
        [
          binary,
          'run',
          '--isolation',
          mode,
          '--input-root',
          join(suite.build.path, name, 'root'),
          '--tmp',
          join(suite.build.path, name, 'tmp'),
          '--',
          'sh',
          '-c',
          script,
        ],
        { encoding: 'utf8' },
      );

    contained('R1. leaves no file capability on its outputs or its /tmp', {}, async () => {
      const name = actionDirectory();
      runCommand(
        name,
        'cp /bin/review /capable; review setcap /capable; cp /bin/review /tmp/capable; review setcap /tmp/capable',
      );
      assertNoCapabilities(
        ['root/capable', 'tmp/capable'].map((file) => join(suite.build.path, name, file)),
      );
    });

    contained('R2. opens no AF_VSOCK socket', {}, async () => {
      const stdout = runCommand(actionDirectory(), 'review vsock');
      assert.match(stdout, /^vsock-refused (EPERM|EAFNOSUPPORT)\n$/, stdout);
    });
  });
}
