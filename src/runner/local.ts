// The core runner: maps a RunRequest onto one action of the execution engine, and bb_runner's
// errors and results onto gRPC statuses and a RunResponse.
import { create } from '@bufbuild/protobuf';
import { anyPack, type Duration, DurationSchema } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import type { PressureTotals } from '../cgroups/index.js';
import {
  CgroupResourceUsage_PressureSchema,
  CgroupResourceUsageSchema,
  type CheckReadinessRequest,
  POSIXResourceUsageSchema,
  type RunRequest,
  type RunResponse,
  RunResponseSchema,
} from '../proto/index.js';
import { type ActionCgroupUsage, actionCgroupUsage } from '../sandbox/index.js';
import {
  ActionError,
  type ActionResult,
  type ActionSpec,
  type Credentials,
  type ResourceUsage,
} from '../sandbox/types.js';
import { type DirectoryHandle, openDirectoryBeneath, statAt } from '../syscalls/index.js';
import { resolveRelativePath } from './paths.js';
import { type Runner, RunnerError, wrapError, wrapErrorWithCode } from './runner.js';

/** What LocalRunner uses of the execution engine (src/sandbox's Engine). */
export interface ActionEngine {
  run(spec: ActionSpec): Promise<ActionResult>;
  /** TMPDIR for an action whose temporary directory is `relative` to the build directory. */
  temporaryDirectoryPath(relative: string): string;
  /** The build directory, opened anew by every call (as bb_runner's lazy directory does), so
   * that a file system mounted over it after start-up (bb_worker's FUSE mount, remounted when
   * the worker restarts) is seen at the next call, nothing pins an old mount, and a runner
   * started before the directory exists is only not ready. Throws ActionError. */
  openBuildDirectory(): DirectoryHandle;
}

/** exitStatus: the response bb_runner would give, with oom_killed in the usage message;
 * resourceExhausted: RESOURCE_EXHAUSTED instead, which bb_worker reports and Bazel retries
 * (and which carries no resource usage: bb_worker keeps it only from a response). */
export type OomReporting = 'exitStatus' | 'resourceExhausted';

export interface LocalRunnerOptions {
  /** runCommandsAs; the runner's own credentials when absent. */
  readonly credentials: Credentials | undefined;
  readonly setTmpdirEnvironmentVariable: boolean;
  readonly engine: ActionEngine;
  /** How an action the OOM killer ended is answered (chrootRunner.cgroups.oomReporting). */
  readonly oomReporting?: OomReporting;
}

/** The engine's result behind each response of LocalRunner, for metrics and logs. Decorators
 * pass responses through unchanged, so the server finds it from the response it returns. */
export const actionResults = new WeakMap<RunResponse, ActionResult>();

export class LocalRunner implements Runner {
  readonly #options: LocalRunnerOptions;

  constructor(options: LocalRunnerOptions) {
    this.#options = options;
  }

  async run(request: RunRequest, signal: AbortSignal): Promise<RunResponse> {
    const [program] = request.arguments;
    if (program === undefined) {
      throw new RunnerError(status.INVALID_ARGUMENT, 'Insufficient number of command arguments');
    }
    const inputRoot = relative(
      request.inputRootDirectory,
      'Failed to resolve input root directory',
    );
    const workingDirectory = relative(
      request.workingDirectory,
      'Failed to resolve working directory',
    );
    const temporaryDirectory =
      request.temporaryDirectory === ''
        ? undefined
        : relative(request.temporaryDirectory, 'Failed to resolve temporary directory');
    const stdoutPath = logPath(request.stdoutPath, 'stdout');
    const stderrPath = logPath(request.stderrPath, 'stderr');

    // TMPDIR comes first so that the request's own TMPDIR wins.
    const environment: Record<string, string> = {};
    if (this.#options.setTmpdirEnvironmentVariable && temporaryDirectory !== undefined) {
      environment.TMPDIR = this.#options.engine.temporaryDirectoryPath(temporaryDirectory);
    }
    Object.assign(environment, request.environmentVariables);

    const spec: ActionSpec = {
      inputRoot,
      arguments: request.arguments,
      environment,
      workingDirectory,
      stdoutPath,
      stderrPath,
      temporaryDirectory,
      credentials: this.#options.credentials,
      signal,
    };
    let result: ActionResult;
    try {
      result = await this.#options.engine.run(spec);
    } catch (error) {
      throw runError(error, signal);
    }
    const cgroupUsage = actionCgroupUsage(result);
    const response = create(RunResponseSchema, {
      exitCode: BigInt(result.exitCode ?? -1),
      resourceUsage: [
        anyPack(POSIXResourceUsageSchema, posixResourceUsage(result.resourceUsage, result)),
        ...(cgroupUsage === undefined
          ? []
          : [anyPack(CgroupResourceUsageSchema, cgroupResourceUsage(cgroupUsage))]),
      ],
    });
    actionResults.set(response, result);
    const usage = cgroupUsage;
    if (usage?.oomKilled === true && this.#options.oomReporting === 'resourceExhausted') {
      throw new RunnerError(
        status.RESOURCE_EXHAUSTED,
        `Action ran out of memory: the OOM killer killed ${usage.oomKills} of its processes at its limit of ${usage.memoryLimitBytes ?? 'no'} bytes`,
      );
    }
    return response;
  }

