// The typed syscall façade against the real kernel: handles, path resolution beneath a
// handle, statx, node creation, and the mount API's thin wrappers with their error shapes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { listMounts, sweepMounts } from '../../src/mounts/index.js';
import {
  constants,
  DirectoryHandle,
  Fd,
  fsconfig,
  fsconfigCreate,
  fsconfigReconfigure,
  fsconfigSetBinary,
  fsconfigSetFd,
  fsconfigSetFlag,
  fsconfigSetPath,
  fsconfigSetPathEmpty,
  fsconfigSetString,
  fsmount,
  fsopen,
  fspick,
  fstat,
  isSystemError,
  listmount,
  mkdirat,
  mknodat,
  mountSetattr,
  moveMount,
  openat2,
  openDirectory,
  openDirectoryBeneath,
  openHandleCount,
  openTree,
  statAt,
  statmount,
  symlinkat,
  umount2,
  unlinkat,
} from '../../src/syscalls/index.js';
import { NetworkNamespaceWorker } from '../../src/syscalls/process.js';
import { busyboxPath } from '../helpers/busybox.js';
import {
  assertNothingLeft,
  needsRoot,
  type ProcessState,
  processState,
  threadsNamed,
} from '../helpers/leaks.js';

let root: string;
let state: ProcessState;
let handles: number;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'chroot-runner-syscalls-'));
  mkdirSync(join(root, 'a/b'), { recursive: true });
  writeFileSync(join(root, 'a/file'), 'contents');
  mkdirSync(join(root, 'outside'));
});

after(() => {
  // Only does something when a test failed half-way and left a mount behind.
  if (needsRoot === false) sweepMounts(root);
  rmSync(root, { recursive: true, force: true });
});

// Every test proves it left nothing: no handle, fd, child or mount beneath the test root.
beforeEach(() => {
  state = processState();
  handles = openHandleCount();
});

afterEach(() => {
  assert.equal(openHandleCount(), handles, 'handles left open');
  assertNothingLeft(state, [root]);
});

