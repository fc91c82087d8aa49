// Issue 13's attacks, as a hostile action tries them from inside its sandbox: host processes
// through a cgroup mount in a nested user namespace, the operator's terminal, the host's
// network, the host's /dev/null through stdin, the host root's keyrings, setuid residue and
// poisoned cache files, shipped device nodes, unbounded tmpfs and kernel interfaces (io_uring,
// perf_event_open). Engine cases run in namespaces, shared and rootless mode (the runner as
// root); the terminal case runs `chroot-runner run` under a pseudo-terminal. Every case ends
// with nothing left and the host unchanged (assertHostUnchanged). SECURITY.md lists them.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ServiceError, status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { defaultIsolation } from '../../src/sandbox/index.js';
import { RunnerClient } from '../../src/server/client.js';
import { constants, mknodat } from '../../src/syscalls/index.js';
import { makeFifo, writableByActions } from '../helpers/busybox.js';
import { ownMountNamespace } from '../helpers/hostile.js';
import { HostileActions } from '../helpers/hostile-actions.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';
import {
  binary,
  clientSocketsClosed,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';
import { hostUser } from '../helpers/unprivileged.js';

// The host these tests compare before and after is this file's alone.
await ownMountNamespace(import.meta.url);

type Mode = 'namespaces' | 'shared' | 'rootless';
const modes: readonly Mode[] = ['namespaces', 'shared', 'rootless'];

const suite = new HostileActions('chroot-runner-outside-');
const { contained, actionDirectory, spec, run } = suite;

/** The cgroup2 hierarchy's mount point and this process's cgroup in it, if there is one. */
function ownCgroup2(): string | undefined {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((line) => / - cgroup2 /.test(line))
    ?.split(' ')[4];
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  return mount === undefined || own === undefined ? undefined : join(mount, own);
}

/** A host process in a cgroup of its own beneath ours, which an escape would kill. */
async function victimInCgroup(path: string): Promise<ChildProcess> {
  mkdirSync(path);
  const victim = spawn('sleep', ['1000'], { stdio: 'ignore' });
  await once(victim, 'spawn');
  writeFileSync(join(path, 'cgroup.procs'), String(victim.pid));
  return victim;
}

for (const mode of modes) {
  describe(`a hostile action stays inside (${mode})`, () => {
    contained('1. cannot kill a host process through a cgroup2 mount of its own', async (t) => {
      const parent = ownCgroup2();
      if (parent === undefined) return t.skip('no cgroup2 hierarchy');
      const cgroup = `chroot-runner-victim-${process.pid}-${suite.roots}`;
      const victim = await victimInCgroup(join(parent, cgroup));
      const exited = once(victim, 'exit');
      try {
        const stdout = await run(spec(mode, actionDirectory(), `hostile cgroup-kill ${cgroup}`));
        assert.match(stdout, /-refused /, 'the action wrote cgroup.kill of a host cgroup');
      } finally {
        victim.kill('SIGTERM');
        const [, signal] = await exited;
        rmdirSync(join(parent, cgroup));
        // SIGTERM is ours; SIGKILL would be the action's cgroup.kill.
        assert.equal(signal, 'SIGTERM', 'the host process was killed from inside the action');
      }
    });

    contained('3. reaches neither the host’s loopback services nor its interfaces', async () => {
      const tcp: Server = createServer((socket) => socket.end());
      const abstract: Server = createServer((socket) => socket.end());
      const name = `chroot-runner-hostile-${process.pid}-${suite.roots}`;
      tcp.listen(0, '127.0.0.1');
      abstract.listen(`\0${name}`);
      await Promise.all([once(tcp, 'listening'), once(abstract, 'listening')]);
      try {
        const port = (tcp.address() as { port: number }).port;
        const stdout = await run(spec(mode, actionDirectory(), `hostile network ${port} ${name}`));
        const [connect, unix, interfaces, packet] = stdout.split('\n');
        assert.equal(connect, 'tcp-refused ECONNREFUSED', stdout);
        assert.equal(unix, 'unix-refused ECONNREFUSED', stdout);
        assert.equal(interfaces, 'interfaces lo', stdout);
        // A packet socket, where the capability allows one, sees only its own loopback.
        assert.match(packet ?? '', /^packet-(opened|refused EPERM)$/);
      } finally {
        tcp.close();
        abstract.close();
        await Promise.all([once(tcp, 'close'), once(abstract, 'close')]);
      }
    });

    contained('4. cannot change the host’s /dev/null through its stdin', async () => {
      const before = statSync('/dev/null');
      await run(
        spec(mode, actionDirectory(), 'touch /proc/self/fd/0; chmod 666 /proc/self/fd/0; true'),
      );
      const now = statSync('/dev/null');
      assert.equal(now.mtimeMs, before.mtimeMs, "the host's /dev/null was touched");
      assert.equal(now.ctimeMs, before.ctimeMs, "the host's /dev/null was chmod'ed");
    });

    // The filter's refusal (the default); where the filter lets it use keys, or with no filter
    // at all, the action's own session keyring and its own user namespace: the user and
    // user-session keyrings are per uid and user namespace, so KEY_SPEC_USER_* is its own.
    for (const [keys, seccomp] of [
      ['refused by the filter', defaultIsolation.seccomp],
      ['allowed by the filter', { enabled: true, allow: ['keys'] }],
      ['without a filter', { enabled: false, allow: [] }],
    ] as const) {
      contained(
        `5. reads no key of the host’s root and plants none for other actions (keys ${keys})`,
        {},
        async () => {
          const secret = `chroot-runner-secret-${process.pid}-${suite.roots}`;
          const planted = `chroot-runner-planted-${process.pid}-${suite.roots}`;
          const isolation = { ...defaultIsolation, mode, seccomp };
          execFileSync(suite.helper, ['add-key', secret, 'host-secret']);
          try {
            const read = await run(
              spec(mode, actionDirectory(), `hostile read-key ${secret}`, { isolation }),
            );
            assert.match(read, /^key-refused /, "the action read the host root's key");
            await run(
              spec(mode, actionDirectory(), `hostile add-key ${planted} planted`, { isolation }),
            );
            const other = await run(
              spec(mode, actionDirectory(), `hostile read-key ${planted}`, { isolation }),
            );
            assert.match(other, /^key-refused /, 'an action read a key another action planted');
            const found = execFileSync(suite.helper, ['read-key', planted], { encoding: 'utf8' });
            assert.match(
              found,
              /^key-refused /,
              'an action planted a key in the host root’s keyrings',
            );
          } finally {
            execFileSync(suite.helper, ['remove-key', secret]);
            execFileSync(suite.helper, ['remove-key', planted]);
          }
        },
      );
    }

    contained('6a. leaves no setuid-root program behind', async () => {
      const name = actionDirectory();
      const action = spec(
        mode,
        name,
        'cp /bin/hostile /suid; chmod 4755 /suid; chmod 4755 /proc/self/fd/1; true',
      );
      await run(action);
      const suid = join(suite.build.path, name, 'root', 'suid');
      for (const path of [suid, join(suite.build.path, action.stdoutPath)]) {
        const status = statSync(path);
        const setuidRoot = (status.mode & 0o4000) !== 0 && status.uid === 0;
        assert.ok(!setuidRoot, `${path} is setuid root`);
      }
      // An ordinary host user (not no_new_privs, under which no setuid bit takes effect).
      const ran = execFileSync(hostUser[0] ?? 'setpriv', [...hostUser.slice(1), suid, 'euid']);
      assert.notEqual(String(ran), 'euid 0\n', 'an unprivileged user ran it as root');
    });

    // Rootless mode run as root maps the action's ids to the range too (its own uid 0 would
    // make the action the host's root).
    contained(
      '6b. cannot change read-only input files hard-linked from bb_worker’s cache',
      async () => {
        const cache = join(suite.build.path, `cache-${suite.roots}`);
        mkdirSync(cache);
        writeFileSync(join(cache, 'input'), 'original\n', { mode: 0o444 });
        const name = actionDirectory((root) => linkSync(join(cache, 'input'), join(root, 'input')));
        const stdout = await run(
          spec(
            mode,
            name,
            '(echo poisoned > /input) 2>/dev/null && echo written; ' +
              'chmod 666 /input 2>/dev/null && echo chmoded; echo id $(id -u)',
          ),
        );
        assert.equal(readFileSync(join(cache, 'input'), 'utf8'), 'original\n', stdout);
        assert.equal(statSync(join(cache, 'input')).mode & 0o7777, 0o444, stdout);
        // Still root inside: the refusal is the namespace's, not a lower uid's.
        assert.equal(stdout, 'id 0\n');
      },
    );

    // What the user namespace must not take from bb_worker: the action writes where bb_worker
    // lets it (the 0777 directories), as a host id of the range, and bb_worker, the build
    // directory's owner (root here), reads every output and removes everything, however
    // the action left the modes.
    contained(
      '6b. writes as a host id of the range; bb_worker reads and removes it all',
      async () => {
        const name = actionDirectory();
        const stdout = await run(
          spec(
            mode,
            name,
            'mkdir -p /out/deep && echo output > /out/deep/file && chmod 600 /out/deep/file && ' +
              'chmod 500 /out/deep && chmod 700 /out && echo scratch > /tmp/scratch && ' +
              'chmod 400 /tmp/scratch && echo id $(id -u)',
          ),
        );
        assert.equal(stdout, 'id 0\n');
        const directory = join(suite.build.path, name);
        const output = join(directory, 'root', 'out', 'deep', 'file');
        assert.equal(statSync(output).uid, defaultIsolation.actionUserNamespace?.firstHostId);
        assert.equal(readFileSync(output, 'utf8'), 'output\n');
        assert.equal(readFileSync(join(directory, 'tmp', 'scratch'), 'utf8'), 'scratch\n');
        rmSync(directory, { recursive: true });
        assert.throws(() => statSync(directory), { code: 'ENOENT' });
      },
    );

    contained('7. cannot open a device node shipped in its input root', async () => {
      const name = actionDirectory((root) => {
        // /dev/null's numbers: harmless where it opens; /dev/kmsg (1, 11) opens the same way.
        mknodat(null, join(root, 'shipped'), constants.S_IFCHR | 0o666, 1, 3);
        // Writable by every uid whatever the umask: only nodev may refuse it.
        chmodSync(join(root, 'shipped'), 0o666);
      });
      const stdout = await run(
        spec(mode, name, '(echo x > /shipped) 2>/dev/null && echo opened || echo refused'),
      );
      assert.equal(stdout, 'refused\n');
    });

    // no_new_privs already makes the kernel ignore setuid bits at exec: nosuid is the second
    // lock, seen in the options of the mount the action is rooted in.
    contained('7. its root, where the shipped files are, is mounted nosuid,nodev', async () => {
      const stdout = await run(
        spec(
          mode,
          actionDirectory(),
          'while read -r id parent device root point options rest; do ' +
            '[ "$point" = / ] && echo "$options"; done < /proc/self/mountinfo; true',
        ),
      );
      const options = stdout.trimEnd().split('\n').at(-1)?.split(',') ?? [];
      assert.ok(options.includes('nosuid') && options.includes('nodev'), stdout);
    });

    contained(
      '8. its /dev and /dev/shm are bounded; io_uring and perf_event_open are refused',
      async () => {
        // The sizes as the kernel reports them from inside (statfs), and a fill past each: of
        // /dev/shm always (1777), of /dev where the action may write there (rootless mode,
        // whose /dev belongs to the action's user namespace; elsewhere the host's root owns it).
        const stdout = await run(
          spec(
            mode,
            actionDirectory(),
            "stat -f -c 'dev %b %S' /dev; stat -f -c 'shm %b %S' /dev/shm; " +
              'if touch /dev/probe 2>/dev/null; then rm /dev/probe; ' +
              '(head -c 2097152 /dev/zero > /dev/filler) 2>/dev/null && echo dev-unbounded || echo dev-full; ' +
              'rm -f /dev/filler; else echo dev-unwritable; fi; ' +
              '(head -c 134217728 /dev/zero > /dev/shm/filler) 2>/dev/null && echo shm-unbounded || echo shm-full; ' +
              'rm -f /dev/shm/filler; hostile io_uring; hostile perf',
          ),
        );
        const [dev, shm, ...rest] = stdout.split('\n');
        const bytes = (line = '') =>
          line
            .split(' ')
            .slice(1)
            .map(Number)
            .reduce((a, b) => a * b);
        assert.match(dev ?? '', /^dev \d+ \d+$/, stdout);
        assert.match(shm ?? '', /^shm \d+ \d+$/, stdout);
        // The defaults: filesystems.devSize 1m, filesystems.shmSize 64m.
        assert.equal(bytes(dev), 1024 * 1024, `/dev: ${dev}`);
        assert.equal(bytes(shm), 64 * 1024 * 1024, `/dev/shm: ${shm}`);
        assert.equal(
          rest.join('\n'),
          `${mode === 'rootless' ? 'dev-full' : 'dev-unwritable'}\n` +
            'shm-full\nio_uring-refused EPERM\nperf-refused EPERM\n',
          stdout,
        );
      },
    );
  });
}

/** Runs `chroot-runner run` with a pseudo-terminal as its controlling terminal, as an operator
 * would from a shell; returns what the action printed and how many bytes wait in the
 * terminal's input queue afterwards (what the operator's shell would read next). */
function runUnderTerminal(argv: readonly string[]): { output: string; queued: number } {
  const script = `
import fcntl, json, os, pty, struct, sys, termios
master, slave = pty.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.execv(sys.argv[1], sys.argv[1:])
os.waitpid(pid, 0)
queued = struct.unpack('i', fcntl.ioctl(slave, termios.FIONREAD, b'\\0\\0\\0\\0'))[0]
os.set_blocking(master, False)
output = b''
try:
    while True:
        chunk = os.read(master, 65536)
        if not chunk:
            break
        output += chunk
except BlockingIOError:
    pass
print(json.dumps({'output': output.decode('utf8', 'replace'), 'queued': queued}))
`;
  const text = execFileSync('python3', ['-c', script, process.execPath, ...argv], {
    encoding: 'utf8',
  });
  return JSON.parse(text);
}

for (const mode of modes) {
  describe(`a hostile action cannot type into the operator’s terminal (${mode})`, () => {
    contained('2. TIOCSTI on /dev/tty injects nothing (`run` from a terminal)', async () => {
      const name = actionDirectory();
      const { output, queued } = runUnderTerminal([
        binary,
        'run',
        '--isolation',
        mode,
        '--input-root',
        join(suite.build.path, name, 'root'),
        '--',
        'hostile',
        'tiocsti',
        'echo injected-by-the-action\n',
      ]);
      assert.equal(queued, 0, `the action queued input for the operator's shell: ${output}`);
      assert.match(output, /^(tty|tiocsti)-refused /, output);
    });
  });
}

describe('serve: its socket and its concurrency are bounded', { skip: needsRoot }, () => {
  it('9. the socket is 0660 whatever the umask', async () => {
    const directory = join(suite.build.path, `serve-${suite.roots++}`);
    mkdirSync(directory, { mode: 0o700 });
    const configuration = writeServeConfiguration(
      directory,
      'runner',
      'namespaces',
      {},
      { global: { setUmask: { umask: 0 } } },
    );
    const serve = await ServeProcess.start(['--config', configuration.file]);
    try {
      const socket = configuration.socket.slice('unix://'.length);
      assert.equal((statSync(socket).mode & 0o777).toString(8), '660');
    } finally {
      assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
    }
  });

  it('past maximumConcurrentRuns, a Run is RESOURCE_EXHAUSTED, not queued', async () => {
    const state = processState();
    const directory = join(suite.build.path, `serve-${suite.roots++}`);
    mkdirSync(directory, { mode: 0o700 });
    const configuration = writeServeConfiguration(directory, 'runner', 'namespaces', {
      maximumConcurrentRuns: 2,
    });
    const serve = await ServeProcess.start(['--config', configuration.file]);
    const client = new RunnerClient(configuration.socket);
    try {
      const actions = [0, 1, 2].map((index) => {
        const name = `action-${index}`;
        const root = join(configuration.buildPath, name, 'root');
        populateBusyboxRoot(root);
        const tmp = join(configuration.buildPath, name, 'tmp');
        mkdirSync(tmp);
        writableByActions(tmp);
        for (const fifo of ['ready', 'gate']) makeFifo(join(tmp, fifo));
        return {
          tmp: join(configuration.buildPath, name, 'tmp'),
          request: {
            arguments: ['sh', '-c', 'echo started > /tmp/ready; cat /tmp/gate'],
            environmentVariables: { PATH: '/bin' },
            inputRootDirectory: `${name}/root`,
            temporaryDirectory: `${name}/tmp`,
            stdoutPath: `${name}/stdout`,
            stderrPath: `${name}/stderr`,
          },
        };
      });
      const [first, second, third] = actions as [
        (typeof actions)[0],
        (typeof actions)[0],
        (typeof actions)[0],
      ];
      const running = [first, second].map((action) => client.run(action.request));
      // Each has started once it wrote to its FIFO.
      for (const action of [first, second]) {
        assert.equal(await readFile(join(action.tmp, 'ready'), 'utf8'), 'started\n');
      }
      await assert.rejects(client.run(third.request), (error: ServiceError) => {
        assert.equal(status[error.code], 'RESOURCE_EXHAUSTED', error.details);
        assert.match(error.details, /2 Runs/);
        return true;
      });
      for (const action of [first, second]) await writeFile(join(action.tmp, 'gate'), 'go\n');
      for (const response of await Promise.all(running)) assert.equal(Number(response.exitCode), 0);
    } finally {
      client.close();
      assert.deepEqual(await serve.stop(), [0, null], serve.stderrText);
    }
    await clientSocketsClosed(state);
    assertNothingLeft(state, [suite.build.path]);
  });
});