  /** The build directory, opened for this call (see ActionEngine). */
  #openBuildDirectory(): DirectoryHandle {
    try {
      return this.#options.engine.openBuildDirectory();
    } catch (error) {
      throw error instanceof ActionError
        ? new RunnerError(status.INTERNAL, error.message, error)
        : error;
    }
  }

  async checkReadiness(request: CheckReadinessRequest): Promise<void> {
    const quoted = JSON.stringify(request.path);
    let components: readonly string[];
    try {
      ({ components } = resolveRelativePath(request.path));
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to resolve path ${quoted} in build directory`,
      );
    }
    const buildDirectory = this.#openBuildDirectory();
    const name = components.at(-1);
    let parent: DirectoryHandle;
    try {
      if (name === undefined) return;
      parent = openDirectoryBeneath(buildDirectory, components.slice(0, -1).join('/'));
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to resolve path ${quoted} in build directory`,
      );
    } finally {
      buildDirectory.close();
    }
    try {
      statAt(parent, name);
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to check existence of path ${quoted} in build directory`,
      );
    } finally {
      parent.close();
    }
  }
}

function relative(path: string, prefix: string): string {
  try {
    return resolveRelativePath(path).components.join('/');
  } catch (error) {
    throw wrapError(error, status.INVALID_ARGUMENT, prefix);
  }
}

function logPath(path: string, stream: 'stdout' | 'stderr'): string {
  const prefix = `Failed to open ${stream} path ${JSON.stringify(path)}`;
  let resolved: ReturnType<typeof resolveRelativePath>;
  try {
    resolved = resolveRelativePath(path);
  } catch (error) {
    throw wrapError(error, status.INVALID_ARGUMENT, prefix);
  }
  if (resolved.namesDirectory) {
    throw new RunnerError(status.INVALID_ARGUMENT, `${prefix}: Path resolves to a directory`);
  }
  return resolved.components.join('/');
}

/** The status of an action that could not run, or that was aborted. */
function runError(error: unknown, signal: AbortSignal): RunnerError {
  if (signal.aborted) {
    return signal.reason instanceof RunnerError
      ? signal.reason
      : new RunnerError(status.CANCELLED, 'Action was cancelled', error);
  }
  if (error instanceof ActionError) {
    const code = error.kind === 'invalidArgument' ? status.INVALID_ARGUMENT : status.INTERNAL;
    return new RunnerError(code, error.message, error);
  }
  return wrapError(error, status.INTERNAL, 'Failed to run action');
}

function duration(nanoseconds: bigint): Duration {
  return create(DurationSchema, {
    seconds: nanoseconds / 1_000_000_000n,
    nanos: Number(nanoseconds % 1_000_000_000n),
  });
}

function posixResourceUsage(usage: ResourceUsage, result: ActionResult) {
  return create(POSIXResourceUsageSchema, {
    userTime: duration(usage.userTimeNanoseconds),
    systemTime: duration(usage.systemTimeNanoseconds),
    maximumResidentSetSize: BigInt(usage.maximumResidentSetSizeBytes),
    pageReclaims: BigInt(usage.pageReclaims),
    pageFaults: BigInt(usage.pageFaults),
    swaps: BigInt(usage.swaps),
    blockInputOperations: BigInt(usage.blockInputOperations),
    blockOutputOperations: BigInt(usage.blockOutputOperations),
    messagesSent: BigInt(usage.messagesSent),
    messagesReceived: BigInt(usage.messagesReceived),
    signalsReceived: BigInt(usage.signalsReceived),
    voluntaryContextSwitches: BigInt(usage.voluntaryContextSwitches),
    involuntaryContextSwitches: BigInt(usage.involuntaryContextSwitches),
    terminationSignal: result.terminationSignal ?? '',
  });
}

function pressure(totals: PressureTotals) {
  return create(CgroupResourceUsage_PressureSchema, {
    some: duration(totals.someMicroseconds * 1000n),
    full: duration(totals.fullMicroseconds * 1000n),
  });
}

function cgroupResourceUsage(usage: ActionCgroupUsage) {
  return create(CgroupResourceUsageSchema, {
    cgroupVersion: usage.version,
    memoryPeak: BigInt(usage.memoryPeakBytes),
    memoryLimit: BigInt(usage.memoryLimitBytes ?? 0),
    memoryLimitHits: BigInt(usage.memoryLimitHits),
    oomEvents: BigInt(usage.oomEvents),
    oomKills: BigInt(usage.oomKills),
    oomKilled: usage.oomKilled,
    pidsLimitHits: BigInt(usage.pidsLimitHits),
    pidsPeak: BigInt(usage.pidsPeak ?? 0),
    cpuUserTime: duration(usage.cpuUserNanoseconds),
    cpuSystemTime: duration(usage.cpuSystemNanoseconds),
    ioReadBytes: BigInt(usage.ioReadBytes),
    ioWriteBytes: BigInt(usage.ioWriteBytes),
    ...(usage.pressure === null
      ? {}
      : {
          cpuPressure: pressure(usage.pressure.cpu),
          memoryPressure: pressure(usage.pressure.memory),
          ioPressure: pressure(usage.pressure.io),
        }),
  });
}
