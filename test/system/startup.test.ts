// What an operator sees when `serve` cannot start: one paragraph saying what is wrong and what
// to do, exit status 2, no stack trace; the configured isolation mode checked before listening;
// `check-config`, `--version` and `--log-level`.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { lostWithoutCgroups } from '../../src/cgroups/index.js';
import type { CheckResult, ModeSupport } from '../../src/doctor/index.js';
import { parseConfiguration } from '../../src/server/config.js';
import { withAlternatives } from '../../src/server/preflight.js';
import { type BuildDirectory, makeBuildDirectory } from '../helpers/busybox.js';
import { chrootedPrefix, inPrivateMountNamespace } from '../helpers/chrooted.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';
import { binary, ServeProcess, writeServeConfiguration } from '../helpers/serve.js';
import { makeUnprivilegedBuildDirectory, unprivileged } from '../helpers/unprivileged.js';

const repository = new URL('../../../', import.meta.url).pathname;

/** `chroot-runner ARGS` to its end, optionally under a command prefix (e.g. setpriv). */
function chrootRunner(args: readonly string[], prefix: readonly string[] = [], input = '') {
  const [program = process.execPath, ...rest] = [...prefix, process.execPath, binary, ...args];
  return spawnSync(program, rest, { encoding: 'utf8', input });
}

/** A start-up failure as the issue asks: exit 2, `chroot-runner serve: …` and a fix, in one
 * paragraph, with no stack frame. */
function assertRefused(result: ReturnType<typeof chrootRunner>, message: RegExp): void {
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /^chroot-runner (serve|check-config): /);
  assert.match(result.stderr, message);
  assert.match(result.stderr, /Fix: /);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack frame');
  assert.doesNotMatch(result.stderr.trimEnd(), /\n\s*\n/, 'one paragraph');
  assert.equal(result.stdout, '');
}

/** A configuration in `build` whose socket and build directory exist, with `extra` merged. */
function configuration(build: BuildDirectory, extra: Record<string, unknown> = {}): string {
  return writeServeConfiguration(build.path, 'runner', 'namespaces', {}, extra).file;
}

