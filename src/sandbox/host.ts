// What every action needs from the host, opened once for the runner's lifetime: the device
// nodes bound into /dev, /dev/null for stdin, and the init executable. No per-action opens.
import { constants, type Fd, openat2 } from '../syscalls/index.js';
import { initExecutablePath } from '../syscalls/native.js';

/** The device nodes bound into an action's /dev (so no CAP_MKNOD is needed). */
const deviceNodeNames: readonly string[] = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

export interface HostResources {
  /** O_PATH handles on the host's device nodes, by name. */
  readonly deviceNodes: ReadonlyMap<string, Fd>;
  /** /dev/null opened for reading: every action's stdin. */
  readonly devNull: Fd;
  /** O_PATH handle on the static init, executed with execveat so that it works after
   * pivot_root into an input root that has no such file. */
  readonly init: Fd;
}

let resources: HostResources | undefined;

/** Opens the host resources on first use and returns the same ones afterwards. */
export function hostResources(): HostResources {
  if (resources === undefined) {
    const deviceNodes = new Map<string, Fd>();
    for (const name of deviceNodeNames) {
      deviceNodes.set(name, openat2(null, `/dev/${name}`, { flags: constants.O_PATH }));
    }
    resources = {
      deviceNodes,
      devNull: openat2(null, '/dev/null', { flags: constants.O_RDONLY }),
      init: openat2(null, initExecutablePath, { flags: constants.O_PATH }),
    };
  }
  return resources;
}
