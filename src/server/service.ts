// The gRPC face of a Runner: buildbarn.runner.Runner and grpc.health.v1.Health on
// @grpc/grpc-js, with cancellation, metrics and one log line per action.
import { randomUUID } from 'node:crypto';
import { create, type DescService } from '@bufbuild/protobuf';
import { anyUnpack, EmptySchema } from '@bufbuild/protobuf/wkt';
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  type ServerErrorResponse,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import {
  type CheckReadinessRequest,
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  MalformedMessage,
  POSIXResourceUsageSchema,
  type RunRequest,
  type RunResponse,
} from '../proto/index.js';
import { actionResults } from '../runner/local.js';
import { type Runner, RunnerError } from '../runner/runner.js';
import type { ActionResult, IsolationMode } from '../sandbox/types.js';
import type { Logger } from './log.js';
import type { RanOutcome, RunnerMetrics } from './metrics.js';

/** State shared by every gRPC server of one runner: in-flight actions and health. */
export class RunnerServiceState {
  readonly #inFlight = new Set<AbortController>();
  #serving = true;
  readonly #healthWatchers = new Set<() => void>();

  constructor(
    readonly runner: Runner,
    readonly logger: Logger,
    readonly metrics: RunnerMetrics | undefined,
    readonly isolation: IsolationMode,
    /** Runs beyond this many at once are refused (RESOURCE_EXHAUSTED): each holds memory. */
    readonly maximumConcurrentRuns = Number.POSITIVE_INFINITY,
  ) {}

  get serving(): boolean {
    return this.#serving;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  track(controller: AbortController): () => void {
    this.#inFlight.add(controller);
    return () => this.#inFlight.delete(controller);
  }

