// cgroup v1: one directory per hierarchy (memory, pids, cpu, cpuacct, blkio; some may share
// one). What v1 lacks, and so what an action on it does not get: PSI, memory.high (no
// throttling below the limit), memory.oom.group (the OOM killer ends one process, not the
// action: the runner kills the rest at teardown), a count of OOM events (only of kills),
// cgroup.kill (files.ts kills process by process), and clone3's CLONE_INTO_CGROUP.
import { existsSync, writeSync } from 'node:fs';
import {
  constants,
  type DirectoryHandle,
  type Fd,
  isSystemError,
  openat2,
} from '../syscalls/index.js';
import type { V1Controller } from './discovery.js';
import { cgroupRecipe, killProcesses, removeCgroup, rereadRecord, writeValue } from './files.js';
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

/** cpuacct.usage_all: a header, then "CPU USER SYSTEM" in nanoseconds per CPU: user and
 * system time in one read (usage_user and usage_sys sum the same counters). */
function cpuTimes(text: string): { user: bigint; system: bigint } {
  let user = 0n;
  let system = 0n;
  for (const line of text.slice(text.indexOf('\n') + 1).split('\n')) {
    const fields = line.split(' ');
    if (fields.length !== 3) continue;
    user += BigInt(fields[1] ?? 0);
    system += BigInt(fields[2] ?? 0);
  }
  return { user, system };
}

/** The value of `key` in a flat keyed file ("key N" lines: pids.events, memory.oom_control),
 * 0 when it has none. */
function keyed(text: string | undefined, key: string): number {
  // In "\n" + text, "\n<key> " starts where the line starts in text.
  const line = text === undefined ? -1 : `\n${text}`.indexOf(`\n${key} `);
  return line < 0 ? 0 : Number.parseInt(text?.slice(line + key.length + 1) ?? '', 10) || 0;
}

/** The files that set `limits`, in order: the memory limit before memory+swap's, which may
 * not be below it. `swapAccounting`: the kernel has memory.memsw.* (not swapaccount=0). */
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

/** Leftover charges up to which an action's memory cgroup serves a later action: kernel
 * objects of the action still being freed (0.2–0.7 MiB after `true` here, up to a few MiB
 * after a fork loop) and pages of files it wrote stay charged to it once its processes are
 * gone. The next action's peak is counted from the leftover up, so it may be short of the
 * action's own charges by as much of the leftover as was freed meanwhile; with more, the
 * cgroup is removed, and the next action gets a new one. */
export const memoryLeftoverForReuseBytes = 8 * 1024 * 1024;

/** The counters an action's usage is the growth of: cumulative on v1 but for the peaks. */
interface V1Counters {
  readonly memoryPeak: number;
  readonly memoryLimitHits: number;
  readonly oomKills: number;
  readonly pidsLimitHits: number;
  readonly pidsPeak: number | null;
  readonly cpuUser: bigint;
  readonly cpuSystem: bigint;
  readonly ioRead: number;
  readonly ioWrite: number;
}

const newCgroupCounters: V1Counters = {
  memoryPeak: 0,
  memoryLimitHits: 0,
  oomKills: 0,
  pidsLimitHits: 0,
  pidsPeak: 0,
  cpuUser: 0n,
  cpuSystem: 0n,
  ioRead: 0,
  ioWrite: 0,
};

/** The usage files read, by hierarchy; memory.max_usage_in_bytes also written (its reset). */
const usageFiles = [
  ['memory', 'memory.max_usage_in_bytes'],
  ['memory', 'memory.failcnt'],
  ['memory', 'memory.memsw.failcnt'],
  ['memory', 'memory.oom_control'],
  ['pids', 'pids.events'],
  ['pids', 'pids.peak'],
  ['cpuacct', 'cpuacct.usage_all'],
  ['blkio', 'blkio.throttle.io_service_bytes_recursive'],
] as const;
type UsageFile = (typeof usageFiles)[number][1];

