// The core runner: maps a RunRequest onto one action of the execution engine, and bb_runner's
// errors and results onto gRPC statuses and a RunResponse.
import { create } from '@bufbuild/protobuf';
import { anyPack, type Duration, DurationSchema } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import {
  type CheckReadinessRequest,
  POSIXResourceUsageSchema,
  type RunRequest,
  type RunResponse,
  RunResponseSchema,
} from '../proto/index.js';
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
}

export interface LocalRunnerOptions {
  /** Handle on the build directory, opened once at start-up. */
  readonly buildDirectory: DirectoryHandle;
  /** runCommandsAs; the runner's own credentials when absent. */
  readonly credentials: Credentials | undefined;
  readonly setTmpdirEnvironmentVariable: boolean;
  readonly engine: ActionEngine;
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
    const response = create(RunResponseSchema, {
      exitCode: BigInt(result.exitCode ?? -1),
      resourceUsage: [
        anyPack(POSIXResourceUsageSchema, posixResourceUsage(result.resourceUsage, result)),
      ],
    });
    actionResults.set(response, result);
    return response;
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
    const name = components.at(-1);
    if (name === undefined) return;
    let parent: DirectoryHandle;
    try {
      parent = openDirectoryBeneath(
        this.#options.buildDirectory,
        components.slice(0, -1).join('/'),
      );
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to resolve path ${quoted} in build directory`,
      );
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
