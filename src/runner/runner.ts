// The runner interface: what bb_worker's Runner service asks for, independent of gRPC's server
// machinery. The core LocalRunner implements it; optional behaviours decorate it.
import type { status } from '@grpc/grpc-js';
import type { CheckReadinessRequest, RunRequest, RunResponse } from '../proto/index.js';

export interface Runner {
  /** Runs one action; aborting `signal` kills the whole action and cleans up. */
  run(request: RunRequest, signal: AbortSignal): Promise<RunResponse>;
  /** Resolves when the runner is ready to accept work. */
  checkReadiness(request: CheckReadinessRequest): Promise<void>;
}

/** An error with the gRPC status code that reaches bb_worker. */
export class RunnerError extends Error {
  override readonly name = 'RunnerError';
  constructor(
    readonly code: status,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }

  /** The same error with a prefix, like Buildbarn's util.StatusWrap. */
  wrap(prefix: string, code = this.code): RunnerError {
    return new RunnerError(code, `${prefix}: ${this.message}`, this.cause);
  }
}

/** Wraps any error with a prefix, keeping a RunnerError's code and giving others `code`. */
export function wrapError(error: unknown, code: status, prefix: string): RunnerError {
  if (error instanceof RunnerError) return error.wrap(prefix);
  return new RunnerError(code, `${prefix}: ${(error as Error).message}`, error);
}

/** Wraps any error with a prefix and `code`, like Buildbarn's util.StatusWrapWithCode. */
export function wrapErrorWithCode(error: unknown, code: status, prefix: string): RunnerError {
  if (error instanceof RunnerError) return error.wrap(prefix, code);
  return new RunnerError(code, `${prefix}: ${(error as Error).message}`, error);
}