function count(text: string | undefined): number | undefined {
  const trimmed = text?.trim();
  return trimmed !== undefined && /^\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

/** One action's cgroup on each hierarchy, which serves later actions of the engine too once
 * no process of its action is left (recycle()): an action's usage is what the cumulative
 * counters grew by during it, and the memory peak is reset between actions. A new cgroup's
 * mkdir, join and rmdir, and its offlining in a kernel worker, cost about 0.3 ms of CPU per
 * hierarchy and action here (the memory one most); joining a used one costs a few µs. */
class V1ActionCgroup implements ActionCgroup {
  /** The child is single-threaded: its thread's move is its process's, and writing "0" to
   * `tasks` (the current thread) spares the kernel the threadgroup rwsem that cgroup.procs
   * takes for writing, whose switch to its slow path waits for an RCU grace period. */
  readonly joinFile = 'tasks';
  readonly #directories: ReadonlyMap<V1Controller, string>;
  readonly #paths: readonly string[];
  /** joinDirectories by path, for opening the usage files. */
  readonly #handles: ReadonlyMap<string, DirectoryHandle>;
  /** The usage files, opened with the cgroup and kept (each read is then one pread; a
   * cgroup holds as many fds used or not); null where the kernel has no such file. */
  readonly #files = new Map<UsageFile, Fd | null>();
  /** The counters when the current action started, and at its usage's read. */
  #start = newCgroupCounters;
  #read: V1Counters | undefined;

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
    try {
      for (const [controller, file] of usageFiles)
        this.#files.set(file, this.#open(controller, file));
    } catch (error) {
      this.#closeFiles();
      throw error;
    }
  }

  #open(controller: V1Controller, file: UsageFile): Fd | null {
    const path = this.#directories.get(controller);
    const directory = path === undefined ? undefined : this.#handles.get(path);
    if (directory === undefined) return null;
    try {
      return openat2(directory, file, {
        flags: file === 'memory.max_usage_in_bytes' ? constants.O_RDWR : constants.O_RDONLY,
      });
    } catch (error) {
      if (isSystemError(error, 'ENOENT')) return null;
      throw error;
    }
  }

  #closeFiles(): void {
    for (const fd of this.#files.values()) fd?.close();
    this.#files.clear();
  }

  #file(name: UsageFile): Fd | null {
    return this.#files.get(name) ?? null;
  }

  #text(name: UsageFile): string | undefined {
    const fd = this.#file(name);
    return fd === null ? undefined : rereadRecord(fd.fd);
  }

  #counters(): V1Counters {
    const cpu = cpuTimes(this.#text('cpuacct.usage_all') ?? '');
    const io = blockBytes(this.#text('blkio.throttle.io_service_bytes_recursive') ?? '');
    return {
      memoryPeak: count(this.#text('memory.max_usage_in_bytes')) ?? 0,
      // With swap accounting, memory+swap (memsw) reaches its limit first.
      memoryLimitHits:
        (count(this.#text('memory.failcnt')) ?? 0) +
        (count(this.#text('memory.memsw.failcnt')) ?? 0),
      oomKills: keyed(this.#text('memory.oom_control'), 'oom_kill'),
      pidsLimitHits: keyed(this.#text('pids.events'), 'max'),
      pidsPeak: count(this.#text('pids.peak')) ?? null,
      cpuUser: cpu.user,
      cpuSystem: cpu.system,
      ioRead: io.read,
      ioWrite: io.write,
    };
  }

  usage(): CgroupUsage {
    const now = this.#counters();
    this.#read = now;
    const start = this.#start;
    return {
      version: 1,
      memoryPeakBytes: Math.max(0, now.memoryPeak - start.memoryPeak),
      memoryLimitHits: now.memoryLimitHits - start.memoryLimitHits,
      oomEvents: 0,
      oomKills: now.oomKills - start.oomKills,
      pidsLimitHits: now.pidsLimitHits - start.pidsLimitHits,
      // pids.peak cannot be reset: an action that stayed below an earlier one's peak has
      // none known.
      pidsPeak: now.pidsPeak !== null && now.pidsPeak > (start.pidsPeak ?? 0) ? now.pidsPeak : null,
      cpuUserNanoseconds: now.cpuUser - start.cpuUser,
      cpuSystemNanoseconds: now.cpuSystem - start.cpuSystem,
      ioReadBytes: now.ioRead - start.ioRead,
      ioWriteBytes: now.ioWrite - start.ioWrite,
      pressure: null,
    };
  }

  /** Makes the cgroup ready for another action, once no process of its action is left:
   * the memory peak reset to the leftover (memory.max_usage_in_bytes), the counters as they
   * are now the next action's start. false when its leftover charges are too many
   * (memoryLeftoverForReuseBytes): then it is to be removed. */
  recycle(): boolean {
    const counters = this.#read ?? this.#counters();
    this.#read = undefined;
    let memoryPeak = 0;
    const peak = this.#file('memory.max_usage_in_bytes');
    if (peak !== null) {
      writeSync(peak.fd, '0');
      memoryPeak = count(rereadRecord(peak.fd)) ?? 0;
      if (memoryPeak > memoryLeftoverForReuseBytes) return false;
    }
    this.#start = { ...counters, memoryPeak };
    return true;
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
    this.#closeFiles();
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
  /** The action's cgroup on each hierarchy it needs: cpu only for a CPU limit (cpuacct
   * accounts the CPU time), unless cpu shares cpuacct's hierarchy. */
  const directoriesOf = (action: string, limits: CgroupLimits): Map<V1Controller, string> => {
    const limitsCpu = limits.cpuMaxMillicores !== null || limits.cpuWeight !== null;
    const accounting = scopes.get('cpuacct');
    return new Map(
      [...scopes]
        .filter(([controller, path]) => controller !== 'cpu' || limitsCpu || path === accounting)
        .map(([controller, path]) => [controller, `${path}/${action}`]),
    );
  };
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
      const directories = directoriesOf(action, limits);
      const writes = limitWrites(
        (controller) => directories.get(controller),
        limits,
        swapAccounting,
      );
      return cgroupRecipe(action, [...new Set(directories.values())], writes);
    },
    adopt({ name: action, directories: made }, handles) {
      const madePaths = made.map(({ path }) => path);
      const directories = new Map(
        [...scopes]
          .map(([controller, path]) => [controller, `${path}/${action}`] as const)
          .filter(([, path]) => madePaths.includes(path)),
      );
      return new V1ActionCgroup(action, directories, madePaths, handles);
    },
  });
}
