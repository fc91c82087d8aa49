// The peers chroot-runner is measured against, and what the bench needs to run them: upstream
// bb_runner built from bb-remote-execution's Go module at the version test/buildbarn/go pins,
// Bazel's linux-sandbox (Debian's bazel-bootstrap) and bubblewrap hardened like our default
// isolation. The bench installs what is missing itself; a peer it cannot get is skipped with
// the reason.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The path of a command found on PATH. */
export function findOnPath(command: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .map((directory) => join(directory, command))
    .find((path) => existsSync(path));
}

function debianPackageInstalled(name: string): boolean {
  try {
    return execFileSync('dpkg-query', ['--status', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).includes('Status: install ok installed');
  } catch {
    return false;
  }
}

/** Installs those of `packages` that are missing with apt-get (waiting for dpkg's lock, which
 * other installs may hold), and returns the names of those still missing afterwards. */
export async function installDebianPackages(
  packages: readonly string[],
  log: (line: string) => void,
): Promise<string[]> {
  const missing = packages.filter((name) => !debianPackageInstalled(name));
  if (missing.length === 0 || findOnPath('apt-get') === undefined) return missing;
  log(`installing Debian packages: ${missing.join(' ')}`);
  const apt = (args: string[]) =>
    run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      maxBuffer: 64 * 1024 * 1024,
    });
  try {
    await apt(['install', '-y', '-qq', ...missing]);
  } catch {
    // The package lists may be stale or absent on a fresh machine.
    try {
      await apt(['update', '-qq']);
      await apt(['install', '-y', '-qq', ...missing]);
    } catch (error) {
      log(`apt-get install failed: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return missing.filter((name) => !debianPackageInstalled(name));
}

/** Debian's bazel-bootstrap installs Bazel's sandbox here. */
export const linuxSandboxPath = '/usr/libexec/x86_64-linux-gnu/bazel/linux-sandbox';

/** linux-sandbox's closest flags to our isolation: the input root as working directory and
 * its only writable path, hostname localhost, a network namespace, uid 0 inside. It always
 * makes user, mount, PID, IPC and UTS namespaces and a procfs; it has no hermetic root (the
 * host's tree, read-only), so the input root's own `true` is run by its path. */
export function linuxSandboxArguments(root: string): string[] {
  return ['-W', root, '-w', root, '-H', '-N', '-R', '--', join(root, 'bin/true')];
}

/** bwrap with every kind of namespace (user, network with loopback up, PID, IPC, UTS, cgroup),
 * nested user namespaces refused, a new session, no capabilities, killed with its parent; the
 * input root bound at / (bwrap's binds are nosuid, nodev), a procfs, a /dev of its own and the
 * host's /sys read-only (bwrap cannot mount a sysfs); with `seccompFd`, our default's seccomp
 * filter (the BPF program on that fd: bwrap's --seccomp). Our session keyring and cgroup have
 * no bwrap equivalent. */
export function hardenedBwrapArguments(root: string, seccompFd?: number): string[] {
  return [
    ...['--unshare-all', '--unshare-user', '--disable-userns', '--new-session'],
    ...['--die-with-parent', '--cap-drop', 'ALL'],
    ...(seccompFd === undefined ? [] : ['--seccomp', String(seccompFd)]),
    ...['--bind', root, '/', '--proc', '/proc', '--dev', '/dev', '--ro-bind', '/sys', '/sys'],
    '/bin/true',
  ];
}

/** The Go module of test/buildbarn/go (issue 14): it requires bb-remote-execution at a pinned
 * version and repeats its replace directives, so that `go build` can build its commands. */
const buildbarnModule = fileURLToPath(new URL('../../test/buildbarn/go/', import.meta.url));

/** Where built peers are kept between runs, keyed by the module's go.sum: `npm ci` empties it. */
const cacheDirectory = fileURLToPath(
  new URL('../../node_modules/.cache/chroot-runner-bench/', import.meta.url),
);

/** The Go toolchain: on PATH, or where this machine has it. */
function goCommand(): string | undefined {
  return findOnPath('go') ?? ['/usr/local/go/bin/go'].find((path) => existsSync(path));
}

/** bb_runner built from test/buildbarn/go (through the Go module proxy, the first time), or
 * throws why it cannot be. */
export async function bbRunnerExecutable(log: (line: string) => void): Promise<string> {
  const sum = join(buildbarnModule, 'go.sum');
  if (!existsSync(sum)) {
    throw new Error('test/buildbarn/go (the Buildbarn module of issue 14) is not there');
  }
  const go = goCommand();
  if (go === undefined) throw new Error('no Go toolchain (go on PATH or /usr/local/go)');
  const key = createHash('sha256')
    .update(readFileSync(join(buildbarnModule, 'go.mod')))
    .update(readFileSync(sum))
    .digest('hex')
    .slice(0, 16);
  const executable = join(cacheDirectory, `bb_runner-${key}`);
  if (existsSync(executable)) return executable;
  mkdirSync(cacheDirectory, { recursive: true });
  log('building bb_runner from test/buildbarn/go (go build)');
  const partial = `${executable}.partial`;
  try {
    await run(
      go,
      ['build', '-o', partial, 'github.com/buildbarn/bb-remote-execution/cmd/bb_runner'],
      {
        cwd: buildbarnModule,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim().split('\n').at(-1);
    throw new Error(`go build of bb_runner failed: ${stderr ?? (error as Error).message}`);
  }
  renameSync(partial, executable);
  return executable;
}