describe('start-up failures', { skip: needsRoot }, () => {
  it('a missing or unreadable configuration file', () => {
    const build = makeBuildDirectory();
    try {
      const missing = join(build.path, 'missing.json');
      assertRefused(
        chrootRunner(['serve', '--config', missing]),
        new RegExp(`cannot read the configuration file ${missing} \\(ENOENT\\)`),
      );
      const unreadable = join(build.path, 'unreadable.json');
      writeFileSync(unreadable, '{}');
      chmodSync(unreadable, 0o600);
      assertRefused(
        chrootRunner(['serve', '--config', unreadable], unprivileged),
        /\(EACCES\)\. Fix: make it readable by uid 65534/,
      );
    } finally {
      build.remove();
    }
  });

  it('a socket directory, log directory or temporary directory to clean that does not exist', () => {
    const build = makeBuildDirectory();
    try {
      const file = configuration(build);
      const document = JSON.parse(readFileSync(file, 'utf8'));
      const socket = join(build.path, 'absent', 'runner');
      document.grpcServers[0].listenPaths = [socket];
      writeFileSync(file, JSON.stringify(document));
      const refused = chrootRunner(['serve', '--config', file]);
      assertRefused(
        refused,
        new RegExp(`socket ${socket}, ${join(build.path, 'absent')}, does not exist`),
      );
      assert.doesNotMatch(refused.stderr, /EACCES/);

      const logged = configuration(build, {
        global: { logPaths: [join(build.path, 'no-such-directory', 'runner.log')] },
      });
      assertRefused(
        chrootRunner(['serve', '--config', logged]),
        /no-such-directory, does not exist/,
      );

      const cleaned = configuration(build, {
        cleanTemporaryDirectories: [join(build.path, 'no-such-tmp')],
      });
      assertRefused(
        chrootRunner(['serve', '--config', cleaned]),
        /cleanTemporaryDirectories entry .*no-such-tmp does not exist/,
      );
    } finally {
      build.remove();
    }
  });

  it('a socket directory that is a file is refused', () => {
    const build = makeBuildDirectory();
    try {
      const file = configuration(build);
      const document = JSON.parse(readFileSync(file, 'utf8'));
      const withSocket = (socket: string): string => {
        document.grpcServers[0].listenPaths = [socket];
        writeFileSync(file, JSON.stringify(document));
        return file;
      };
      const notDirectory = join(build.path, 'file');
      writeFileSync(notDirectory, '');
      assertRefused(
        chrootRunner(['serve', '--config', withSocket(join(notDirectory, 'runner'))]),
        new RegExp(
          `socket ${notDirectory}/runner, ${notDirectory}, is not a directory\\. Fix: make ${notDirectory} a directory`,
        ),
      );
      assertRefused(
        chrootRunner(['serve', '--config', withSocket(join(notDirectory, 'below', 'runner'))]),
        /below, is not a directory \(a component of its path is a file\)\. Fix: /,
      );
    } finally {
      build.remove();
    }
  });

  it('a diagnostics port in use', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    const holder = createServer().listen(0, '127.0.0.1');
    try {
      await once(holder, 'listening');
      const { port } = holder.address() as { port: number };
      // The first server listens before the second fails: the runner must still exit.
      const file = configuration(build, {
        global: {
          diagnosticsHttpServer: {
            httpServers: [
              { listenAddresses: ['127.0.0.1:0'], authenticationPolicy: { allow: {} } },
              { listenAddresses: [`127.0.0.1:${port}`], authenticationPolicy: { allow: {} } },
            ],
            enablePrometheus: true,
          },
        },
      });
      assertRefused(
        chrootRunner(['serve', '--config', file]),
        new RegExp(`diagnostics server cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`),
      );
    } finally {
      holder.close();
      await once(holder, 'close');
      build.remove();
    }
    assertNothingLeft(state, [build.path]);
  });

  it('a non-root runner in namespaces mode refuses, in doctor’s words, with the rootless hint', () => {
    const build = makeUnprivilegedBuildDirectory();
    try {
      const file = configuration(build);
      const refused = chrootRunner(['serve', '--config', file], unprivileged);
      assertRefused(
        refused,
        /isolation mode namespaces does not work here: needs root or CAP_SYS_ADMIN/,
      );
      assert.match(refused.stderr, /--isolation rootless \(chrootRunner\.isolation: "rootless"\)/);
      const doctor = chrootRunner(['doctor', '--json'], unprivileged);
      const modes = JSON.parse(doctor.stdout).modes as ModeSupport[];
      const namespaces = modes.find((support) => support.mode === 'namespaces');
      assert.ok(namespaces !== undefined && !namespaces.available);
      assert.ok(refused.stderr.includes(`${namespaces.reason}. Fix: ${namespaces.fix}`));
    } finally {
      build.remove();
    }
  });
});

describe('a runner the kernel refuses user namespaces to (chrooted)', { skip: needsRoot }, () => {
  it('serve exits 2 in shared mode naming actionUserNamespace.enabled: false, serves with it; namespaces mode serves', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    const chroot = join(build.path, 'chroot');
    mkdirSync(chroot);
    try {
      const prefix = chrootedPrefix(chroot);
      const shared = writeServeConfiguration(build.path, 'shared', 'shared').file;
      assertRefused(
        chrootRunner(['serve', '--config', shared], prefix),
        /cannot prepare the sandbox: the kernel refuses this runner a user namespace per action in shared mode \(unshare failed with EPERM .*Fix: .*set chrootRunner\.actionUserNamespace\.enabled: false/,
      );
      const optedOut = writeServeConfiguration(build.path, 'opted-out', 'shared', {
        actionUserNamespace: { enabled: false },
      }).file;
      const namespaces = writeServeConfiguration(build.path, 'namespaces', 'namespaces').file;
      for (const file of [optedOut, namespaces]) {
        const serve = await ServeProcess.start(
          ['--config', file],
          [...prefix, process.execPath, binary],
        );
        assert.deepEqual(await serve.stop(), [0, null]);
      }
    } finally {
      build.remove();
    }
    assertNothingLeft(state, [build.path]);
  });
});

