// cgroup v2: one directory on the unified hierarchy, beneath the runner's cgroup, which must
// be delegated to it (in a container, its cgroup namespace's root; on a host, a systemd unit
// with Delegate=yes). Controllers are enabled down to the scope; each action's cgroup gets
// memory.oom.group, so that one OOM kill ends the whole action.
import { existsSync, mkdirSync } from 'node:fs';
import {
  constants,
  type DirectoryHandle,
  type Fd,
  isSystemError,
  openat2,
} from '../syscalls/index.js';
import { v2Controllers } from './discovery.js';
import {
  cgroupRecipe,
  killProcesses,
  readKeyed,
  readNumber,
  readOptional,
  removeCgroup,
  writeValue,
} from './files.js';
import { makeScope, scopeTree } from './scope.js';
import type {
  ActionCgroup,
  CgroupLimits,
  CgroupTree,
  CgroupUsage,
  PressureTotals,
  ScopeLimits,
} from './types.js';

/** The name of the leaf the runner moves itself to, after its scope's. */
const runnerLeafSuffix = '.runner';

const cpuPeriodMicroseconds = 100_000;

/** A PSI file: "some avg10=… total=N" and "full … total=N". */
function pressureTotals(text: string | undefined): PressureTotals | undefined {
  if (text === undefined) return undefined;
  const total = (kind: string): bigint =>
    BigInt(new RegExp(`^${kind} .*total=(\\d+)`, 'm').exec(text)?.[1] ?? '0');
  return { someMicroseconds: total('some'), fullMicroseconds: total('full') };
}

/** io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N …" per device. */
function ioBytes(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const match of text.matchAll(/\b([rw])bytes=(\d+)/g)) {
    if (match[1] === 'r') read += Number(match[2]);
    else write += Number(match[2]);
  }
  return { read, write };
}

/** The files that set `limits` in `directory`; `present` says whether an optional one
 * exists (as in the scope). */
function limitWrites(
  directory: string,
  limits: CgroupLimits,
  present: (file: string) => boolean,
): [string, string][] {
  const writes: [string, string][] = [];
  // swap without swap accounting, cpu without the cpu controller: no file, no limit (doctor
  // says which controllers the runner has).
  const set = (file: string, value: number | string | null, optional = false): void => {
    if (value !== null && (!optional || present(file))) {
      writes.push([`${directory}/${file}`, String(value)]);
    }
  };
  set('memory.max', limits.memoryMaxBytes);
  set('memory.high', limits.memoryHighBytes);
  set('memory.swap.max', limits.swapMaxBytes, true);
  set('memory.oom.group', 1);
  set('pids.max', limits.pidsMax);
  set(
    'cpu.max',
    limits.cpuMaxMillicores === null
      ? null
      : `${Math.round((limits.cpuMaxMillicores * cpuPeriodMicroseconds) / 1000)} ${cpuPeriodMicroseconds}`,
    true,
  );
  set('cpu.weight', limits.cpuWeight, true);
  return writes;
}

/** cgroup.procs in `directory`, opened for writing. */
function openProcs(directory: string): Fd {
  return openat2(null, `${directory}/cgroup.procs`, { flags: constants.O_WRONLY });
}

class V2ActionCgroup implements ActionCgroup {
  /** A thread moves alone only within a threaded subtree: the whole process moves. */
  readonly joinFile = 'cgroup.procs';
  readonly joinDirectories: readonly DirectoryHandle[];
  readonly initMoves: { readonly init: Fd; readonly action: Fd };
  readonly #directory: string;
  readonly #killFile: string | undefined;

  /** `join`: the cgroup's directory, opened, now the cgroup's; `initHome`: the cgroup the
   * init moves to (ActionCgroup.initMoves). */
  constructor(
    readonly name: string,
    directory: string,
    join: DirectoryHandle,
    killsAtomically: boolean,
    initHome: string,
  ) {
    this.#directory = directory;
    this.#killFile = killsAtomically ? `${directory}/cgroup.kill` : undefined;
    const handles: Fd[] = [join];
    try {
      const init = openProcs(initHome);
      handles.push(init);
      this.initMoves = { init, action: openProcs(directory) };
      this.joinDirectories = [join];
    } catch (error) {
      for (const handle of handles) handle.close();
      throw error;
    }
  }

