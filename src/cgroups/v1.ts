// cgroup v1: one directory per hierarchy (memory, pids, cpu, cpuacct, blkio; some may share
// one). What v1 lacks, and so what an action on it does not get: PSI, memory.high (no
// throttling below the limit), memory.oom.group (the OOM killer ends one process, not the
// action: the runner kills the rest at teardown), a count of OOM events (only of kills),
// cgroup.kill (files.ts kills process by process), and clone3's CLONE_INTO_CGROUP.
import { existsSync } from 'node:fs';
import type { DirectoryHandle } from '../syscalls/index.js';
import type { V1Controller } from './discovery.js';
import {
  type CgroupFile,
  cgroupRecipe,
  killProcesses,
  readKeyed,
  readNumber,
  readOptional,
  removeCgroup,
  writeValue,
} from './files.js';
import { makeScope, scopeTree } from './scope.js';
import type { ActionCgroup, CgroupLimits, CgroupTree, CgroupUsage, ScopeLimits } from './types.js';

const cfsPeriodMicroseconds = 100_000;

/** cpu.weight (1–10000, default 100) as cpu.shares (2–262144, default 1024), in proportion
 * so that the defaults meet (runc's linear map of the ranges sends 1024 to 39). */
export function weightToShares(weight: number): number {
  return Math.min(262_144, Math.max(2, Math.round((weight * 1024) / 100)));
}

/** blkio.throttle.io_service_bytes_recursive: "MAJ:MIN Read N" lines, and a Total. */
function blockBytes(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const [device, operation, value] = line.split(' ');
    if (device === undefined || value === undefined) continue;
    if (operation === 'Read') read += Number(value);
    else if (operation === 'Write') write += Number(value);
  }
  return { read, write };
}

/** The files that set `limits`, in order: the memory limit before memory+swap's, which may
 * not be below it. `swapAccounting`: the kernel has memory.memsw.* (not swapaccount=0). */
/** cpuacct.usage_all: a header, then "CPU USER SYSTEM" in nanoseconds per CPU: user and
 * system time in one read (usage_user and usage_sys sum the same counters). */
function cpuTimes(text: string): { user: bigint; system: bigint } {
  let user = 0n;
  let system = 0n;
  for (const line of text.split('\n')) {
    const [, userTime, systemTime] = line.split(' ');
    if (userTime === undefined || systemTime === undefined) continue;
    if (!/^\d+$/.test(userTime) || !/^\d+$/.test(systemTime)) continue;
    user += BigInt(userTime);
    system += BigInt(systemTime);
  }
  return { user, system };
}

function limitWrites(
  directory: (controller: V1Controller) => string | undefined,
  limits: CgroupLimits,
  swapAccounting: boolean,
): [string, string][] {
  const writes: [string, string][] = [];
  const memory = directory('memory');
  if (memory !== undefined && limits.memoryMaxBytes !== null) {
    writes.push([`${memory}/memory.limit_in_bytes`, String(limits.memoryMaxBytes)]);
    if (limits.swapMaxBytes !== null && swapAccounting) {
      writes.push([
        `${memory}/memory.memsw.limit_in_bytes`,
        String(limits.memoryMaxBytes + limits.swapMaxBytes),
      ]);
    }
  }
  const pids = directory('pids');
  if (pids !== undefined && limits.pidsMax !== null) {
    writes.push([`${pids}/pids.max`, String(limits.pidsMax)]);
  }
  const cpu = directory('cpu');
  if (cpu !== undefined && limits.cpuMaxMillicores !== null) {
    writes.push([`${cpu}/cpu.cfs_period_us`, String(cfsPeriodMicroseconds)]);
    writes.push([
      `${cpu}/cpu.cfs_quota_us`,
      String(Math.round((limits.cpuMaxMillicores * cfsPeriodMicroseconds) / 1000)),
    ]);
  }
  if (cpu !== undefined && limits.cpuWeight !== null) {
    writes.push([`${cpu}/cpu.shares`, String(weightToShares(limits.cpuWeight))]);
  }
  return writes;
}

class V1ActionCgroup implements ActionCgroup {
  /** The child is single-threaded: its thread's move is its process's, and writing "0" to
   * `tasks` (the current thread) spares the kernel the threadgroup rwsem that cgroup.procs
   * takes for writing, whose switch to its slow path waits for an RCU grace period. */
  readonly joinFile = 'tasks';
  readonly #directories: ReadonlyMap<V1Controller, string>;
  readonly #paths: readonly string[];
  /** joinDirectories by path, for reading the usage through them. */
  readonly #handles: ReadonlyMap<string, DirectoryHandle>;

