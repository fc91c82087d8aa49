// The cgroup layer's contract: one interface over cgroup v2 and the v1 hierarchies. The
// sandbox creates one ActionCgroup per action, makes the action's first process join it
// before anything of the action runs, reads its usage and removes it afterwards.
import type { DirectoryHandle, Fd } from '../syscalls/index.js';

/** Limits of one action's cgroup; null leaves a limit unset (the parent's applies). */
export interface CgroupLimits {
  /** memory.max (v2), memory.limit_in_bytes (v1): past it the OOM killer ends the action. */
  readonly memoryMaxBytes: number | null;
  /** memory.high (v2): throttling and reclaim above it. v1 has no equivalent; ignored. */
  readonly memoryHighBytes: number | null;
  /** memory.swap.max (v2); on v1 memory.memsw.limit_in_bytes = memoryMaxBytes + this. */
  readonly swapMaxBytes: number | null;
  /** pids.max: processes and threads; fork and clone fail with EAGAIN past it. */
  readonly pidsMax: number | null;
  /** cpu.max (v2), cpu.cfs_quota_us (v1): CPU time per wall time, in thousandths of a CPU. */
  readonly cpuMaxMillicores: number | null;
  /** cpu.weight (v2, 1–10000, default 100); on v1 converted to cpu.shares. */
  readonly cpuWeight: number | null;
}

/** Limits of the runner's scope: all its actions together. null leaves a limit unset. */
export interface ScopeLimits {
  /** memory.max (v2), memory.limit_in_bytes (v1). */
  readonly memoryMaxBytes: number | null;
  /** pids.max. */
  readonly pidsMax: number | null;
}

/** Cumulative stall time of one resource (PSI, cgroup v2 only). */
export interface PressureTotals {
  /** Microseconds in which at least one task stalled on the resource. */
  readonly someMicroseconds: bigint;
  /** Microseconds in which all non-idle tasks stalled at once (none for cpu before 5.13). */
  readonly fullMicroseconds: bigint;
}

/** What one action's cgroup used over its life. */
export interface CgroupUsage {
  readonly version: 1 | 2;
  /** memory.peak (v2 ≥ 5.19), memory.max_usage_in_bytes (v1): page cache and tmpfs pages
   * (so /dev/shm and /tmp) included. */
  readonly memoryPeakBytes: number;
  /** Times the memory limit was hit: memory.events max (v2), memory.failcnt (v1; 6.18 counts
   * nothing there once memory.memsw.limit_in_bytes is set, as the runner does). */
  readonly memoryLimitHits: number;
  /** Times the OOM killer was invoked: memory.events oom (v2). v1 keeps no count: 0. */
  readonly oomEvents: number;
  /** Processes the OOM killer killed: memory.events oom_kill (v2), memory.oom_control
   * oom_kill (v1). */
  readonly oomKills: number;
  /** Forks refused at pids.max: pids.events max. */
  readonly pidsLimitHits: number;
  /** Most processes at once (pids.peak, Linux ≥ 6.13); null where the kernel has none. */
  readonly pidsPeak: number | null;
  /** cpu.stat user_usec/system_usec (v2), cpuacct.usage_all (v1). */
  readonly cpuUserNanoseconds: bigint;
  readonly cpuSystemNanoseconds: bigint;
  /** io.stat rbytes/wbytes (v2), blkio.throttle.io_service_bytes_recursive (v1). */
  readonly ioReadBytes: number;
  readonly ioWriteBytes: number;
  /** cpu.pressure, memory.pressure, io.pressure totals; null on v1 (no PSI there). */
  readonly pressure: {
    readonly cpu: PressureTotals;
    readonly memory: PressureTotals;
    readonly io: PressureTotals;
  } | null;
}

/** What making one cgroup takes, as data: its directories (one per hierarchy on v1), each
 * made, opened (O_PATH) and given its limits' files, written in this order (v1 refuses a
 * memsw limit below the memory limit). The sandbox makes cgroups ahead from it in a child
 * of its own; CgroupTree.create makes one now. */
export interface CgroupRecipe {
  /** The cgroup's name beneath the scope. */
  readonly name: string;
  readonly directories: readonly {
    readonly path: string;
    readonly writes: readonly (readonly [file: string, value: string])[];
  }[];
}

/** One action's cgroup (on v1, one directory per hierarchy). */
export interface ActionCgroup {
  readonly name: string;
  /** Directories the action's first process joins by writing "0" to their `joinFile`
   * before its first other step, in this order. Owned by the cgroup; closed by remove(). */
  readonly joinDirectories: readonly DirectoryHandle[];
  /** cgroup.procs, or on v1 `tasks` (the single-threaded child moves its only thread). */
  readonly joinFile: 'cgroup.procs' | 'tasks';
  /** Where memory.oom.group kills the whole cgroup at once (v2), the init must outlive the
   * kill to report it: once the action's cgroup namespace is made, the init moves out to
   * `init` (the runner's own cgroup), and the action's main process moves back to `action`
   * before it execs, so nothing of the action runs outside. Both are cgroup.procs files
   * opened for writing by the runner: the kernel checks the credentials and the cgroup
   * namespace of the file's opener (Linux ≥ 5.16), not of the writer. Closed by remove().
   * Absent on v1, whose OOM killer kills one process, never the init's group. */
  readonly initMoves?: { readonly init: Fd; readonly action: Fd };
  usage(): CgroupUsage;
  /** Makes the cgroup ready for another action, once its usage was read and no process of
   * its action is left; false when it cannot serve one exactly (then remove() it). Absent
   * where each action gets a new cgroup (v2: its memory.peak and PSI totals cannot be
   * counted from a start). */
  recycle?(): boolean;
  /** Kills every process in the cgroup and its descendants, and resolves once they have all
   * exited. */
  kill(): Promise<void>;
  /** Closes its handles (joinDirectories, initMoves), once the action's processes are
   * started and its usage read: killing and removing it needs none. */
  close(): void;
  /** Removes the cgroup and every cgroup beneath it, kill()ing what is in it first, and
   * closes it. */
  remove(): Promise<void>;
}

/** Where the runner makes its actions' cgroups: `<runner's cgroup>/<scope>/<action>`, the
 * scope named as scope.ts says. */
export interface CgroupTree {
  readonly version: 1 | 2;
  /** The scope directory on each hierarchy, for logs and doctor. */
  readonly directories: readonly string[];
  /** Whether the kernel kills a cgroup in one write (cgroup.kill, v2 ≥ 5.14). */
  readonly killsAtomically: boolean;
  /** Whether the OOM killer ends the whole action at once (memory.oom.group, v2). */
  readonly oomGroup: boolean;
  /** Makes the cgroup `name` with `limits`, now. */
  create(name: string, limits: CgroupLimits): ActionCgroup;
  /** What making the cgroup `name` with `limits` takes, for making it elsewhere (ahead of its
   * action, off the event loop: src/sandbox/prepared-cgroups.ts). */
  recipe(name: string, limits: CgroupLimits): CgroupRecipe;
  /** The cgroup that `recipe` made, given its directories opened in the recipe's order: the
   * cgroup's from then on; on a throw, closed and the cgroup removed. */
  adopt(recipe: CgroupRecipe, directories: DirectoryHandle[]): ActionCgroup;
  /** Kills the processes of and removes the scopes (with the same prefix) of runners no
   * longer running, and all beneath them: what a runner that was killed left. Returns the
   * names of the scopes it removed. */
  sweep(): Promise<string[]>;
  /** Removes the scope directories (empty by then). */
  close(): void;
}
