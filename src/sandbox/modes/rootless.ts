// rootless: like namespaces, inside a new user namespace, for an unprivileged runner. The
// runner's own uid and gid are the only ids it may map, so they are the action's. A runner
// that may map any ids (root, or CAP_SETUID and CAP_SETGID in its user namespace) maps the
// action's ids to its slot of the configured range instead (actionUserNamespace, as the other
// modes): its own ids would make the action's uid 0 the host's root. Its clone makes the user
// namespace: as the slot's uid 0 then, which owns it, as in the other modes.
import { readlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { constants, type DirectoryHandle } from '../../syscalls/index.js';
import { type HostIdRange, idMap } from '../contributions/user-namespace.js';
import {
  planSpecialFilesystems,
  planUserNamespaceClones,
  type TemporaryDirectoryLocation,
} from '../filesystems.js';
import { cwd, type PlanBuilder, runnerStep } from '../plan.js';
import {
  ActionError,
  type ActionSpec,
  type IsolationSettings,
  type UserNamespaceIds,
} from '../types.js';
import { type IsolationStrategy, nothingPrepared, unprivilegedWithRange } from './mode.js';
import { pivotInto, planNamespaces } from './namespaces.js';
import { launcherRequirements, mountApi, needCheck } from './requirements.js';

function runnerIds(): UserNamespaceIds {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** The ids the action gets: the runner's own, mapped as configured. The request's
 * credentials can only be those (setgroups is denied, other ids are unmapped). */
function userNamespaceIds(spec: ActionSpec, settings: IsolationSettings): UserNamespaceIds {
  const inside = settings.userNamespace ?? runnerIds();
  const { credentials } = spec;
  if (
    credentials !== undefined &&
    (credentials.uid !== inside.uid ||
      credentials.gid !== inside.gid ||
      credentials.additionalGroups.length > 0)
  ) {
    throw new ActionError(
      'internal',
      `In rootless mode actions run as uid ${inside.uid}, gid ${inside.gid} (the runner's ids ` +
        'as mapped in their user namespace), without additional groups: cannot switch to ' +
        `uid ${credentials.uid}, gid ${credentials.gid}`,
    );
  }
  return inside;
}

/** Maps the runner's uid and gid (the only ids an unprivileged process may map, one line
 * each) in the child's new user namespace; setgroups must be denied before gid_map. */
function planIdMaps(plan: PlanBuilder, inside: UserNamespaceIds): void {
  const info = runnerStep(`map the runner's ids to uid ${inside.uid}, gid ${inside.gid}`);
  const outside = runnerIds();
  plan.writeFile(info, cwd, '/proc/self/setgroups', 'deny');
  plan.writeFile(info, cwd, '/proc/self/gid_map', `${inside.gid} ${outside.gid} 1\n`);
  plan.writeFile(info, cwd, '/proc/self/uid_map', `${inside.uid} ${outside.uid} 1\n`);
}

/** Has the runner map ids 0 to idCount - 1 inside to host ids of `range` while the child
 * waits (only a process of the runner's user namespace may map other ids than its own). The
 * child keeps the runner's file system ids while it opens the host's files it clones, then
 * becomes the namespace's root for the mounts, and at the end the action's ids. */
function planRangeIdMaps(plan: PlanBuilder, inside: UserNamespaceIds, range: HostIdRange): void {
  for (const id of [inside.uid, inside.gid]) {
    if (id >= range.idCount) {
      throw new ActionError(
        'internal',
        `In rootless mode the action's id ${id} (userNamespace) lies beyond the ${range.idCount} ids of actionUserNamespace`,
      );
    }
  }
  plan.awaitIdMaps(
    runnerStep(`map the action's ids to host ids from ${range.firstHostId}`),
    idMap(range, []),
    idMap(range, []),
  );
}

/** Where the runner sees the temporary directory it opened: the child reaches it by this
 * path in its new mount namespace, and checks that it is the same directory. */
function temporaryDirectoryLocation(
  temporaryDirectory: DirectoryHandle | undefined,
): TemporaryDirectoryLocation | undefined {
  if (temporaryDirectory === undefined) return undefined;
  const path = readlinkSync(`/proc/self/fd/${temporaryDirectory.fd}`);
  if (!path.startsWith('/')) {
    throw new ActionError(
      'internal',
      `The temporary directory is not reachable from the runner's root (${path})`,
    );
  }
  return { fd: temporaryDirectory, path };
}

export const rootlessMode: IsolationStrategy = {
  name: 'rootless',
  summary: 'like namespaces, inside a new user namespace, for an unprivileged runner',
  init: 'pid1',
  killSignal: osConstants.signals.SIGKILL,
  actionUserNamespace: false,
  userNamespaceByClone: true,
  // Its uid 0 is the slot's first host id, or the runner's own uid: the host's root only
  // where the runner is root and maps itself.
  unprivilegedActionIds: (settings, host) =>
    host.mapsAnyIds && settings.actionUserNamespace !== undefined
      ? unprivilegedWithRange(settings)
      : runnerIds().uid !== 0,
  pivotsIntoRoot: true,
  specialMounts: 'action',
  temporaryDirectoryInside: (settings) => settings.filesystems.tmp,
  prepare: async () => nothingPrepared,
  plan(plan, { spec, settings, host, files, hostIds, unprivilegedActionIds }) {
    // The network namespace too, owned by the action's user namespace (not the network
    // contribution's: an unprivileged runner can make none that its child could enter).
    planNamespaces(plan, constants.CLONE_NEWUSER | (settings.network ? constants.CLONE_NEWNET : 0));
    const inside = userNamespaceIds(spec, settings);
    const mapsRange = host.mapsAnyIds && settings.actionUserNamespace !== undefined;
    if (mapsRange && hostIds === undefined) {
      throw new TypeError('rootless mode: the action holds no slot of host ids');
    }
    const range = mapsRange ? hostIds : undefined;
    if (range === undefined) planIdMaps(plan, inside);
    else {
      planRangeIdMaps(plan, inside, range);
      // Its slot's uid 0 owns the namespace (the clone is made as it): the kernel charges
      // what the action does to that id, not to the runner's root (SECURITY.md, R4).
      plan.cloneOwner = { uid: range.firstHostId, gid: range.firstHostId };
    }
    if (settings.network) plan.loopbackUp(runnerStep('bring the loopback interface up'));
    plan.fchdir(runnerStep('enter the input root'), plan.inherit(files.inputRoot.fd));
    plan.unshare(runnerStep('create a mount namespace'), constants.CLONE_NEWNS);
    // Before anything is mounted, or mounts (and the detach of the old root) would propagate
    // to the host wherever / is shared.
    plan.setRootPropagation(
      runnerStep('make the mount tree a slave of the host'),
      constants.MS_SLAVE,
    );
    const clones = planUserNamespaceClones(
      plan,
      host,
      temporaryDirectoryLocation(files.temporaryDirectory),
      settings.filesystems,
      unprivilegedActionIds,
      !settings.network,
    );
    // pivot_root needs a mount point: bind the input root (now the cwd) onto itself. The
    // clone's fd names the new root from here on.
    const bind = runnerStep('bind the input root onto itself');
    const root = plan.openTree(bind, cwd, '.', constants.OPEN_TREE_CLONE | constants.AT_RECURSIVE);
    // nosuid and nodev: setuid programs and device nodes shipped in the input root are inert.
    plan.mountSetattr(
      bind,
      root,
      constants.MOUNT_ATTR_NOSUID | constants.MOUNT_ATTR_NODEV,
      constants.AT_RECURSIVE,
    );
    plan.moveMount(bind, root, cwd);
    // The runner's ids are unmapped in the range's namespace: as them the child could create
    // no file (EOVERFLOW) for the mounts below.
    if (range !== undefined) {
      plan.setCredentials(runnerStep("become the user namespace's root"), 0, 0, []);
    }
    planSpecialFilesystems(plan, root, clones, host, settings.filesystems, unprivilegedActionIds);
    // The runner's own ids, mapped, are the credentials; ids of the range are switched to.
    return {
      root,
      enter: pivotInto(root),
      ...(range === undefined
        ? { credentialsSet: true }
        : { credentials: { ...inside, additionalGroups: [] } }),
    };
  },
  // No capability of the runner's: the action's user namespace grants what setup needs.
  requirements: (findings) => [
    needCheck(findings, 'userNamespaceSysctls'),
    needCheck(findings, 'apparmorUserNamespaces'),
    needCheck(findings, 'userNamespaces'),
    needCheck(findings, 'procVisible'),
    needCheck(findings, 'procInUserNamespace'),
    ...mountApi(findings),
    ...launcherRequirements(findings),
  ],
  probeScript: 'test "$(realpath /proc/self/exe)" = /bin/realpath && test -c /dev/null',
};