  /** `joinDirectories`: the cgroup's directory on each hierarchy, in the order of `paths`. */
  constructor(
    readonly name: string,
    directories: ReadonlyMap<V1Controller, string>,
    paths: readonly string[],
    readonly joinDirectories: readonly DirectoryHandle[],
  ) {
    this.#directories = directories;
    this.#paths = paths;
    this.#handles = new Map(
      paths.flatMap((path, index) => {
        const handle = joinDirectories[index];
        return handle === undefined ? [] : [[path, handle]];
      }),
    );
  }

  usage(): CgroupUsage {
    const at = (controller: V1Controller, name: string): CgroupFile => {
      const path = this.#directories.get(controller);
      const directory = path === undefined ? undefined : this.#handles.get(path);
      return directory === undefined ? `/nonexistent/${name}` : { directory, name };
    };
    const pidsEvents = readKeyed(at('pids', 'pids.events'));
    const cpu = cpuTimes(readOptional(at('cpuacct', 'cpuacct.usage_all')) ?? '');
    const io = blockBytes(
      readOptional(at('blkio', 'blkio.throttle.io_service_bytes_recursive')) ?? '',
    );
    return {
      version: 1,
      memoryPeakBytes: readNumber(at('memory', 'memory.max_usage_in_bytes')) ?? 0,
      // With swap accounting, memory+swap (memsw) reaches its limit first.
      memoryLimitHits:
        (readNumber(at('memory', 'memory.failcnt')) ?? 0) +
        (readNumber(at('memory', 'memory.memsw.failcnt')) ?? 0),
      oomEvents: 0,
      oomKills: Number(readKeyed(at('memory', 'memory.oom_control')).get('oom_kill') ?? 0n),
      pidsLimitHits: Number(pidsEvents.get('max') ?? 0n),
      pidsPeak: readNumber(at('pids', 'pids.peak')) ?? null,
      cpuUserNanoseconds: cpu.user,
      cpuSystemNanoseconds: cpu.system,
      ioReadBytes: io.read,
      ioWriteBytes: io.write,
      pressure: null,
    };
  }

  /** Every process of the action is in its cgroup (or beneath) on every hierarchy: its first
   * process joined them all before anything else ran. So one hierarchy lists them all: the
   * first one joined. */
  kill(): Promise<void> {
    const pids = this.#directories.get('pids');
    return killProcesses(this.#paths.slice(0, 1), undefined, pids && `${pids}/pids.max`);
  }

  close(): void {
    for (const handle of this.joinDirectories) handle.close();
  }

  async remove(): Promise<void> {
    try {
      await removeCgroup(this.#paths, () => this.kill());
    } finally {
      this.close();
    }
  }
}

/** The v1 tree: the scope `name` beneath the runner's cgroup on each hierarchy in
 * `hierarchies`, bounded by `scopeLimits`. */
export function v1Tree(
  hierarchies: ReadonlyMap<V1Controller, string>,
  prefix: string,
  name: string,
  scopeLimits: ScopeLimits,
): CgroupTree {
  const scopeOf = (scope: string): Map<V1Controller, string> =>
    new Map(
      [...hierarchies].map(([controller, directory]) => [controller, `${directory}/${scope}`]),
    );
  const scopes = scopeOf(name);
  const paths = [...new Set(scopes.values())];
  const directoriesOf = (action: string): Map<V1Controller, string> =>
    new Map([...scopes].map(([controller, path]) => [controller, `${path}/${action}`]));
  const actionPaths = (action: string): string[] => paths.map((path) => `${path}/${action}`);
  makeScope(paths, () => {
    const memory = scopes.get('memory');
    if (memory !== undefined && scopeLimits.memoryMaxBytes !== null) {
      writeValue(`${memory}/memory.limit_in_bytes`, String(scopeLimits.memoryMaxBytes));
    }
    const pids = scopes.get('pids');
    if (pids !== undefined && scopeLimits.pidsMax !== null) {
      writeValue(`${pids}/pids.max`, String(scopeLimits.pidsMax));
    }
  });
  // Asked once: an action's cgroup has the files its scope has.
  const memoryScope = scopes.get('memory');
  const swapAccounting =
    memoryScope !== undefined && existsSync(`${memoryScope}/memory.memsw.limit_in_bytes`);
  return scopeTree({
    version: 1,
    directories: paths,
    killsAtomically: false,
    oomGroup: false,
    parents: [...new Set(hierarchies.values())],
    prefix,
    besideSuffix: '',
    killAll(scope) {
      const stale = scopeOf(scope);
      const pids = stale.get('pids');
      return killProcesses([...new Set(stale.values())], undefined, pids && `${pids}/pids.max`);
    },
    recipe(action, limits) {
      const directories = directoriesOf(action);
      const writes = limitWrites(
        (controller) => directories.get(controller),
        limits,
        swapAccounting,
      );
      return cgroupRecipe(action, actionPaths(action), writes);
    },
    adopt({ name: action }, handles) {
      return new V1ActionCgroup(action, directoriesOf(action), actionPaths(action), handles);
    },
  });
}