describe('start-up warnings', { skip: needsRoot }, () => {
  it('a rootless serve without a delegated cgroup warns what its actions lose, and serves', async () => {
    const state = processState();
    const build = makeUnprivilegedBuildDirectory();
    try {
      const { file } = writeServeConfiguration(build.path, 'rootless', 'rootless');
      execFileSync('chown', ['-R', '65534:65534', build.path]);
      // This host's cgroups are root's (cgroup v1): uid 65534 may make none beneath its own.
      const serve = await ServeProcess.start(
        ['--config', file],
        [...unprivileged, process.execPath, binary],
      );
      try {
        const warned = await serve.waitForLog(
          (line) => line.msg === 'actions run without a cgroup of their own',
        );
        assert.equal(warned.lost, lostWithoutCgroups);
        assert.match(String(warned.reason), /may not make cgroups beneath its own/);
      } finally {
        assert.deepEqual(await serve.stop(), [0, null]);
      }
    } finally {
      build.remove();
    }
    assertNothingLeft(state, []);
  });

  it('a socket directory any user could replace the socket in: serve warns, and serves', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    try {
      // bb-deployments' `chmod 0777 /worker`: anyone could rename the socket and listen there.
      const worker = join(build.path, 'worker');
      mkdirSync(join(worker, 'socket'), { recursive: true });
      chmodSync(worker, 0o777);
      const file = configuration(build);
      const document = JSON.parse(readFileSync(file, 'utf8'));
      const socket = join(worker, 'socket', 'runner');
      document.grpcServers[0].listenPaths = [socket];
      writeFileSync(file, JSON.stringify(document));
      const warning = new RegExp(
        `every user may write in ${worker} \\(mode 0777, no sticky bit\\), .*replace the socket ${socket}`,
      );
      const checked = chrootRunner(['check-config', file]);
      assert.equal(checked.status, 0, checked.stdout);
      assert.match(checked.stdout, /^It would warn:$/m);
      assert.match(checked.stdout, warning);
      const serve = await ServeProcess.start(['--config', file]);
      try {
        const logged = await serve.waitForLog((line) => line.msg === 'unsafe configuration');
        assert.match(String(logged.problem), warning);
        assert.match(String(logged.fix), new RegExp(`^chmod \\+t ${worker} `));
        await serve.waitForLog((line) => line.msg === 'serving');
      } finally {
        assert.deepEqual(await serve.stop(), [0, null]);
      }
      chmodSync(worker, 0o1777);
      const sticky = chrootRunner(['check-config', file]);
      assert.equal(sticky.status, 0, sticky.stdout);
      assert.doesNotMatch(sticky.stdout, /It would warn/);
    } finally {
      build.remove();
    }
    assertNothingLeft(state, [build.path]);
  });
});

describe('start-up warnings: chrootIntoInputRoot', { skip: needsRoot }, () => {
  it('false (bb_runner’s default): serve warns what the action sees, and serves; true: no warning', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    try {
      const warning =
        /^chrootIntoInputRoot is false, so every action runs in the runner's own file system: .*other actions/;
      const file = configuration(build, { chrootIntoInputRoot: false });
      const checked = chrootRunner(['check-config', file]);
      assert.equal(checked.status, 0, checked.stdout);
      assert.match(checked.stdout, /^It would warn:$/m);
      assert.match(checked.stdout, /chrootIntoInputRoot is false/);
      const serve = await ServeProcess.start(['--config', file]);
      try {
        const logged = await serve.waitForLog((line) => line.msg === 'unsafe configuration');
        assert.match(String(logged.problem), warning);
        assert.match(String(logged.fix), /^set chrootIntoInputRoot: true/);
        await serve.waitForLog((line) => line.msg === 'serving');
      } finally {
        assert.deepEqual(await serve.stop(), [0, null]);
      }
      const chrooted = chrootRunner(['check-config', configuration(build)]);
      assert.equal(chrooted.status, 0, chrooted.stdout);
      assert.doesNotMatch(chrooted.stdout, /It would warn/);
    } finally {
      build.remove();
    }
    assertNothingLeft(state, [build.path]);
  });
});

