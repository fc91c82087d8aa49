// A cgroup for every action (src/cgroups): made ahead with the engine's limits
// (prepared-cgroups.ts), or before the clone when none is ready, entered by the action's
// first process before anything of the action runs: on v2 at clone time (clone3's
// CLONE_INTO_CGROUP: the child never exists outside it, and no migration takes the cgroup
// locks), else by the child's first step (each hierarchy's `tasks` on v1; cgroup.procs on v2
// where the kernel, a seccomp profile or the architecture rules clone3 out: cloneIntoCgroup);
// then a cgroup namespace rooted there so that the action sees itself at / and no cgroup
// above it; on v2 the init then leaves it for the runner's cgroup, so that memory.oom.group's
// kill spares it and it reports the OOM (ActionCgroup.initMoves); its usage read once the
// action exited; killed as a whole and removed at teardown, or recycled for a later action
// (v1: PreparedCgroups.release) after the result where no process of the action is left. What a killed runner left is swept by serve through the
// tree (CgroupTree.sweep), before the engine runs anything.
import type { ActionCgroup, CgroupLimits, CgroupTree, CgroupUsage } from '../../cgroups/index.js';
import { isSystemError } from '../../syscalls/index.js';
import { cloneIntoCgroup } from '../../syscalls/process.js';
import { runnerStep } from '../plan.js';
import { actionCgroupFd, initCgroupFd } from '../setup.js';
import { ActionError, type ActionResult } from '../types.js';
import type { ActionResource, Contribution } from './contribution.js';

const CLONE_NEWCGROUP = 0x02000000;

/** Where an engine's actions get their cgroups (EngineOptions.cgroups). */
export interface ActionCgroups {
  readonly tree: CgroupTree;
  readonly limits: CgroupLimits;
  /** On v2, whether the action's first process is cloned into its cgroup rather than
   * joining it with its first step; by default wherever the runner can (cloneIntoCgroup).
   * false measures or tests the join; v1 always joins. */
  readonly enterAtClone?: boolean;
  /** How many the engine keeps made ahead (defaultPreparedCgroups; 0: each action makes its
   * own before its clone). */
  readonly preparedAhead?: number;
}

/** What the action's cgroup accounted (ActionResult.usage.cgroup, typed). */
export interface ActionCgroupUsage extends CgroupUsage {
  readonly memoryLimitBytes: number | null;
  /** The OOM killer killed a process of the action (memory.events, memory.oom_control). */
  readonly oomKilled: boolean;
}

type FlatUsage = Record<string, number | bigint | boolean>;

const pressureKeys = ['cpu', 'memory', 'io'] as const;

function flatten(usage: CgroupUsage, limits: CgroupLimits): FlatUsage {
  const { pressure, pidsPeak } = usage;
  // Field by field: a rest pattern's copy costs more than the rest of the usage's read.
  const flat: FlatUsage = {
    version: usage.version,
    memoryPeakBytes: usage.memoryPeakBytes,
    memoryLimitHits: usage.memoryLimitHits,
    oomEvents: usage.oomEvents,
    oomKills: usage.oomKills,
    pidsLimitHits: usage.pidsLimitHits,
    cpuUserNanoseconds: usage.cpuUserNanoseconds,
    cpuSystemNanoseconds: usage.cpuSystemNanoseconds,
    ioReadBytes: usage.ioReadBytes,
    ioWriteBytes: usage.ioWriteBytes,
    memoryLimitBytes: limits.memoryMaxBytes ?? 0,
    oomKilled: usage.oomKills > 0,
  };
  if (pidsPeak !== null) flat.pidsPeak = pidsPeak;
  for (const key of pressure === null ? [] : pressureKeys) {
    flat[`${key}PressureSomeMicroseconds`] = pressure?.[key].someMicroseconds ?? 0n;
    flat[`${key}PressureFullMicroseconds`] = pressure?.[key].fullMicroseconds ?? 0n;
  }
  return flat;
}

/** The cgroup's usage of an action that had one, typed again. */
export function actionCgroupUsage(result: ActionResult): ActionCgroupUsage | undefined {
  const flat = result.usage?.cgroup;
  if (flat === undefined) return undefined;
  const number = (key: string): number => Number(flat[key] ?? 0);
  const big = (key: string): bigint => BigInt(flat[key] ?? 0);
  const totals = (key: string) => ({
    someMicroseconds: big(`${key}PressureSomeMicroseconds`),
    fullMicroseconds: big(`${key}PressureFullMicroseconds`),
  });
  return {
    version: number('version') === 2 ? 2 : 1,
    memoryPeakBytes: number('memoryPeakBytes'),
    memoryLimitHits: number('memoryLimitHits'),
    oomEvents: number('oomEvents'),
    oomKills: number('oomKills'),
    pidsLimitHits: number('pidsLimitHits'),
    pidsPeak: flat.pidsPeak === undefined ? null : number('pidsPeak'),
    cpuUserNanoseconds: big('cpuUserNanoseconds'),
    cpuSystemNanoseconds: big('cpuSystemNanoseconds'),
    ioReadBytes: number('ioReadBytes'),
    ioWriteBytes: number('ioWriteBytes'),
    pressure:
      flat.cpuPressureSomeMicroseconds === undefined
        ? null
        : { cpu: totals('cpu'), memory: totals('memory'), io: totals('io') },
    memoryLimitBytes: number('memoryLimitBytes') === 0 ? null : number('memoryLimitBytes'),
    oomKilled: flat.oomKilled === true,
  };
}

export const cgroup: Contribution = {
  name: 'cgroup',
  appliesTo: (engine) => engine.cgroups !== undefined,
  prepare({ engine }): ActionResource {
    const settings = engine.cgroups;
    if (settings === undefined) throw new Error('cgroup: the engine has no cgroup tree');
    let action: ActionCgroup;
    try {
      action = settings.take();
    } catch (error) {
      throw new ActionError(
        'internal',
        `Failed to create the action's cgroup: ${(error as Error).message}`,
        isSystemError(error) ? error : undefined,
      );
    }
    // v2's cgroup is one directory.
    const enterAtClone =
      settings.tree.version === 2 && (settings.enterAtClone ?? cloneIntoCgroup().available);
    return {
      plan: {
        namespaces(plan) {
          const join = runnerStep("join the action's cgroup");
          for (const directory of action.joinDirectories) {
            if (enterAtClone) plan.cgroupFd = directory.fd;
            else plan.writeFile(join, plan.inherit(directory.fd), action.joinFile, '0');
          }
          plan.unshare(runnerStep('create a cgroup namespace'), CLONE_NEWCGROUP);
        },
        exec(plan) {
          const moves = action.initMoves;
          if (moves === undefined) return;
          const step = runnerStep("pass the init the cgroups it moves to, out of the OOM group's");
          plan.dup2(step, plan.inherit(moves.init.fd), initCgroupFd);
          plan.dup2(step, plan.inherit(moves.action.fd), actionCgroupFd);
        },
      },
      usage: () => flatten(action.usage(), settings.limits),
      // Once no process is left, the cgroup is recycled (a write and a read), or closed and
      // its empty directories removed after the result (the runner's fds are as before it).
      teardown: ({ processesGone }) => {
        if (!processesGone) return settings.discard(action);
        if (settings.recycle(action)) return;
        action.close();
        engine.background.add(() => settings.discard(action));
      },
    };
  },
};
