// Shared mode's mounts: the special mounts of special-mounts.ts made with mountat in the
// runner's own mount namespace, into the action's input root, and removed by handle after the
// action; what a killed runner left of them is swept at start-up.
import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import {
  listAllMounts,
  type Mount,
  type MountInfo,
  type MountSpec,
  mountat,
  openMount,
  unmountat,
} from '../../mounts/index.js';
import {
  type DirectoryHandle,
  fstat,
  isSystemError,
  openDirectory,
  symlinkat,
  withPath,
} from '../../syscalls/index.js';
import {
  mountDescription,
  mountpointStep,
  plannedSpecialMounts,
  planProc,
} from '../filesystems.js';
import { runnerStep, SetupError, type StepInfo } from '../plan.js';
import {
  emptyDirectoryFilesystem,
  isSpecialMountpoint,
  nameOf,
  parentOf,
} from '../special-mounts.js';
import { ActionError, type SpecialFilesystems } from '../types.js';
import type {
  ActionResource,
  Contribution,
  EngineContext,
  PlanContribution,
} from './contribution.js';

/** The procfs must be made by the action's child, in the action's PID namespace. A small
 * read-only tmpfs is mounted at /proc instead, and the child mounts the procfs onto that
 * holder's root, so that detaching the holder by its handle takes the procfs along,
 * wherever the mountpoint directory went meanwhile. */
const procHolder: MountSpec = emptyDirectory();

/** A new empty read-only directory, as a spec of mountat. */
function emptyDirectory(): MountSpec {
  const { fstype, options, attributes } = emptyDirectoryFilesystem;
  return { fstype, options: { ...options }, attributes };
}

/** The input root as the action sees it: bound onto itself nosuid,nodev (recursively, as
 * namespaces mode clones it), so that setuid programs and device nodes shipped in it are inert
 * (the build directory's own mount is neither); private, so that what is mounted beneath it
 * never propagates to the build directory's peers. The special mounts go beneath it. */
const inputRootBind = (root: DirectoryHandle): MountSpec => ({
  bind: root,
  recursive: true,
  attributes: { nosuid: true, nodev: true },
  propagation: 'private',
});

function mountpointError(error: unknown): boolean {
  return (
    isSystemError(error) && ['ELOOP', 'ENOENT', 'ENOTDIR', 'EXDEV', 'EISDIR'].includes(error.code)
  );
}

/** Runs one operation; a system error becomes a SetupError naming the step (for a mountpoint
 * of the input root, errors that concern the mountpoint are the request's). */
function step<T>(info: StepInfo, operation: () => T, mountpoint?: string): T {
  try {
    return operation();
  } catch (error) {
    if (!isSystemError(error)) throw error;
    const blamed =
      mountpoint !== undefined && mountpointError(error) ? mountpointStep(mountpoint) : info;
    throw new SetupError(blamed, error);
  }
}

/** Mounts made for one action, removed by handle in reverse order; its input root claimed
 * meanwhile. */
class SharedMounts implements ActionResource {
  readonly #mounts: Mount[] = [];
  readonly #claims: Set<string>;
  readonly #claimed: string;
  /** The child mounts the procfs onto the holder at /proc, when there is one. */
  plan: PlanContribution | undefined;
  /** The nosuid,nodev bind of the input root: the action's root. */
  root: Mount | undefined;

  /** Reserves the input root: two actions mounting on the same directories would stack their
   * mounts, and detaching one would take the other's along. Buildbarn gives every action its
   * own input root; this catches the rest. */
  constructor(claims: Set<string>, root: DirectoryHandle, path: string) {
    const { devMajor, devMinor, ino } = fstat(root);
    const key = `${devMajor}:${devMinor}:${ino}`;
    if (claims.has(key)) {
      throw new ActionError(
        'invalidArgument',
        `Input root directory "${path}" is in use by another action, which has mounted into it`,
      );
    }
    claims.add(key);
    this.#claims = claims;
    this.#claimed = key;
  }

  /** Binds the input root onto itself and mounts the enabled entries of the table into
   * that bind; the procfs and what it binds inside are left to the child (plan.filesystems). */
  mount(
    inputRoot: DirectoryHandle,
    host: EngineContext['host'],
    temporaryDirectory: DirectoryHandle | undefined,
    filesystems: SpecialFilesystems,
    unprivilegedActionIds: boolean,
  ): void {
    const root = step(runnerStep('bind the input root nosuid,nodev'), () =>
      mountat(inputRoot, '.', inputRootBind(inputRoot)),
    );
    this.#mounts.push(root);
    this.root = root;
    const made = new Map<string, Mount>();
    for (const entry of plannedSpecialMounts(filesystems, host, unprivilegedActionIds)) {
      const parentAt = parentOf(entry);
      const parent = parentAt === undefined ? root : made.get(parentAt);
      // Beneath /proc: bound and masked by the child, once it mounted the procfs.
      if (parent === undefined || parentAt === 'proc') continue;
      const name = nameOf(entry);
      const info = runnerStep(mountDescription(entry));
      const { source, attributes } = entry;
      if (source.kind === 'symlink') {
        step(info, () => symlinkat(source.target, parent, name));
        continue;
      }
      let spec: MountSpec | undefined;
      if (entry.at === 'proc') spec = procHolder;
      else if (source.kind === 'filesystem') {
        spec = { fstype: source.fstype, options: { ...source.options(filesystems) }, attributes };
      } else if (source.kind === 'deviceNode') {
        const node = host.deviceNodes.get(name);
        if (node !== undefined) spec = { bind: node.fd, attributes };
      } else if (source.kind === 'masked') {
        const devNull = host.deviceNodes.get('null');
        if (source.type === 'directory') spec = { ...emptyDirectory(), attributes };
        else if (devNull !== undefined) spec = { bind: devNull.fd, attributes };
      } else if (source.kind === 'temporaryDirectory' && temporaryDirectory !== undefined) {
        spec = { bind: temporaryDirectory, attributes };
      }
      if (spec === undefined) continue;
      const mountSpec = spec;
      const topLevel = parent === root;
      const mask = source.kind === 'masked';
      let mount: Mount;
      try {
        mount = step(
          entry.at === 'proc' ? runnerStep('mount a holder for /proc') : info,
          () =>
            mountat(parent, name, mountSpec, {
              // A mask covers what the kernel has, and nothing where it has nothing.
              createMountpoint: topLevel ? filesystems.createMountpoints : !mask,
            }),
          topLevel ? `/${entry.at}` : undefined,
        );
      } catch (error) {
        if (mask && error instanceof SetupError && error.cause.code === 'ENOENT') continue;
        throw error;
      }
      this.#mounts.push(mount);
      made.set(entry.at, mount);
      if (entry.at === 'proc') {
        this.plan = {
          filesystems: (plan) =>
            planProc(plan, plan.inherit(mount.fd), host, filesystems, unprivilegedActionIds),
        };
      }
    }
  }