/** A prefix for chrootRunner that runs it where the library `soname` (of the Debian package
 * `debianPackage`) cannot be loaded: in a mount namespace of its own with /dev/null bound over
 * the library. */
function withoutLibrary(soname: string, debianPackage: string): string[] {
  const found = new RegExp(`${soname.replaceAll('.', '\\.')} .*=> (\\S+)`).exec(
    execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }),
  );
  assert.ok(found?.[1] !== undefined, `${debianPackage} is installed (test/install-packages.sh)`);
  return inPrivateMountNamespace('mount --bind /dev/null "$0"', found[1]);
}

describe('without libjsonnet', { skip: needsRoot }, () => {
  it('a JSON configuration loads; one that needs Jsonnet is refused with the fix', () => {
    const build = makeBuildDirectory();
    try {
      const file = configuration(build);
      const json = chrootRunner(
        ['check-config', file],
        withoutLibrary('libjsonnet.so.0', 'libjsonnet0'),
      );
      assert.equal(json.status, 0, json.stderr);
      assert.match(json.stdout, /unavailable +Jsonnet configurations \(libjsonnet\.so\.0\)/);
      const jsonnet = join(build.path, 'runner.jsonnet');
      writeFileSync(jsonnet, `// Jsonnet\n${readFileSync(file, 'utf8')}`);
      assertRefused(
        chrootRunner(['check-config', jsonnet], withoutLibrary('libjsonnet.so.0', 'libjsonnet0')),
        /is Jsonnet, not plain JSON, .*Fix: apt-get install libjsonnet0$/m,
      );
    } finally {
      build.remove();
    }
  });
});

describe('without libseccomp', { skip: needsRoot }, () => {
  it('serve refuses to start, naming the package, unless the filter is off; doctor says so', () => {
    const build = makeBuildDirectory();
    try {
      const without = withoutLibrary('libseccomp.so.2', 'libseccomp2');
      assertRefused(
        chrootRunner(['serve', '--config', configuration(build)], without),
        /seccomp filter library \(libseccomp\.so\.2\): libseccomp\.so\.2 cannot be loaded \(.*\): actions cannot get their seccomp filter\. Fix: apt-get install libseccomp2, or set chrootRunner\.seccomp\.enabled to false$/m,
      );
      const unfiltered = writeServeConfiguration(build.path, 'runner', 'namespaces', {
        seccomp: { enabled: false },
      }).file;
      const off = chrootRunner(['check-config', unfiltered], without);
      assert.equal(off.status, 0, off.stdout);
      const doctor = chrootRunner(['doctor', '--json'], without);
      const checks = JSON.parse(doctor.stdout).checks as Record<string, CheckResult>;
      assert.equal(checks.libseccomp?.status, 'unavailable');
      assert.match(checks.libseccomp?.fix ?? '', /^apt-get install libseccomp2/);
      const present = JSON.parse(chrootRunner(['doctor', '--json']).stdout).checks;
      assert.equal(present.libseccomp?.status, 'ok', present.libseccomp?.detail);
    } finally {
      build.remove();
    }
  });
});