  usage(): CgroupUsage {
    const at = (file: string): string => `${this.#directory}/${file}`;
    const memoryEvents = readKeyed(at('memory.events'));
    const cpu = readKeyed(at('cpu.stat'));
    const io = ioBytes(readOptional(at('io.stat')) ?? '');
    const cpuPressure = pressureTotals(readOptional(at('cpu.pressure')));
    const memoryPressure = pressureTotals(readOptional(at('memory.pressure')));
    const ioPressure = pressureTotals(readOptional(at('io.pressure')));
    return {
      version: 2,
      memoryPeakBytes: readNumber(at('memory.peak')) ?? 0,
      memoryLimitHits: Number(memoryEvents.get('max') ?? 0n),
      oomEvents: Number(memoryEvents.get('oom') ?? 0n),
      oomKills: Number(memoryEvents.get('oom_kill') ?? 0n),
      pidsLimitHits: Number(readKeyed(at('pids.events')).get('max') ?? 0n),
      pidsPeak: readNumber(at('pids.peak')) ?? null,
      cpuUserNanoseconds: (cpu.get('user_usec') ?? 0n) * 1000n,
      cpuSystemNanoseconds: (cpu.get('system_usec') ?? 0n) * 1000n,
      ioReadBytes: io.read,
      ioWriteBytes: io.write,
      pressure:
        cpuPressure === undefined || memoryPressure === undefined || ioPressure === undefined
          ? null
          : { cpu: cpuPressure, memory: memoryPressure, io: ioPressure },
    };
  }

  kill(): Promise<void> {
    return killProcesses([this.#directory], this.#killFile, `${this.#directory}/pids.max`);
  }

  async remove(): Promise<void> {
    try {
      await removeCgroup([this.#directory], () => this.kill());
    } finally {
      this.close();
    }
  }

  close(): void {
    for (const handle of this.joinDirectories) handle.close();
    this.initMoves.init.close();
    this.initMoves.action.close();
  }
}

/** Enables `controllers` for the children of `directory`. */
function enableControllers(directory: string, controllers: readonly string[]): void {
  const enabled = new Set(
    (readOptional(`${directory}/cgroup.subtree_control`) ?? '').trim().split(' '),
  );
  const missing = controllers.filter((name) => !enabled.has(name));
  if (missing.length > 0) {
    writeValue(`${directory}/cgroup.subtree_control`, missing.map((name) => `+${name}`).join(' '));
  }
}

/** The v2 tree at `<runner's cgroup>/<name>`, bounded by `scopeLimits`. A cgroup other than
 * the namespace's root cannot both hold processes and give its children controllers (EBUSY):
 * the runner then moves itself into a leaf `<name>.runner` beside the scope, as systemd's
 * DelegateSubgroup= does; any other process in its cgroup makes that fail, and the error
 * says so. */
export function v2Tree(
  runnerCgroup: string,
  offered: readonly string[],
  prefix: string,
  name: string,
  scopeLimits: ScopeLimits,
): CgroupTree {
  const controllers = v2Controllers.filter((controller) => offered.includes(controller));
  // Where the runner's process is, for its actions' inits.
  let runnerHome = runnerCgroup;
  try {
    enableControllers(runnerCgroup, controllers);
  } catch (error) {
    if (!isSystemError(error, 'EBUSY')) throw error;
    const leaf = `${runnerCgroup}/${name}${runnerLeafSuffix}`;
    runnerHome = leaf;
    mkdirSync(leaf, { recursive: true });
    writeValue(`${leaf}/cgroup.procs`, String(process.pid));
    try {
      enableControllers(runnerCgroup, controllers);
    } catch (retried) {
      if (!isSystemError(retried, 'EBUSY')) throw retried;
      throw new Error(
        `the runner's cgroup ${runnerCgroup} holds other processes: give the runner a delegated cgroup of its own`,
        { cause: retried },
      );
    }
  }
  const directory = `${runnerCgroup}/${name}`;
  makeScope([directory], () => {
    if (scopeLimits.memoryMaxBytes !== null) {
      writeValue(`${directory}/memory.max`, String(scopeLimits.memoryMaxBytes));
    }
    if (scopeLimits.pidsMax !== null) {
      writeValue(`${directory}/pids.max`, String(scopeLimits.pidsMax));
    }
    enableControllers(directory, controllers);
  });
  // Write-only, Linux ≥ 5.14.
  const killsAtomically = existsSync(`${directory}/cgroup.kill`);
  // Asked once: an action's cgroup has the files its scope has (the same controllers).
  const optionalFiles = new Map<string, boolean>();
  const present = (file: string): boolean => {
    let exists = optionalFiles.get(file);
    if (exists === undefined) {
      exists = existsSync(`${directory}/${file}`);
      optionalFiles.set(file, exists);
    }
    return exists;
  };

  return scopeTree({
    version: 2,
    directories: [directory],
    killsAtomically,
    oomGroup: true,
    parents: [runnerCgroup],
    prefix,
    besideSuffix: runnerLeafSuffix,
    killAll(scope) {
      const stale = `${runnerCgroup}/${scope}`;
      return killProcesses(
        [stale],
        killsAtomically ? `${stale}/cgroup.kill` : undefined,
        `${stale}/pids.max`,
      );
    },
    recipe(action, limits) {
      const path = `${directory}/${action}`;
      return cgroupRecipe(action, [path], limitWrites(path, limits, present));
    },
    adopt({ name: action }, [join]) {
      const path = `${directory}/${action}`;
      if (join === undefined) throw new TypeError(`cgroup ${path} adopted without its directory`);
      return new V2ActionCgroup(action, path, join, killsAtomically, runnerHome);
    },
  });
}