  /** Unmounts everything (innermost first) and releases the claim; the first failure is
   * thrown after all were tried, so that one stuck mount does not leave the others behind. */
  teardown(): void {
    let failure: unknown;
    for (let mount = this.#mounts.pop(); mount !== undefined; mount = this.#mounts.pop()) {
      try {
        unmountat(mount);
      } catch (error) {
        // Named by its mountpoint: the error's own path is the handle's /proc/self/fd/N.
        failure ??= withPath(error, mount.mountpoint);
      }
    }
    this.#claims.delete(this.#claimed);
    if (failure === undefined) return;
    const cause = isSystemError(failure) ? failure : undefined;
    throw new ActionError(
      'internal',
      `Failed to unmount: ${cause?.message ?? String(failure)}`,
      cause,
    );
  }
}

/** Whether `mount` is a directory of its parent mount bound onto itself, nosuid,nodev: an input
 * root's bind (inputRootBind). */
function isInputRootBind(mount: MountInfo, mounts: readonly MountInfo[]): boolean {
  const parent = mounts.find((other) => other.id === mount.parentId);
  return (
    parent !== undefined &&
    parent.major === mount.major &&
    parent.minor === mount.minor &&
    mount.root === posix.join(parent.root, posix.relative(parent.mountPoint, mount.mountPoint)) &&
    mount.options.includes('nosuid') &&
    mount.options.includes('nodev')
  );
}

/** Detaches every mount stacked at `relative` beneath `directory` (the procfs on its holder
 * at /proc): a handle opened by path names the topmost one. */
function detachStack(directory: DirectoryHandle, relative: string): void {
  for (;;) {
    let mount: Mount;
    try {
      mount = openMount(directory, relative);
    } catch (error) {
      if (isSystemError(error, 'EINVAL')) return;
      throw error;
    }
    unmountat(mount);
  }
}

/** Detaches every mount stacked at `path` itself, opened by name in its parent (a handle on
 * `path` would name the topmost mount for good). */
function detachOwnStack(path: string): void {
  const parent = openDirectory(posix.dirname(path));
  try {
    detachStack(parent, posix.basename(path));
  } finally {
    parent.close();
  }
}

export const sharedMounts: Contribution = {
  name: 'sharedMounts',
  // Without chrootIntoInputRoot the action's root is the runner's own: mounting there would
  // change the runner's view, so such actions get none.
  appliesTo: (engine) =>
    engine.strategy.specialMounts === 'runner' && engine.settings.chrootIntoInputRoot !== false,
  prepare({ engine, spec, files }) {
    const mounts = new SharedMounts(engine.inputRootClaims, files.inputRoot, spec.inputRoot);
    try {
      mounts.mount(
        files.inputRoot,
        engine.host,
        files.temporaryDirectory,
        engine.settings.filesystems,
        engine.unprivilegedActionIds,
      );
    } catch (error) {
      try {
        mounts.teardown();
      } catch {
        // The setup failure is the one to report; what could not be unmounted is swept.
      }
      throw error;
    }
    return mounts;
  },
  /** Detaches the input roots' binds and the table's mounts in input roots beneath `path`
   * (and the bind of `path` itself, '.', when it is an input root), never the build
   * directory's own mount nor any other; outermost first (detaching one takes what is beneath
   * it). */
  sweep({ buildDirectoryPath }, path) {
    // mountinfo shows canonical paths.
    const canonical = realpathSync.native(
      path === '' ? buildDirectoryPath : `${buildDirectoryPath}/${path}`,
    );
    if (canonical === '/') throw new Error('refusing to sweep mounts beneath /');
    const prefix = `${canonical}/`;
    const directory = openDirectory(canonical);
    try {
      const swept: string[] = [];
      const mounts = listAllMounts();
      for (const mount of mounts) {
        // `path` itself, when it names an input root (`run`), may carry that root's bind.
        const own = mount.mountPoint === canonical && path !== '';
        if (!own && !mount.mountPoint.startsWith(prefix)) continue;
        const relative = own ? '.' : mount.mountPoint.slice(prefix.length);
        const recognised =
          isInputRootBind(mount, mounts) || (!own && isSpecialMountpoint(relative));
        if (!recognised) continue;
        const beneath = (done: string) =>
          done === '.' || relative === done || relative.startsWith(`${done}/`);
        if (swept.some(beneath)) continue;
        if (own) detachOwnStack(canonical);
        else detachStack(directory, relative);
        swept.push(relative);
      }
      return swept;
    } finally {
      directory.close();
    }
  },
};
