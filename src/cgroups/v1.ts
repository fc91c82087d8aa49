// cgroup v1: one directory per hierarchy (memory, pids, cpu, cpuacct, blkio; some may share
// one). What v1 lacks, and so what an action on it does not get: PSI, memory.high (no
// throttling below the limit), memory.oom.group (the OOM killer ends one process, not the
// action: the runner kills the rest at teardown), a count of OOM events (only of kills),
// cgroup.kill (files.ts kills process by process), and clone3's CLONE_INTO_CGROUP.
import { mkdirSync } from 'node:fs';
import { openDirectory } from '../syscalls/index.js';
import type { V1Controller } from './discovery.js';
import {
  killProcesses,
  readKeyed,
  readNumber,
  readOptional,
  removeCgroupTree,
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

function setLimits(
  directory: (controller: V1Controller) => string | undefined,
  limits: CgroupLimits,
): void {
  const memory = directory('memory');
  if (memory !== undefined && limits.memoryMaxBytes !== null) {
    writeValue(`${memory}/memory.limit_in_bytes`, String(limits.memoryMaxBytes));
    // Without swap accounting (swapaccount=0) the file does not exist.
    if (
      limits.swapMaxBytes !== null &&
      readOptional(`${memory}/memory.memsw.limit_in_bytes`) !== undefined
    ) {
      writeValue(
        `${memory}/memory.memsw.limit_in_bytes`,
        String(limits.memoryMaxBytes + limits.swapMaxBytes),
      );
    }
  }
  const pids = directory('pids');
  if (pids !== undefined && limits.pidsMax !== null) {
    writeValue(`${pids}/pids.max`, String(limits.pidsMax));
  }
  const cpu = directory('cpu');
  if (cpu !== undefined && limits.cpuMaxMillicores !== null) {
    writeValue(`${cpu}/cpu.cfs_period_us`, String(cfsPeriodMicroseconds));
    writeValue(
      `${cpu}/cpu.cfs_quota_us`,
      String(Math.round((limits.cpuMaxMillicores * cfsPeriodMicroseconds) / 1000)),
    );
  }
  if (cpu !== undefined && limits.cpuWeight !== null) {
    writeValue(`${cpu}/cpu.shares`, String(weightToShares(limits.cpuWeight)));
  }
}

class V1ActionCgroup implements ActionCgroup {
  readonly joinDirectories;
  readonly #directories: ReadonlyMap<V1Controller, string>;
  readonly #paths: readonly string[];

  constructor(
    readonly name: string,
    directories: ReadonlyMap<V1Controller, string>,
  ) {
    this.#directories = directories;
    this.#paths = [...new Set(directories.values())];
    const opened = [];
    try {
      for (const path of this.#paths) opened.push(openDirectory(path));
    } catch (error) {
      for (const handle of opened) handle.close();
      throw error;
    }
    this.joinDirectories = opened;
  }

  usage(): CgroupUsage {
    const at = (controller: V1Controller, file: string): string =>
      `${this.#directories.get(controller) ?? '/nonexistent'}/${file}`;
    const pidsEvents = readKeyed(at('pids', 'pids.events'));
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
      cpuUserNanoseconds: BigInt(readNumber(at('cpuacct', 'cpuacct.usage_user')) ?? 0),
      cpuSystemNanoseconds: BigInt(readNumber(at('cpuacct', 'cpuacct.usage_sys')) ?? 0),
      ioReadBytes: io.read,
      ioWriteBytes: io.write,
      pressure: null,
    };
  }

  kill(): Promise<void> {
    const pids = this.#directories.get('pids');
    return killProcesses(this.#paths, undefined, pids && `${pids}/pids.max`);
  }

  async remove(): Promise<void> {
    try {
      await this.kill();
      for (const path of this.#paths) removeCgroupTree(path);
    } finally {
      for (const handle of this.joinDirectories) handle.close();
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
    create(action, limits) {
      const made: string[] = [];
      try {
        for (const path of paths) {
          mkdirSync(`${path}/${action}`);
          made.push(`${path}/${action}`);
        }
        const directories = new Map<V1Controller, string>();
        for (const [controller, path] of scopes) directories.set(controller, `${path}/${action}`);
        const cgroup = new V1ActionCgroup(action, directories);
        try {
          setLimits((controller) => directories.get(controller), limits);
        } catch (error) {
          for (const handle of cgroup.joinDirectories) handle.close();
          throw error;
        }
        return cgroup;
      } catch (error) {
        for (const path of made) removeCgroupTree(path);
        throw error;
      }
    },
  });
}
