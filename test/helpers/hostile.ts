// What hostile actions are checked against: a snapshot of everything outside an input root that
// an escape would change (the host's mount table, /dev, a few kernel settings, a canary
// directory), and a static helper program that tries the attacks busybox cannot.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DirectoryHandle, openDirectory } from '../../src/syscalls/index.js';
import { type BuildDirectory, makeBuildDirectory } from './busybox.js';

/** The C source of the attack helper (test/helpers/hostile.c in the checkout). */
const helperSource = new URL('../../../test/helpers/hostile.c', import.meta.url).pathname;

/** Compiles the attack helper, statically linked so that it runs in a busybox input root. */
export function compileHostileHelper(output: string): void {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-Werror', '-o', output, helperSource]);
}

/** What the hostile suites share: a build directory (opened), a canary beside the input
 * roots, the compiled attack helper, and the host as it was before any action ran. */
export interface HostileFixture {
  readonly build: BuildDirectory;
  readonly buildDirectory: DirectoryHandle;
  readonly canary: string;
  readonly helper: string;
  readonly host: HostSnapshot;
}

export function openHostileFixture(prefix: string): HostileFixture {
  const build = makeBuildDirectory(prefix);
  const buildDirectory = openDirectory(build.path);
  const canary = join(build.path, 'canary');
  makeCanary(canary);
  const helper = join(build.path, 'hostile');
  compileHostileHelper(helper);
  return { build, buildDirectory, canary, helper, host: hostSnapshot(canary, build.path) };
}

/** A directory outside every input root, with a file, that no action may change. */
export function makeCanary(path: string): void {
  mkdirSync(path);
  writeFileSync(join(path, 'file'), 'canary\n');
}

function listTree(path: string): string[] {
  const entries: string[] = [];
  for (const name of readdirSync(path).sort()) {
    const full = join(path, name);
    const status = lstatSync(full);
    entries.push(`${name} ${status.mode} ${status.size} ${status.mtimeMs} ${status.ino}`);
    if (status.isDirectory()) entries.push(...listTree(full).map((entry) => `${name}/${entry}`));
  }
  return entries;
}

/** Mount points beneath the temporary directory, outside `own`: where other test processes
 * keep their directories (every suite of this project makes its own there). In the mount
 * namespace of ownMountNamespace their later mounts do not show, but the copies of those that
 * were there when it was made are detached when their directories are removed. */
function foreignTestMount(point: string, own: string): boolean {
  const prefix = `${tmpdir()}/`;
  return point.startsWith(prefix) && point !== own && !point.startsWith(`${own}/`);
}

/** The environment variable that marks the test file's run in its own mount namespace. */
const ownNamespaceVariable = 'CHROOT_RUNNER_TEST_OWN_MOUNT_NAMESPACE';

/** Runs the test file at `moduleUrl` again, as root, in a mount namespace of its own (private
 * propagation) with a /dev/shm of its own, and exits with its status: the host snapshot then
 * sees what this file's actions and runners did, not what other suites on the machine mount
 * or leave in /dev/shm meanwhile. The run in the namespace resolves at once. Call it with a
 * top-level await before any test is declared: the outer process declares none, and the
 * test runner reads the inner one's reports from the stdout they share. */
export async function ownMountNamespace(moduleUrl: string): Promise<void> {
  if (process.getuid?.() !== 0 || process.env[ownNamespaceVariable] === '1') return;
  const child = spawn(
    'unshare',
    [
      ...['--mount', '--propagation', 'private', '--', 'sh', '-c'],
      'mount -t tmpfs -o mode=1777,nosuid,nodev chroot-runner-test-shm /dev/shm && exec "$@"',
      ...['sh', process.execPath, ...process.execArgv, new URL(moduleUrl).pathname],
    ],
    { stdio: 'inherit', env: { ...process.env, [ownNamespaceVariable]: '1' } },
  );
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  process.exit(code ?? (signal === null ? 1 : 128 + (osConstants.signals[signal] ?? 0)));
}

/** /proc/self/mountinfo without the lines that `drop` selects by mount point. */
function mountTable(drop: (point: string) => boolean): string {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => !drop(line.split(' ')[4] ?? ''))
    .join('\n');
}

