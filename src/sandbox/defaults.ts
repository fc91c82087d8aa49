// The default isolation: namespaces mode with every special filesystem, Docker's default
// capabilities, a network namespace of its own and the seccomp filter.
import { defaultCapabilities } from './capabilities.js';
import { defaultSeccomp } from './seccomp.js';
import type { ActionUserNamespace, IsolationSettings, SpecialFilesystems } from './types.js';

export const defaultFilesystems: SpecialFilesystems = {
  proc: true,
  procOptions: {},
  sys: true,
  dev: true,
  // /dev holds a few nodes and links; Docker's default for /dev/shm.
  devSize: '1m',
  shmSize: '64m',
  tmp: true,
  createMountpoints: true,
};

/** How many Runs serve runs at once (chrootRunner.maximumConcurrentRuns). */
export const defaultMaximumConcurrentRuns = 256;

/** 0x70000000 and 256 slots of 65536 ids above it (to 0x70ffffff): far above the ids that
 * distributions give accounts (/etc/login.defs' SUB_UID_MAX is 600100000), below the 32-bit
 * ids' top (-1 is invalid). */
export const defaultActionUserNamespace: ActionUserNamespace = {
  firstHostId: 0x70000000,
  idCount: 65536,
  concurrentActions: defaultMaximumConcurrentRuns,
};

/** Enough for actions one after another and a burst of two: each refill takes about a
 * millisecond of the other core. */
export const defaultPreparedNetworkNamespaces = 2;

/** Cgroups kept ready (ActionCgroups.preparedAhead): as many, for the same reason. On v1 an
 * action's cgroup serves later ones (ActionCgroup.recycle), so a refill (about 0.3 ms of
 * libuv's pool on this host's v1 hierarchies) follows only a cgroup's removal. */
export const defaultPreparedCgroups = 2;

export const defaultIsolation: IsolationSettings = {
  mode: 'namespaces',
  filesystems: defaultFilesystems,
  keepCapabilities: defaultCapabilities,
  network: true,
  preparedNetworkNamespaces: defaultPreparedNetworkNamespaces,
  seccomp: defaultSeccomp,
  actionUserNamespace: defaultActionUserNamespace,
};