describe('check-config, --version, --log-level', { skip: needsRoot }, () => {
  it('check-config says whether serve would start, and exits as serve would', () => {
    const build = makeBuildDirectory();
    try {
      const file = configuration(build);
      const valid = chrootRunner(['check-config', file]);
      assert.equal(valid.status, 0, valid.stderr);
      assert.match(valid.stdout, /^Configured isolation mode:\n {2}namespaces {2}available$/m);
      assert.match(valid.stdout, /serve` would start/);
      // `-` is standard input, as bb-storage's loader reads it, and Jsonnet there too.
      const { buildDirectoryPath, ...rest } = JSON.parse(readFileSync(file, 'utf8'));
      const piped = chrootRunner(
        ['check-config', '-'],
        [],
        `local build = ${JSON.stringify(buildDirectoryPath)};\n${JSON.stringify(rest)} + { buildDirectoryPath: build }`,
      );
      assert.equal(piped.status, 0, piped.stderr);
      assert.match(piped.stdout, /^Configuration -: valid\.$/m);
      const unprivilegedBuild = makeUnprivilegedBuildDirectory();
      try {
        const refused = chrootRunner(
          ['check-config', configuration(unprivilegedBuild)],
          unprivileged,
        );
        assert.equal(refused.status, 2, refused.stderr);
        assert.match(refused.stdout, /would refuse to start:\n {2}- isolation mode namespaces/);
        const rootless = chrootRunner(
          ['check-config', configuration(unprivilegedBuild), '--isolation', 'rootless'],
          unprivileged,
        );
        assert.equal(rootless.status, 0, rootless.stdout);
      } finally {
        unprivilegedBuild.remove();
      }
      const invalid = join(build.path, 'invalid.json');
      writeFileSync(invalid, JSON.stringify({ buildDirectoryPath: 'relative' }));
      const rejected = chrootRunner(['check-config', invalid]);
      assert.equal(rejected.status, 2);
      assert.match(rejected.stderr, /^chroot-runner check-config: .*buildDirectoryPath/);
    } finally {
      build.remove();
    }
  });

  it('--version prints the package’s version', () => {
    const { version } = JSON.parse(readFileSync(join(repository, 'package.json'), 'utf8'));
    const result = chrootRunner(['--version']);
    assert.equal(result.status, 0);
    assert.equal(result.stdout, `${version}\n`);
  });

  it('--log-level warn keeps warnings and drops the info lines', async () => {
    const state = processState();
    const build = makeBuildDirectory();
    try {
      // global.tracing is accepted and ignored with a warning, logged before serving.
      const file = configuration(build, { global: { tracing: {} } });
      const serve = spawn(
        process.execPath,
        [binary, 'serve', '--config', file, '--log-level', 'warn'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      // 'close', not 'exit': its stderr pipe is an fd of this process until then.
      const exited = once(serve, 'close');
      const lines: { level: number; msg: string }[] = [];
      for await (const text of createInterface({ input: serve.stderr })) {
        const line = JSON.parse(text);
        lines.push(line);
        // A signal while starting stops the runner as soon as it is up.
        if (line.msg === 'configuration key accepted for compatibility and ignored')
          serve.kill('SIGTERM');
      }
      assert.deepEqual(await exited, [0, null]);
      assert.deepEqual(
        lines.map((line) => [line.level, line.msg]),
        [[40, 'configuration key accepted for compatibility and ignored']],
      );
    } finally {
      build.remove();
    }
    assertNothingLeft(state, [build.path]);
  });
});

describe('diagnostics authentication policies', () => {
  it('refuses at start-up every kind it cannot enforce', () => {
    for (const policy of [{ jwt: {} }, { oidc: {} }, { any: { policies: [] } }]) {
      assert.throws(
        () =>
          parseConfiguration({
            buildDirectoryPath: '/worker/build',
            grpcServers: [{ listenPaths: ['/worker/runner'] }],
            chrootIntoInputRoot: true,
            global: {
              diagnosticsHttpServer: {
                httpServers: [{ listenAddresses: [':9987'], authenticationPolicy: policy }],
              },
            },
          }),
        /^ConfigurationError: global\.diagnosticsHttpServer\.httpServers\[0\]\.authenticationPolicy\.\w+: unknown key \(known keys: allow, deny\)$/,
      );
    }
  });
});

describe('withAlternatives', () => {
  const mode = (name: ModeSupport['mode'], available: boolean): ModeSupport => ({
    mode: name,
    supported: available,
    available,
    reason: available ? '' : 'why',
    fix: available ? '' : 'fix',
  });

  it('names the best mode that works here in the fix of each that does not', () => {
    const modes = withAlternatives([
      mode('namespaces', false),
      mode('shared', false),
      mode('none', true),
      mode('rootless', true),
    ]);
    assert.deepEqual(
      modes.map((support) => support.fix),
      [
        'fix; or use --isolation rootless (chrootRunner.isolation: "rootless"), which works here',
        'fix; or use --isolation rootless (chrootRunner.isolation: "rootless"), which works here',
        '',
        '',
      ],
    );
  });

  it('never suggests a plain chroot', () => {
    const modes = withAlternatives([mode('namespaces', false), mode('none', true)]);
    assert.equal(modes[0]?.fix, 'fix');
  });
});