  /** Refuses new Runs and reports NOT_SERVING from now on. */
  stopServing(): void {
    this.#serving = false;
    for (const notify of this.#healthWatchers) notify();
  }

  /** Aborts every running action with `reason`. */
  abortAll(reason: RunnerError): void {
    for (const controller of this.#inFlight) controller.abort(reason);
  }

  watchHealth(notify: () => void): () => void {
    this.#healthWatchers.add(notify);
    return () => this.#healthWatchers.delete(notify);
  }
}

/** Milliseconds rounded to microseconds, for the log. */
function milliseconds(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function serviceError(error: unknown): ServerErrorResponse {
  if (error instanceof RunnerError) {
    return Object.assign(new Error(error.message), { code: error.code, details: error.message });
  }
  const message = `Internal error: ${(error as Error).message}`;
  return Object.assign(new Error(message), { code: status.INTERNAL, details: message });
}

function outcome(response: RunResponse): RanOutcome {
  if (response.exitCode === 0n) return 'succeeded';
  return response.exitCode === -1n ? 'signalled' : 'failed';
}

/** The engine's result says it directly; a response without one (from a decorator of the
 * runner) has it in its resource usage. */
function terminationSignal(response: RunResponse, result: ActionResult | undefined): string | null {
  if (result !== undefined) return result.terminationSignal;
  const [usage] = response.resourceUsage;
  return (usage && anyUnpack(usage, POSIXResourceUsageSchema)?.terminationSignal) || null;
}

/** A denied policy (authenticationPolicy.deny) answers every call with its message. */
function denied(message: string): ServerErrorResponse {
  return Object.assign(new Error(message), {
    code: status.UNAUTHENTICATED,
    details: message,
    metadata: new Metadata(),
  });
}

export function runnerServiceImplementation(
  state: RunnerServiceState,
  denyMessage: string | undefined,
): UntypedServiceImplementation {
  const run: handleUnaryCall<RunRequest, RunResponse> = (call, callback) => {
    if (denyMessage !== undefined) {
      callback(denied(denyMessage));
      return;
    }
    if (!state.serving) {
      callback(serviceError(new RunnerError(status.UNAVAILABLE, 'Runner is shutting down')));
      return;
    }
    if (state.inFlight >= state.maximumConcurrentRuns) {
      callback(
        serviceError(
          new RunnerError(
            status.RESOURCE_EXHAUSTED,
            `The runner is running its maximum of ${state.maximumConcurrentRuns} Runs at once ` +
              '(chrootRunner.maximumConcurrentRuns)',
          ),
        ),
      );
      return;
    }
    const request = call.request;
    // Unique across runners and restarts, to find one action in logs gathered from many.
    const id = randomUUID();
    const controller = new AbortController();
    const untrack = state.track(controller);
    // The client went away or its deadline passed: kill the action. grpc-js also reports
    // every finished call as cancelled, so the listener goes once the action has settled.
    const onCancelled = () =>
      controller.abort(new RunnerError(status.CANCELLED, 'Run was cancelled by the client'));
    call.on('cancelled', onCancelled);
    const settle = () => {
      call.off('cancelled', onCancelled);
      untrack();
    };
    const started = performance.now();
    state.metrics?.actionStarted();
    // Each log line's fields are one object literal: spreading shared fields into it costs
    // V8 a slow property definition per field on every action.
    const inputRoot = request.inputRootDirectory;
    const argv0 = request.arguments[0] ?? '';
    state.runner.run(request, controller.signal).then(
      (response) => {
        settle();
        // Answer first: metrics and the log line are not on bb_worker's path.
        callback(null, response);
        const result = actionResults.get(response);
        state.metrics?.actionRan(outcome(response), result);
        state.logger.info(
          {
            id,
            inputRoot,
            argv0,
            isolation: state.isolation,
            exitCode: Number(response.exitCode),
            signal: terminationSignal(response, result),
            durationsMs: result && {
              setup: milliseconds(result.timings.setup),
              run: milliseconds(result.timings.run),
              teardown: milliseconds(result.timings.teardown),
            },
            rpcMs: milliseconds(performance.now() - started),
          },
          'action finished',
        );
      },
      (error: unknown) => {
        settle();
        const failure = serviceError(error);
        callback(failure);
        const code = status[failure.code ?? status.UNKNOWN] ?? 'UNKNOWN';
        state.metrics?.actionFailed(failure.code ?? status.UNKNOWN);
        state.logger.info(
          {
            id,
            inputRoot,
            argv0,
            isolation: state.isolation,
            code,
            error: failure.message,
            rpcMs: milliseconds(performance.now() - started),
          },
          'action not run',
        );
      },
    );
  };

  const checkReadiness: handleUnaryCall<CheckReadinessRequest, unknown> = (call, callback) => {
    if (denyMessage !== undefined) {
      callback(denied(denyMessage));
      return;
    }
    state.runner.checkReadiness(call.request).then(
      () => callback(null, create(EmptySchema)),
      (error: unknown) => callback(serviceError(error)),
    );
  };

  return { run, checkReadiness };
}

export function healthServiceImplementation(
  state: RunnerServiceState,
  serviceNames: ReadonlySet<string>,
): UntypedServiceImplementation {
  const statusOf = (request: HealthCheckRequest): HealthCheckResponse_ServingStatus => {
    if (!serviceNames.has(request.service))
      return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
    return state.serving
      ? HealthCheckResponse_ServingStatus.SERVING
      : HealthCheckResponse_ServingStatus.NOT_SERVING;
  };
  const response = (servingStatus: HealthCheckResponse_ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status: servingStatus });

  const check: handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    const servingStatus = statusOf(call.request);
    if (servingStatus === HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN) {
      callback(
        Object.assign(new Error('unknown service'), {
          code: status.NOT_FOUND,
          details: 'unknown service',
        }),
      );
      return;
    }
    callback(null, response(servingStatus));
  };

  const watch: handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse> = (call) => {
    call.write(response(statusOf(call.request)));
    const unwatch = state.watchHealth(() => {
      call.write(response(statusOf(call.request)));
      call.end();
    });
    call.on('cancelled', unwatch);
    if (!state.serving) {
      unwatch();
      call.end();
    }
  };

  return { check, watch };
}

/** Answers INVALID_ARGUMENT, saying what is wrong, to a request that did not decode (the
 * codec hands over a MalformedMessage), before any method of `service` sees it. */
export function refusingMalformedRequests(
  service: DescService,
  implementation: UntypedServiceImplementation,
  state: RunnerServiceState,
): UntypedServiceImplementation {
  const wrapped: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = implementation[method.localName] as unknown as MalformedAwareHandler;
    if (handler === undefined) continue;
    const refusing: MalformedAwareHandler = (call, callback) => {
      if (!(call.request instanceof MalformedMessage)) {
        handler(call, callback);
        return;
      }
      const { reason } = call.request;
      state.logger.info({ method: method.name, error: reason }, 'request refused');
      const error = Object.assign(new Error(reason), {
        code: status.INVALID_ARGUMENT,
        details: reason,
      });
      if (callback === undefined) call.emit('error', error);
      else callback(error);
    };
    wrapped[method.localName] = refusing as unknown as UntypedServiceImplementation[string];
  }
  return wrapped;
}

/** What refusingMalformedRequests needs of a unary or server-streaming handler. */
type MalformedAwareHandler = (
  call: { request: unknown; emit(event: 'error', error: ServerErrorResponse): boolean },
  callback?: (error: ServerErrorResponse) => void,
) => void;
