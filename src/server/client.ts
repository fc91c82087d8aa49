// A small client of the Runner service, as bb_worker uses it (for the demo, tests and
// benchmarks). Method paths are written out, independently of the server's service definition.
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import {
  CheckReadinessRequestSchema,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  type RunRequest,
  RunRequestSchema,
  type RunResponse,
  RunResponseSchema,
} from '../proto/index.js';

export interface CallOptions {
  /** Milliseconds from now after which the call fails with DEADLINE_EXCEEDED. */
  readonly timeoutMs?: number;
}

export class RunnerClient {
  readonly #client: Client;

  /** `address` as gRPC targets are written: unix:///path/to/socket, host:port. */
  constructor(address: string) {
    // Channelz (on by default in grpc-js) keeps statistics of every call for nobody here.
    this.#client = new Client(address, credentials.createInsecure(), {
      'grpc.enable_channelz': 0,
    });
  }

  #call<Request, Response>(
    path: string,
    request: Request,
    serialize: (request: Request) => Uint8Array,
    deserialize: (bytes: Uint8Array) => Response,
    options: CallOptions,
  ): Promise<Response> {
    const callOptions =
      options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        path,
        (message: Request) => Buffer.from(serialize(message)),
        (bytes: Buffer) => deserialize(bytes),
        request,
        callOptions,
        (error: ServiceError | null, response?: Response) =>
          error ? reject(error) : resolve(response as Response),
      );
    });
  }

  run(
    request: MessageInitShape<typeof RunRequestSchema>,
    options: CallOptions = {},
  ): Promise<RunResponse> {
    return this.#call(
      '/buildbarn.runner.Runner/Run',
      create(RunRequestSchema, request),
      (message: RunRequest) => toBinary(RunRequestSchema, message),
      (bytes) => fromBinary(RunResponseSchema, bytes),
      options,
    );
  }

  async checkReadiness(path = '', options: CallOptions = {}): Promise<void> {
    await this.#call(
      '/buildbarn.runner.Runner/CheckReadiness',
      create(CheckReadinessRequestSchema, { path }),
      (message) => toBinary(CheckReadinessRequestSchema, message),
      (bytes) => fromBinary(EmptySchema, bytes),
      options,
    );
  }

  health(service = '', options: CallOptions = {}): Promise<HealthCheckResponse> {
    return this.#call(
      '/grpc.health.v1.Health/Check',
      create(HealthCheckRequestSchema, { service }),
      (message) => toBinary(HealthCheckRequestSchema, message),
      (bytes) => fromBinary(HealthCheckResponseSchema, bytes),
      options,
    );
  }

  close(): void {
    this.#client.close();
  }
}