function fdFlags(fd: Fd): number {
  const info = readFileSync(`/proc/self/fdinfo/${fd.fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  assert.ok(match?.[1] !== undefined, 'fdinfo has flags');
  return Number.parseInt(match[1], 8);
}

describe('handles', () => {
  test('close() is idempotent, a closed handle refuses its number, dispose closes', () => {
    const dir = openDirectory(root);
    assert.ok(dir instanceof DirectoryHandle);
    assert.equal(openHandleCount(), handles + 1);
    dir.close();
    dir.close();
    assert.equal(dir.closed, true);
    assert.throws(() => dir.fd, /used after close/);
    {
      using disposed = openDirectory(root);
      assert.equal(disposed.closed, false);
    }
  });

  test('release() hands the number over without closing it', () => {
    const dir = openDirectory(root);
    const number = dir.release();
    assert.equal(openHandleCount(), handles);
    const adopted = new Fd(number);
    assert.equal(fstat(adopted).type, 'directory');
    adopted.close();
  });

  test('openDirectory wants an absolute path and names a missing one', () => {
    assert.throws(() => openDirectory('relative'), TypeError);
    assert.throws(() => openDirectory(join(root, 'missing')), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'openat2',
      path: join(root, 'missing'),
    });
    assert.throws(() => openDirectory(join(root, 'a/file')), {
      code: 'ENOTDIR',
      syscall: 'openat2',
    });
  });
});

describe('resolution beneath a handle', () => {
  test("'' and '.' give a new handle on the directory itself; nested paths work", () => {
    using dir = openDirectory(root);
    using same = openDirectoryBeneath(dir, '');
    using dot = openDirectoryBeneath(dir, '.');
    using nested = openDirectoryBeneath(dir, 'a/b');
    assert.notEqual(same.fd, dir.fd);
    assert.equal(fstat(same).ino, fstat(dir).ino);
    assert.equal(fstat(dot).ino, fstat(dir).ino);
    assert.equal(fstat(nested).ino, statAt(dir, 'a/b').ino);
  });

  test('symlinks, escapes, magic links and files are refused with Node-style errors', () => {
    symlinkSyncBeneath('link-in', 'a');
    symlinkSyncBeneath('link-out', '../outside');
    using dir = openDirectory(join(root, 'a'));
    using top = openDirectory(root);
    assert.throws(() => openDirectoryBeneath(top, 'link-in'), {
      code: 'ELOOP',
      errno: -40,
      syscall: 'openat2',
      path: 'link-in',
    });
    assert.throws(() => openDirectoryBeneath(top, 'link-in/b'), { code: 'ELOOP' });
    assert.throws(() => openDirectoryBeneath(dir, '..'), {
      code: 'EXDEV',
      errno: -18,
      syscall: 'openat2',
      path: '..',
    });
    assert.throws(() => openDirectoryBeneath(dir, 'b/../../outside'), { code: 'EXDEV' });
    assert.throws(() => openDirectoryBeneath(dir, '/etc'), { code: 'EXDEV', path: '/etc' });
    assert.throws(() => openDirectoryBeneath(dir, 'file'), {
      code: 'ENOTDIR',
      errno: -20,
      path: 'file',
    });
    assert.throws(() => openDirectoryBeneath(dir, 'missing'), {
      code: 'ENOENT',
      errno: -2,
      path: 'missing',
    });
    using proc = openDirectory('/proc/self');
    assert.throws(() => openDirectoryBeneath(proc, 'cwd'), { code: 'ELOOP', path: 'cwd' });
    assert.throws(
      () =>
        openat2(proc, 'root', {
          flags: constants.O_PATH,
          resolve: constants.RESOLVE_NO_MAGICLINKS,
        }),
      { code: 'ELOOP' },
    );
    unlinkat(top, 'link-in');
    unlinkat(top, 'link-out');
  });

  test("'..' beneath a handle resolves while renames race elsewhere (the kernel's EAGAIN is retried)", async () => {
    // Renames anywhere on the system make the kernel refuse a '..' under RESOLVE_BENEATH
    // with EAGAIN; openat2 retries as its man page says.
    mkdirSync(join(root, 'renamed'));
    // No pipes (stderr is ours): once it is reaped, it holds no fd of this process.
    const renamer = spawn(
      'python3',
      [
        '-c',
        'import os, sys\nwhile True:\n  os.rename(sys.argv[1], sys.argv[2]); os.rename(sys.argv[2], sys.argv[1])',
        join(root, 'renamed'),
        join(root, 'renamed-again'),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const closed = once(renamer, 'close');
    try {
      await once(renamer, 'spawn');
      using dir = openDirectory(join(root, 'a'));
      for (let i = 0; i < 50_000; i++) openDirectoryBeneath(dir, 'b/../b/..').close();
    } finally {
      renamer.kill('SIGKILL');
      await closed;
    }
    rmSync(join(root, 'renamed'), { recursive: true, force: true });
    rmSync(join(root, 'renamed-again'), { recursive: true, force: true });
  });

  test('openat2 reads, creates with a mode, and scopes absolute symlinks with RESOLVE_IN_ROOT', () => {
    using dir = openDirectory(root);
    const file = openat2(dir, 'a/file', { flags: constants.O_RDONLY });
    const buffer = Buffer.alloc(16);
    assert.equal(buffer.toString('utf8', 0, readSync(file.fd, buffer)), 'contents');
    file.close();
    const created = openat2(dir, 'a/created', {
      flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      mode: 0o640,
    });
    created.close();
    assert.equal(statAt(dir, 'a/created').mode & 0o777, 0o640 & ~process.umask());
    unlinkat(dir, 'a/created');
    symlinkat('/a/file', dir, 'absolute');
    const inRoot = openat2(dir, 'absolute', {
      flags: constants.O_RDONLY,
      resolve: constants.RESOLVE_IN_ROOT,
    });
    assert.equal(buffer.toString('utf8', 0, readSync(inRoot.fd, buffer)), 'contents');
    inRoot.close();
    assert.throws(
      () =>
        openat2(dir, 'absolute', { flags: constants.O_RDONLY, resolve: constants.RESOLVE_BENEATH }),
      { code: 'EXDEV' },
    );
    unlinkat(dir, 'absolute');
    assert.throws(() => openat2(dir, 'a', { flags: constants.O_RDONLY, resolve: 0x4000 }), {
      code: 'EINVAL',
      syscall: 'openat2',
    });
  });

  test('every fd is close-on-exec', () => {
    using dir = openDirectory(root);
    using file = openat2(dir, 'a/file', { flags: constants.O_RDONLY });
    using tree = openTree(dir, 'a', constants.AT_EMPTY_PATH);
    for (const fd of [dir, file, tree]) assert.ok(fdFlags(fd) & constants.O_CLOEXEC);
  });
});

describe('statx and node creation', () => {
  test('statAt reports every file type, mode, owner, size and the mount id', () => {
    using dir = openDirectory(root);
    mkdirat(dir, 'nodes', 0o750);
    using nodes = openDirectoryBeneath(dir, 'nodes');
    mknodat(nodes, 'fifo', constants.S_IFIFO | 0o600);
    mknodat(nodes, 'socket', constants.S_IFSOCK | 0o600);
    mknodat(nodes, 'file', constants.S_IFREG | 0o644);
    symlinkat('file', nodes, 'symlink');
    assert.equal(statAt(dir, 'nodes').type, 'directory');
    assert.equal(statAt(dir, 'nodes').mode, 0o750 & ~process.umask());
    assert.equal(statAt(nodes, 'fifo').type, 'fifo');
    assert.equal(statAt(nodes, 'socket').type, 'socket');
    assert.equal(statAt(nodes, 'symlink').type, 'symlink');
    assert.equal(statAt(nodes, 'symlink').size, 'file'.length);
    assert.equal(statAt(nodes, 'symlink', { follow: true }).type, 'file');
    const file = statAt(dir, 'a/file');
    assert.deepEqual(
      [file.type, file.size, file.uid, file.gid],
      ['file', 8, process.getuid?.(), process.getgid?.()],
    );
    const devNull = statAt(null, '/dev/null');
    assert.deepEqual(
      [devNull.type, devNull.rdevMajor, devNull.rdevMinor, devNull.mode],
      ['character', 1, 3, 0o666],
    );
    const containing = listMounts('/').filter((mount) =>
      root.startsWith(mount.mountPoint === '/' ? '/' : `${mount.mountPoint}/`),
    );
    assert.equal(file.mountId, containing.at(-1)?.id);
    assert.equal(fstat(dir).isMountRoot, false);
    assert.equal(statAt(null, '/proc').isMountRoot, true);
    assert.throws(() => mknodat(nodes, 'fifo', constants.S_IFIFO | 0o600), {
      code: 'EEXIST',
      errno: -17,
      syscall: 'mknodat',
      path: 'fifo',
    });
    assert.throws(() => mkdirat(dir, 'nodes'), {
      code: 'EEXIST',
      syscall: 'mkdirat',
      path: 'nodes',
    });
    assert.throws(() => symlinkat('x', nodes, 'file'), {
      code: 'EEXIST',
      syscall: 'symlinkat',
      path: 'file',
    });
    assert.throws(() => statAt(dir, 'missing'), {
      code: 'ENOENT',
      syscall: 'statx',
      path: 'missing',
    });
    assert.throws(() => unlinkat(dir, 'nodes'), {
      code: 'EISDIR',
      syscall: 'unlinkat',
      path: 'nodes',
    });
    for (const name of ['fifo', 'socket', 'file', 'symlink']) unlinkat(nodes, name);
    unlinkat(dir, 'nodes', constants.AT_REMOVEDIR);
  });

  test('mknodat makes block and character devices', { skip: needsRoot }, () => {
    using dir = openDirectory(root);
    mknodat(dir, 'block', constants.S_IFBLK | 0o600, 7, 0);
    mknodat(dir, 'character', constants.S_IFCHR | 0o600, 1, 5);
    const block = statAt(dir, 'block');
    const character = statAt(dir, 'character');
    assert.deepEqual([block.type, block.rdevMajor, block.rdevMinor], ['block', 7, 0]);
    assert.deepEqual(
      [character.type, character.rdevMajor, character.rdevMinor],
      ['character', 1, 5],
    );
    unlinkat(dir, 'block');
    unlinkat(dir, 'character');
  });
});

function symlinkSyncBeneath(name: string, target: string): void {
  using dir = openDirectory(root);
  symlinkat(target, dir, name);
}

describe('mount API wrappers', { skip: needsRoot }, () => {
  test('fsopen, every fsconfig command, fsmount, mount_setattr, move_mount, umount2', () => {
    using dir = openDirectory(root);
    mkdirat(dir, 'mnt');
    assert.throws(() => fsopen('no-such-filesystem'), {
      code: 'ENODEV',
      errno: -19,
      syscall: 'fsopen',
      path: 'no-such-filesystem',
    });
    const fs = fsopen('tmpfs');
    assert.ok(fdFlags(fs) & constants.O_CLOEXEC);
    fsconfigSetString(fs, 'source', 'chroot-runner-test');
    fsconfigSetString(fs, 'size', '1m');
    fsconfigSetFlag(fs, 'ro');
    fsconfig(fs, constants.FSCONFIG_SET_STRING, 'mode', '0700', 0);
    assert.throws(
      () => fsconfig(fs, constants.FSCONFIG_SET_STRING, 'mode', Buffer.from('0700'), 0),
      TypeError,
    );
    assert.throws(() => fsconfigSetBinary(fs, 'size', Buffer.from('1m')), {
      code: 'EINVAL',
      syscall: 'fsconfig',
      path: 'size',
    });
    assert.throws(() => fsconfigSetPath(fs, 'size', null, '/dev/null'), {
      code: 'EINVAL',
      syscall: 'fsconfig',
      path: '/dev/null',
    });
    assert.throws(() => fsconfigSetPathEmpty(fs, 'size', dir), {
      code: 'EINVAL',
      syscall: 'fsconfig',
      path: '',
    });
    assert.throws(() => fsconfigSetFd(fs, 'size', dir), {
      code: 'EINVAL',
      syscall: 'fsconfig',
      path: 'size',
    });
    assert.throws(() => fsconfigSetFlag(fs, 'no-such-option'), {
      code: 'EINVAL',
      path: 'no-such-option',
    });
    fsconfigCreate(fs);
    assert.throws(() => fsconfigSetString(fs, 'size', '2m'), { code: 'EBUSY', path: 'size' });
    const mount = fsmount(fs, constants.MOUNT_ATTR_NODEV);
    fs.close();
    const picked = fspick(mount, '', constants.FSPICK_EMPTY_PATH);
    assert.ok(fdFlags(picked) & constants.O_CLOEXEC);
    fsconfigSetString(picked, 'size', '2m');
    fsconfigReconfigure(picked);
    picked.close();
    assert.ok(fdFlags(mount) & constants.O_CLOEXEC);
    mountSetattr(mount, '', constants.AT_EMPTY_PATH, { attrSet: constants.MOUNT_ATTR_NOEXEC });
    using target = openDirectoryBeneath(dir, 'mnt');
    moveMount(
      mount,
      '',
      target,
      '',
      constants.MOVE_MOUNT_F_EMPTY_PATH | constants.MOVE_MOUNT_T_EMPTY_PATH,
    );
    const [info] = listMounts(join(root, 'mnt'));
    assert.equal(info?.fstype, 'tmpfs');
    assert.equal(info?.source, 'chroot-runner-test');
    assert.ok(info?.options.includes('nodev') && info.options.includes('noexec'));
    assert.ok(info?.superOptions.includes('ro') && info.superOptions.includes('size=2048k'));
    assert.throws(() => mountSetattr(dir, 'missing', 0, { propagation: constants.MS_PRIVATE }), {
      code: 'ENOENT',
      syscall: 'mount_setattr',
      path: 'missing',
    });
    assert.throws(() => umount2(join(root, 'a')), {
      code: 'EINVAL',
      errno: -22,
      syscall: 'umount2',
      path: join(root, 'a'),
    });
    const attached = listmount()
      .map((id) => statmount(id, constants.STATMOUNT_MNT_BASIC | constants.STATMOUNT_MNT_POINT))
      .find((status) => status?.mountPoint === join(root, 'mnt'));
    assert.equal(attached?.id, info?.id);
    assert.equal(attached?.attributes, constants.MOUNT_ATTR_NODEV | constants.MOUNT_ATTR_NOEXEC);
    assert.equal(statmount(2 ** 52, constants.STATMOUNT_MNT_BASIC), null);
    umount2(`/proc/self/fd/${mount.fd}`, constants.MNT_DETACH);
    mount.close();
    assert.throws(() => openTree(null, join(root, 'missing'), constants.OPEN_TREE_CLONE), {
      code: 'ENOENT',
      syscall: 'open_tree',
      path: join(root, 'missing'),
    });
    assert.throws(
      () => moveMount(dir, '', dir, '', constants.MOVE_MOUNT_F_EMPTY_PATH),
      (error) => {
        assert.ok(isSystemError(error, 'ENOENT') && error.syscall === 'move_mount');
        assert.equal(error.path, undefined);
        return true;
      },
    );
    assert.throws(() => moveMount(dir, 'a', dir, 'mnt', 0), {
      code: 'EINVAL',
      syscall: 'move_mount',
      path: 'mnt',
    });
    unlinkat(dir, 'mnt', constants.AT_REMOVEDIR);
  });
});

describe('network namespaces made on a thread of their own', { skip: needsRoot }, () => {
  /** A line of a script run apart (a child process, a worker_thread) that imports the worker. */
  const importWorker = `const { NetworkNamespaceWorker } = await import(${JSON.stringify(
    new URL('../../src/syscalls/process.js', import.meta.url).href,
  )});`;

  test('root only of a user namespace of its own makes one, and no thread is left in it', async () => {
    // Root of a user namespace of its own (0 mapped to 0) may unshare a network namespace
    // (it belongs to that user namespace) but not setns back into the host's: the worker
    // that made it stays in it, and ends at close (joined). Each of the runner's other
    // threads is still in its own namespace throughout; after close none is named
    // netns-ahead.
    const script =
      importWorker +
      "const { readdirSync, readFileSync, readlinkSync } = await import('node:fs');" +
      "const own = readlinkSync('/proc/self/ns/net');" +
      "const threads = () => readdirSync('/proc/self/task').map((task) => {" +
      '  try {' +
      "    const comm = readFileSync('/proc/self/task/' + task + '/comm', 'utf8');" +
      "    const namespace = readlinkSync('/proc/self/task/' + task + '/ns/net');" +
      "    return comm === 'netns-ahead\\n' ? 'worker' : namespace;" +
      '  } catch { return own; } });' +
      'const worker = new NetworkNamespaceWorker();' +
      "for (const priority of ['normal', 'idle']) {" +
      "  const made = await worker.create(priority, ['dev']);" +
      "  const target = readlinkSync('/proc/self/fd/' + made.fd);" +
      "  const others = threads().filter((namespace) => namespace !== 'worker');" +
      '  made.close();' +
      "  console.log(target !== own && target.startsWith('net:[') ? 'made' : target," +
      "    others.every((namespace) => namespace === own) ? 'threads home' : others);" +
      '}' +
      'worker.close();' +
      "console.log(threads().every((namespace) => namespace === own) ? 'worker gone' : threads());" +
      // A worker never closed keeps nothing alive once idle: the process ends by itself (the
      // test times out otherwise), its thread stopped at the environment's teardown.
      "(await new NetworkNamespaceWorker().create('idle', ['dev'])).close();";
    const child = spawn(
      'unshare',
      ['--user', '--map-root-user', process.execPath, '--input-type=module', '-e', script],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    // 'close': the exit and both pipes closed, so the fd count of afterEach is settled.
    const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
    assert.equal(signal, null, `the process was killed: ${output}`);
    assert.equal(code, 0, output);
    assert.equal(output, 'made threads home\nmade threads home\nworker gone\n');
  });

  test('a check reads the files kept open anew: what a process left in the namespace shows, an absent file stays absent', async () => {
    const worker = new NetworkNamespaceWorker();
    try {
      const made = await worker.create('normal', ['dev', 'snmp', 'no-such-file']);
      try {
        assert.equal(made.files[2], null);
        assert.match(made.files[0] ?? '', /^ +lo: +0 +0 /m);
        assert.deepEqual(await worker.check(made, 'idle'), [true, true, true]);
        // A connection refused over lo, by a process that entered the namespace: packets on
        // lo and TCP counters, read through the files opened when it was made.
        const entered = spawnSync('nsenter', [
          `--net=/proc/${process.pid}/fd/${made.fd}`,
          busyboxPath,
          'sh',
          '-c',
          `${busyboxPath} nc 127.0.0.1 9 </dev/null; true`,
        ]);
        assert.equal(entered.status, 0, String(entered.stderr));
        const [dev, snmp, absent] = await worker.check(made, 'idle');
        assert.equal(absent, true);
        assert.equal(typeof dev, 'string');
        assert.doesNotMatch(String(dev), /^ +lo: +0 +0 /m);
        assert.equal(typeof snmp, 'string');
        assert.notEqual(snmp, made.files[1]);
      } finally {
        made.close();
      }
    } finally {
      worker.close();
    }
  });

  test('a worker never closed ends with the environment that opened it (a worker_thread)', async () => {
    const threads = () => threadsNamed('netns-ahead');
    const before = threads();
    // CommonJS (a worker's eval), so the module is imported in an async function.
    const script =
      '(async () => {' +
      importWorker +
      "const { parentPort } = require('node:worker_threads');" +
      "const made = await new NetworkNamespaceWorker().create('idle', ['dev']);" +
      'made.close();' +
      // Alive until told to end: then its event loop is empty, and the environment ends.
      "parentPort.once('message', () => parentPort.close());" +
      "parentPort.postMessage('made');" +
      '})();';
    const thread = new Worker(script, { eval: true });
    const [message] = (await once(thread, 'message')) as [string];
    assert.equal(message, 'made');
    assert.equal(threads(), before + 1);
    thread.postMessage('end');
    // The environment's teardown stops and joins its thread before 'exit'.
    const [code] = (await once(thread, 'exit')) as [number];
    assert.equal(code, 0);
    assert.equal(threads(), before);
  });
  test('with sysfs, a detached read-only sysfs of the new namespace comes with it, closed with it', async () => {
    const withSysfs = new NetworkNamespaceWorker({ sysfs: true });
    const without = new NetworkNamespaceWorker();
    try {
      const made = await withSysfs.create('normal', []);
      try {
        assert.ok(made.sysfs !== undefined, 'no sysfs');
        const at = `/proc/self/fd/${made.sysfs.fd}`;
        // Its own interfaces (loopback only), not the runner's; read-only.
        assert.deepEqual(readdirSync(`${at}/class/net`), ['lo']);
        assert.ok(readdirSync('/sys/class/net').length > 1, 'the host has only loopback');
        assert.throws(() => writeFileSync(`${at}/kernel/profiling`, '1'), { code: 'EROFS' });
        const plain = await without.create('normal', []);
        plain.close();
        assert.equal(plain.sysfs, undefined);
      } finally {
        made.close();
      }
      // Closed with its namespace (afterEach counts the fds).
      assert.equal(made.sysfs.closed, true);
    } finally {
      withSysfs.close();
      without.close();
    }
  });
});
