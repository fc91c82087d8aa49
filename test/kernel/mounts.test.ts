// mountat, unmountat, listMounts and sweepMounts against the real kernel, as root. The test
// root lives under os.tmpdir() and is bound onto itself with private propagation first, so
// that nothing mounted beneath it propagates anywhere, whatever the host's / is.
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import {
  listMounts,
  type Mount,
  type MountSpec,
  mountat,
  openMount,
  readMountinfo,
  readStatmount,
  sweepMounts,
  unmountat,
  usesStatmount,
} from '../../src/mounts/index.js';
import {
  constants,
  type DirectoryHandle,
  openat2,
  openDirectory,
  openHandleCount,
  statAt,
  symlinkat,
} from '../../src/syscalls/index.js';
import { hostMountTable, ownMountNamespace } from '../helpers/hostile.js';
import { assertNothingLeft, needsRoot, type ProcessState, processState } from '../helpers/leaks.js';

// The host these tests compare before and after is this file's alone.
await ownMountNamespace(import.meta.url);

const proc: MountSpec = { fstype: 'proc', attributes: { nosuid: true, nodev: true, noexec: true } };
const tmpfs: MountSpec = { fstype: 'tmpfs', options: { size: '1m' } };

describe('mounts', { skip: needsRoot }, () => {
  let testRoot: string;
  let privateRoot: Mount;
  /** This test's directory beneath the test root, made fresh for every test. */
  let caseDir: string;
  let state: ProcessState;
  let handles: number;

  before(() => {
    testRoot = mkdtempSync(join(tmpdir(), 'chroot-runner-mounts-'));
    using parent = openDirectory(dirname(testRoot));
    privateRoot = mountat(parent, basename(testRoot), { bind: testRoot, propagation: 'private' });
  });

  after(() => {
    // Only does something when a test failed and left mounts behind.
    sweepMounts(testRoot);
    unmountat(privateRoot);
    assert.deepEqual(listMounts(testRoot), []);
    rmSync(testRoot, { recursive: true, force: true });
  });

  beforeEach(() => {
    // A directory of its own, so that a failed test does not take the next ones with it.
    caseDir = mkdtempSync(join(testRoot, 'case-'));
    state = processState();
    handles = openHandleCount();
  });

  afterEach(() => {
    assert.equal(openHandleCount(), handles, 'handles left open');
    assertNothingLeft(state, [caseDir]);
    rmSync(caseDir, { recursive: true });
  });

  /** Makes directories beneath the case directory and opens the first. */
  function layout(root: string, ...directories: string[]): DirectoryHandle {
    for (const directory of [root, ...directories]) {
      mkdirSync(join(caseDir, directory), { recursive: true });
    }
    return openDirectory(join(caseDir, root));
  }

  function mountInfoAt(path: string) {
    const found = listMounts(path).filter((mount) => mount.mountPoint === path);
    assert.equal(found.length, 1, `one mount at ${path}`);
    return found[0] as NonNullable<(typeof found)[0]>;
  }

  test('proc, read-only sysfs and tmpfs relative to a handle are visible inside', () => {
    using dir = layout('root', 'root/proc', 'root/sys', 'root/tmp');
    const root = join(caseDir, 'root');
    const procMount = mountat(dir, 'proc', proc);
    const sysMount = mountat(dir, 'sys', { fstype: 'sysfs', attributes: { readonly: true } });
    const tmpMount = mountat(dir, 'tmp', {
      fstype: 'tmpfs',
      source: 'chroot-runner',
      options: { size: '1m', mode: '0700' },
      attributes: { nodev: true },
    });

    assert.equal(readlinkSync(join(root, 'proc/self')), String(process.pid));
    assert.deepEqual(statAt(dir, 'proc').mountId, procMount.mountId);
    assert.equal(statAt(dir, 'proc').isMountRoot, true);
    const procInfo = mountInfoAt(join(root, 'proc'));
    assert.equal(procInfo.fstype, 'proc');
    assert.equal(procInfo.id, procMount.mountId);
    for (const flag of ['nosuid', 'nodev', 'noexec']) assert.ok(procInfo.options.includes(flag));

    assert.ok(existsSync(join(root, 'sys/kernel')));
    assert.ok(mountInfoAt(join(root, 'sys')).options.includes('ro'));
    assert.throws(() => mkdirSync(join(root, 'sys/x')), { code: 'EROFS' });

    writeFileSync(join(root, 'tmp/file'), 'in tmpfs');
    assert.equal(statAt(dir, 'tmp').mode, 0o700);
    const tmpInfo = mountInfoAt(join(root, 'tmp'));
    assert.equal(tmpInfo.source, 'chroot-runner');
    assert.ok(tmpInfo.superOptions.includes('size=1024k'));
    assert.ok(tmpInfo.options.includes('nodev'));

    for (const mount of [tmpMount, sysMount, procMount]) unmountat(mount);
    assert.equal(existsSync(join(root, 'tmp/file')), false);
  });

  test('binds: host directories (recursive or not, read-only), mounts, and host nodes onto files', () => {
    using dir = layout('root', 'root/plain', 'root/recursive', 'root/ro', 'host/sub');
    using host = openDirectory(join(caseDir, 'host'));
    const root = join(caseDir, 'root');
    writeFileSync(join(caseDir, 'host/marker'), 'host');
    const submount = mountat(host, 'sub', tmpfs);
    writeFileSync(join(caseDir, 'host/sub/in-submount'), '');

    const plain = mountat(dir, 'plain', { bind: join(caseDir, 'host') });
    const recursive = mountat(dir, 'recursive', { bind: join(caseDir, 'host'), recursive: true });
    const readOnly = mountat(dir, 'ro', {
      bind: join(caseDir, 'host'),
      attributes: { readonly: true },
    });
    assert.equal(readFileSync(join(root, 'plain/marker'), 'utf8'), 'host');
    assert.equal(existsSync(join(root, 'plain/sub/in-submount')), false);
    assert.equal(existsSync(join(root, 'recursive/sub/in-submount')), true);
    assert.throws(() => writeFileSync(join(root, 'ro/marker'), 'x'), { code: 'EROFS' });
    writeFileSync(join(root, 'plain/written'), 'through the bind');
    assert.equal(readFileSync(join(caseDir, 'host/written'), 'utf8'), 'through the bind');

    // A bind of a Mount handle, onto a mountpoint created for it.
    const again = mountat(dir, 'again', { bind: submount }, { createMountpoint: true });
    assert.ok(existsSync(join(root, 'again/in-submount')));

    // A host node bound onto an empty file made beneath a Mount handle.
    const dev = mountat(dir, 'dev', tmpfs, { createMountpoint: true });
    const devNull = mountat(dev, 'null', { bind: '/dev/null' }, { createMountpoint: true });
    assert.equal(devNull.isDirectory, false);
    writeFileSync(join(root, 'dev/null'), 'discarded');
    const status = statAt(dir, 'dev/null');
    assert.deepEqual([status.type, status.rdevMajor, status.rdevMinor], ['character', 1, 3]);

    for (const mount of [devNull, dev, again, readOnly, recursive, plain, submount]) {
      unmountat(mount);
    }
    assert.equal(statAt(dir, 'again').type, 'directory');
    assert.equal(statAt(dir, 'dev').type, 'directory');
  });

  test("the shared isolation mode's layout mounts and unmounts cleanly", () => {
    using dir = layout('root', 'root/proc', 'root/sys', 'root/dev', 'root/tmp', 'action-tmp');
    const root = join(caseDir, 'root');
    const mounts: Mount[] = [];
    mounts.push(mountat(dir, 'proc', proc));
    mounts.push(
      mountat(dir, 'sys', {
        fstype: 'sysfs',
        attributes: { readonly: true, nosuid: true, nodev: true, noexec: true },
      }),
    );
    const dev = mountat(dir, 'dev', {
      fstype: 'tmpfs',
      options: { mode: '0755', size: '64k' },
      attributes: { nosuid: true, noexec: true },
    });
    mounts.push(dev);
    for (const node of ['null', 'zero', 'random', 'urandom', 'tty']) {
      mounts.push(mountat(dev, node, { bind: `/dev/${node}` }, { createMountpoint: true }));
    }
    // A host node held by an O_PATH handle binds the same way.
    using full = openat2(null, '/dev/full', { flags: constants.O_PATH });
    mounts.push(mountat(dev, 'full', { bind: full }, { createMountpoint: true }));
    symlinkat('/proc/self/fd', dev, 'fd');
    symlinkat('pts/ptmx', dev, 'ptmx');
    mounts.push(
      mountat(
        dev,
        'pts',
        {
          fstype: 'devpts',
          options: { newinstance: true, ptmxmode: '0666', mode: '0620' },
          attributes: { nosuid: true, noexec: true },
        },
        { createMountpoint: true },
      ),
    );
    mounts.push(mountat(dev, 'shm', tmpfs, { createMountpoint: true }));
    mounts.push(mountat(dir, 'tmp', { bind: join(caseDir, 'action-tmp') }));

    const zero = openSync(join(root, 'dev/zero'), 'r');
    const buffer = Buffer.alloc(16, 1);
    readSync(zero, buffer);
    closeSync(zero);
    assert.deepEqual(buffer, Buffer.alloc(16));
    assert.equal(statAt(dir, 'dev/zero').rdevMinor, 5);
    assert.equal(statAt(dir, 'dev/full').rdevMinor, 7);
    assert.equal(statAt(dir, 'dev/pts/ptmx').type, 'character');
    assert.equal(readlinkSync(join(root, 'dev/fd')), '/proc/self/fd');
    writeFileSync(join(root, 'dev/shm/segment'), '');
    writeFileSync(join(root, 'tmp/scratch'), 'x');
    assert.ok(existsSync(join(caseDir, 'action-tmp/scratch')));
    assert.equal(listMounts(root).length, mounts.length);

    for (const mount of mounts.reverse()) unmountat(mount);
  });

  test("unmount by handle after the mountpoint's parent was renamed", () => {
    using dir = layout('root', 'root/a/b', 'root/other');
    const root = join(caseDir, 'root');
    const moved = mountat(dir, 'a/b', tmpfs);
    const other = mountat(dir, 'other', tmpfs);
    renameSync(join(root, 'a'), join(root, 'c'));
    assert.equal(mountInfoAt(join(root, 'c/b')).id, moved.mountId);
    unmountat(moved);
    assert.deepEqual(
      listMounts(root).map((mount) => mount.mountPoint),
      [join(root, 'other')],
    );
    unmountat(other);
  });

  test('unmount by handle removes exactly its mount when others are stacked on it', () => {
    using dir = layout('root', 'root/a', 'root/b');
    const root = join(caseDir, 'root');
    // Unmounting the upper one leaves the lower one.
    const lower = mountat(dir, 'a', tmpfs);
    const upper = mountat(dir, 'a', tmpfs);
    unmountat(upper);
    assert.equal(mountInfoAt(join(root, 'a')).id, lower.mountId);
    unmountat(lower);
    assert.deepEqual(listMounts(root), []);
    // Unmounting the lower one takes what is stacked on it (umount2 alone, through the
    // handle, would remove only the topmost mount of the stack).
    const bottom = mountat(dir, 'b', tmpfs);
    mountat(dir, 'b', tmpfs).close();
    mountat(dir, 'b', tmpfs).close();
    unmountat(bottom);
    assert.deepEqual(listMounts(root), []);
  });

  test("unmount by handle after the mountpoint's parent was replaced by a symlink", () => {
    using dir = layout('root', 'root/a/mnt', 'elsewhere/mnt');
    using elsewhere = openDirectory(join(caseDir, 'elsewhere'));
    const root = join(caseDir, 'root');
    const mount = mountat(dir, 'a/mnt', tmpfs);
    const decoy = mountat(elsewhere, 'mnt', tmpfs);
    renameSync(join(root, 'a'), join(root, 'a-old'));
    symlinkSync(join(caseDir, 'elsewhere'), join(root, 'a'));
    // The old path now leads to the decoy; the handle still names the original.
    assert.equal(statAt(null, join(root, 'a/mnt'), { follow: true }).mountId, decoy.mountId);
    unmountat(mount);
    assert.deepEqual(listMounts(root), []);
    assert.equal(mountInfoAt(join(caseDir, 'elsewhere/mnt')).id, decoy.mountId);
    unmountat(decoy);
  });

  test('a symlinked mountpoint pointing outside is refused and nothing is mounted outside', () => {
    using dir = layout('root', 'outside/proc', 'outside/dir');
    const root = join(caseDir, 'root');
    symlinkSync('../outside/proc', join(root, 'relative'));
    symlinkSync(join(caseDir, 'outside/proc'), join(root, 'absolute'));
    symlinkSync('../outside', join(root, 'parent'));
    const mountinfo = hostMountTable(testRoot);
    for (const spec of [proc, { bind: '/dev/null' }, { bind: join(caseDir, 'outside/dir') }]) {
      for (const name of ['relative', 'absolute', 'parent/proc']) {
        assert.throws(() => mountat(dir, name, spec), {
          code: 'ELOOP',
          errno: -40,
          syscall: 'openat2',
          path: name,
        });
      }
      assert.throws(() => mountat(dir, '../outside/proc', spec), { code: 'EXDEV' });
      assert.throws(() => mountat(dir, 'parent/created', spec, { createMountpoint: true }), {
        code: 'ELOOP',
        path: 'parent/created',
      });
    }
    assert.equal(existsSync(join(caseDir, 'outside/created')), false);
    assert.equal(hostMountTable(testRoot), mountinfo);
  });

  test('200 concurrent mount/unmount pairs leave mountinfo and the cwd exactly as before', async () => {
    const pairs = 200;
    using dir = layout('root');
    for (let i = 0; i < pairs; i++) mkdirSync(join(caseDir, 'root', `m${i}`));
    const mountinfo = hostMountTable(testRoot);
    const cwd = process.cwd();
    const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
    let mounted = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: pairs }, async (_, i) => {
        await yieldTurn();
        const name = `m${i}`;
        const mount = mountat(dir, name, i % 2 === 0 ? proc : tmpfs);
        peak = Math.max(peak, ++mounted);
        await yieldTurn();
        // Among all the others, the handle and the path still agree on this mount.
        assert.equal(statAt(dir, name).mountId, mount.mountId);
        await yieldTurn();
        unmountat(mount);
        mounted--;
      }),
    );
    assert.ok(peak > pairs / 2, `pairs interleaved (peak ${peak} mounted at once)`);
    assert.equal(hostMountTable(testRoot), mountinfo);
    assert.equal(process.cwd(), cwd);
  });

  test('every error names what failed: code, errno, syscall and path', () => {
    using dir = layout('root', 'root/dir', 'root/sub/inner');
    const root = join(caseDir, 'root');
    writeFileSync(join(root, 'file'), '');
    symlinkSync('dir', join(root, 'link'));

    assert.throws(() => mountat(dir, 'missing', tmpfs), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'openat2',
      path: 'missing',
    });
    assert.throws(() => mountat(dir, 'missing/deeper', tmpfs, { createMountpoint: true }), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'openat2',
      path: 'missing/deeper',
    });
    assert.throws(() => mountat(dir, 'dir', { bind: join(caseDir, 'missing') }), {
      code: 'ENOENT',
      syscall: 'open_tree',
      path: join(caseDir, 'missing'),
    });
    assert.throws(() => mountat(dir, 'link', tmpfs), {
      code: 'ELOOP',
      errno: -40,
      syscall: 'openat2',
      path: 'link',
    });
    assert.throws(() => mountat(dir, 'file', tmpfs), {
      code: 'ENOTDIR',
      errno: -20,
      syscall: 'openat2',
      path: 'file',
    });
    assert.throws(() => mountat(dir, 'file/below', tmpfs), { code: 'ENOTDIR', path: 'file/below' });
    assert.throws(() => mountat(dir, 'dir', { bind: '/dev/null' }), {
      code: 'EISDIR',
      errno: -21,
      syscall: 'mountat',
      path: 'dir',
    });
    assert.throws(() => mountat(dir, 'file', { bind: join(caseDir, 'root/dir') }), {
      code: 'ENOTDIR',
      syscall: 'openat2',
      path: 'file',
    });
    assert.throws(() => mountat(dir, 'sub/../../root', tmpfs), {
      code: 'EXDEV',
      errno: -18,
      syscall: 'openat2',
      path: 'sub/../../root',
    });
    assert.throws(() => mountat(dir, root, tmpfs), { code: 'EXDEV', path: root });
    assert.throws(
      () => mountat(dir, 'dir', { fstype: 'tmpfs', options: { 'no-such-option': 'x' } }),
      {
        code: 'EINVAL',
        errno: -22,
        syscall: 'fsconfig',
        path: 'no-such-option',
        message: /Unknown parameter 'no-such-option'/,
      },
    );
    assert.throws(() => mountat(dir, 'dir', { fstype: 'no-such-filesystem' }), {
      code: 'ENODEV',
      errno: -19,
      syscall: 'fsopen',
      path: 'no-such-filesystem',
    });
    assert.throws(() => mountat(dir, 'missing/..', tmpfs, { createMountpoint: true }), {
      code: 'EINVAL',
      errno: -22,
      syscall: 'mountat',
      path: 'missing/..',
    });
    assert.throws(() => openMount(dir, 'dir'), {
      code: 'EINVAL',
      errno: -22,
      syscall: 'openMount',
      path: 'dir',
    });

    const outer = mountat(dir, 'sub', tmpfs);
    const inner = mountat(dir, 'sub', tmpfs, { createMountpoint: false });
    assert.throws(() => unmountat(outer, { detach: false }), {
      code: 'EBUSY',
      errno: -16,
      syscall: 'umount2',
      path: 'sub',
    });
    assert.equal(outer.closed, false, 'a refused unmount keeps the handle');
    const second = openMount(dir, 'sub');
    assert.equal(second.mountId, inner.mountId);
    unmountat(inner, { detach: false });
    assert.throws(() => unmountat(second), {
      code: 'EINVAL',
      syscall: 'umount2',
      path: `/proc/self/fd/${second.fd}`,
    });
    assert.equal(second.closed, true);
    unmountat(outer, { detach: false });
    assert.throws(() => unmountat(outer), /used after close/);
  });

  test('createMountpoint makes only the last component: a directory, or a file for a node', () => {
    using dir = layout('root', 'root/existing');
    const made = mountat(dir, 'made', tmpfs, { createMountpoint: true });
    const existing = mountat(dir, 'existing', tmpfs, { createMountpoint: true });
    const nested = mountat(made, 'a', tmpfs, { createMountpoint: true });
    const node = mountat(dir, 'node', { bind: '/dev/zero' }, { createMountpoint: true });
    for (const mount of [node, nested, existing, made]) unmountat(mount);
    assert.equal(statAt(dir, 'made').type, 'directory');
    assert.equal(statAt(dir, 'node').type, 'file');
    assert.equal(statAt(dir, 'node').size, 0);
  });

  test('listMounts decodes escapes and reports ids, devices, options and propagation', () => {
    const name = 'odd name\twith\nnewline and \\';
    using dir = layout('root', `root/${name}`, 'root/shared', 'root/slave', 'root/unbindable');
    const root = join(caseDir, 'root');
    const odd = mountat(dir, name, {
      fstype: 'tmpfs',
      source: 'a source',
      attributes: { noatime: true },
    });
    const info = mountInfoAt(join(root, name));
    assert.equal(info.mountPoint, join(root, name));
    assert.equal(info.source, 'a source');
    assert.equal(info.fstype, 'tmpfs');
    assert.equal(info.id, odd.mountId);
    assert.equal(info.parentId, privateRoot.mountId);
    assert.equal(info.major, 0);
    assert.equal(info.root, '/');
    assert.deepEqual(info.propagation, { unbindable: false });
    assert.deepEqual(info.options, ['rw', 'noatime']);

    const shared = mountat(dir, 'shared', { fstype: 'tmpfs', propagation: 'shared' });
    const group = mountInfoAt(join(root, 'shared')).propagation.shared;
    assert.ok(group !== undefined && group > 0);
    const slave = mountat(dir, 'slave', { bind: shared, propagation: 'slave' });
    assert.deepEqual(mountInfoAt(join(root, 'slave')).propagation, {
      master: group,
      unbindable: false,
    });
    const unbindable = mountat(dir, 'unbindable', { fstype: 'tmpfs', propagation: 'unbindable' });
    assert.equal(mountInfoAt(join(root, 'unbindable')).propagation.unbindable, true);
    assert.throws(() => mountat(dir, name, { bind: unbindable }), {
      code: 'EINVAL',
      syscall: 'open_tree',
    });
    const flags = mountat(
      dir,
      'flags',
      {
        bind: join(caseDir, 'root/shared'),
        attributes: { readonly: true, nosuid: true, nodev: true, noexec: true, noatime: true },
      },
      { createMountpoint: true },
    );
    assert.deepEqual(mountInfoAt(join(root, 'flags')).options, [
      'ro',
      'nosuid',
      'nodev',
      'noexec',
      'noatime',
    ]);

    // listmount/statmount (Linux ≥ 6.8) give exactly what mountinfo gives, odd names and
    // propagation included.
    if (usesStatmount()) assert.deepEqual(readStatmount(), readMountinfo());

    unmountat(flags);

    for (const mount of [unbindable, slave, shared, odd]) unmountat(mount);
  });

  test('sweepMounts removes stale mounts beneath a directory, newest first, but not the directory', () => {
    using dir = layout('root', 'root/x', 'root/y');
    const root = join(caseDir, 'root');
    const stale = [
      mountat(dir, 'x', tmpfs),
      mountat(dir, 'x/proc', proc, { createMountpoint: true }),
      mountat(dir, 'y', tmpfs),
      mountat(dir, 'y', tmpfs),
    ];
    // Forgetting the handles leaves the mounts behind, as a killed runner would.
    for (const mount of stale) mount.close();
    assert.equal(listMounts(root).length, 4);
    assert.equal(sweepMounts(root), 4);
    assert.deepEqual(listMounts(root), []);
    assert.equal(mountInfoAt(testRoot).id, privateRoot.mountId);
    assert.equal(sweepMounts(root), 0);
  });
});