/** /proc/self/mountinfo without the mounts of other test processes (see foreignTestMount). */
export function hostMountTable(own: string): string {
  return mountTable((point) => foreignTestMount(point, own));
}

export interface HostSnapshot {
  readonly mountinfo: string;
  readonly dev: readonly string[];
  readonly root: readonly string[];
  readonly settings: readonly string[];
  readonly canary: readonly string[];
}

/** Kernel settings an action with write access to /proc/sys would change first. */
const settings = ['/proc/sys/kernel/hostname', '/proc/sys/kernel/domainname'];

/** The host as far as an action could change it from inside its input root. */
export function hostSnapshot(canary: string, buildDirectory: string): HostSnapshot {
  return {
    // The whole table: a mount anywhere, not only beneath the test's directories.
    mountinfo: hostMountTable(buildDirectory),
    // /dev/shm is this file's own (ownMountNamespace).
    dev: [...readdirSync('/dev').sort(), ...readdirSync('/dev/shm').map((name) => `shm/${name}`)],
    root: readdirSync('/').sort(),
    settings: settings.map((path) => readFileSync(path, 'utf8')),
    canary: listTree(canary),
  };
}

export function assertHostUnchanged(
  before: HostSnapshot,
  canary: string,
  buildDirectory: string,
): void {
  const after = hostSnapshot(canary, buildDirectory);
  assert.equal(after.mountinfo, before.mountinfo, "the host's mount table changed");
  assert.deepEqual(after.dev, before.dev, "the host's /dev changed");
  assert.deepEqual(after.root, before.root, "the host's / changed");
  assert.deepEqual(after.settings, before.settings, 'kernel settings changed');
  assert.deepEqual(after.canary, before.canary, 'the canary directory changed');
}

/** The mount table without the mounts beneath `directory` (an input root): what must stay
 * constant while actions in it come and go. */
export function mountsOutside(directory: string, buildDirectory: string): string {
  const prefix = `${directory}/`;
  return mountTable(
    (point) =>
      point === directory || point.startsWith(prefix) || foreignTestMount(point, buildDirectory),
  );
}

/** A child process that, in `root`, keeps swapping each of `names` in turn between a directory
 * and a symlink to `target` (rename away, symlink, unlink, rename back), at most `count` rounds
 * or until stopped. Stopping puts every directory back, wherever in a round it was killed. */
export class Swapper {
  readonly #child: ChildProcess;
  /** Its stdout pipe is an fd of this process until 'close', not just 'exit'. */
  readonly #closed: Promise<unknown>;
  readonly #root: string;
  readonly #names: readonly string[];

  private constructor(child: ChildProcess, root: string, names: readonly string[]) {
    this.#child = child;
    this.#closed = once(child, 'close');
    this.#root = root;
    this.#names = names;
  }

  /** Starts it and resolves once it is swapping. */
  static async start(
    root: string,
    names: readonly string[],
    target: string,
    count: number,
  ): Promise<Swapper> {
    const script = `
      const fs = require('node:fs');
      const [root, target, count, ...names] = process.argv.slice(1);
      process.chdir(root);
      const ignore = (f) => { try { f(); } catch {} };
      process.stdout.write('ready\\n');
      for (let i = 0; i < Number(count); i++) {
        for (const name of names) {
          ignore(() => fs.renameSync(name, name + '.away'));
          ignore(() => fs.symlinkSync(target, name));
          ignore(() => fs.unlinkSync(name));
          ignore(() => fs.renameSync(name + '.away', name));
        }
      }`;
    const child = spawn(process.execPath, ['-e', script, root, target, String(count), ...names], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const swapper = new Swapper(child, root, names);
    await once(child.stdout as NodeJS.ReadableStream, 'data');
    return swapper;
  }

  /** Kills it, waits until it is reaped and its pipe closed, and undoes the round it was in:
   * each name's directory is back where it was. */
  async stop(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.#closed;
    for (const name of this.#names) {
      const path = join(this.#root, name);
      if (!existsSync(`${path}.away`)) continue;
      // Killed after the rename away: the symlink, nothing, or the empty directory a runner
      // made for its missing mountpoint (createMountpoints) is where the directory was.
      if (lstatSync(path, { throwIfNoEntry: false })?.isDirectory() === true) rmdirSync(path);
      else rmSync(path, { force: true });
      renameSync(`${path}.away`, path);
    }
  }
}
