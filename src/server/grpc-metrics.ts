// go-grpc-prometheus's server metrics, as every Buildbarn program exports them and as
// bb-deployments' recording rules and Grafana dashboards read them: the same names, help, labels,
// code names (Go's: "OK", "InvalidArgument", "Canceled", ...) and buckets, so that the runner
// appears on those dashboards beside bb_worker.
import {
  ServerInterceptingCall,
  type ServerInterceptor,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';

/** go-grpc-prometheus's type label. */
type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** Go's codes.Code.String(), by grpc-js's numeric status. */
const goCodeNames: Readonly<Record<number, string>> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** bb-storage's handling-time buckets (util.DecimalExponentialBuckets(-3, 6, 2): three steps per
 * power of ten from 1 ms to 1000 s), which its dashboards' quantiles are computed from. */
export const handlingTimeBuckets = [
  0.001, 0.0021544, 0.0046415, 0.01, 0.021544, 0.046415, 0.1, 0.21544, 0.46415, 1, 2.1544, 4.6415,
  10, 21.544, 46.415, 100, 215.44, 464.15, 1000,
];

type MethodLabels = 'grpc_type' | 'grpc_service' | 'grpc_method';

interface MethodSeries {
  readonly started: Counter.Internal;
  readonly received: Counter.Internal;
  readonly sent: Counter.Internal;
  readonly handling: Histogram.Internal<MethodLabels>;
  /** By grpc-js status number. */
  readonly handled: Map<number, Counter.Internal>;
}

function grpcType(requestStream: boolean, responseStream: boolean): GrpcType {
  if (requestStream) return responseStream ? 'bidi_stream' : 'client_stream';
  return responseStream ? 'server_stream' : 'unary';
}

export class GrpcServerMetrics {
  readonly #started: Counter<MethodLabels>;
  readonly #handled: Counter<MethodLabels | 'grpc_code'>;
  readonly #received: Counter<MethodLabels>;
  readonly #sent: Counter<MethodLabels>;
  readonly #handling: Histogram<MethodLabels>;
  /** Every method's series, bound once by path (labelling on each call hashes the labels). */
  readonly #methods = new Map<string, MethodSeries>();

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['grpc_method', 'grpc_service', 'grpc_type'] as const;
    this.#started = new Counter({
      name: 'grpc_server_started_total',
      help: 'Total number of RPCs started on the server.',
      labelNames,
      registers,
    });
    this.#handled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: ['grpc_code', ...labelNames],
      registers,
    });
    this.#received = new Counter({
      name: 'grpc_server_msg_received_total',
      help: 'Total number of RPC stream messages received on the server.',
      labelNames,
      registers,
    });
    this.#sent = new Counter({
      name: 'grpc_server_msg_sent_total',
      help: 'Total number of gRPC stream messages sent by the server.',
      labelNames,
      registers,
    });
    this.#handling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames,
      buckets: handlingTimeBuckets,
      registers,
    });
  }

  /** Creates every series of the service's methods at zero, as go-grpc-prometheus's Register
   * does, so that rates exist before the first call (and for every code). */
  register(service: ServiceDefinition): void {
    for (const method of Object.values(service)) {
      if (this.#methods.has(method.path)) continue;
      const [, serviceName = '', methodName = ''] = /^\/([^/]*)\/(.*)$/.exec(method.path) ?? [];
      // prom-client prints labels in this order: Go's (sorted), as bb's programs print them.
      const labels = {
        grpc_method: methodName,
        grpc_service: serviceName,
        grpc_type: grpcType(method.requestStream, method.responseStream),
      };
      const handled = new Map<number, Counter.Internal>();
      for (const [code, name] of Object.entries(goCodeNames)) {
        const counter = this.#handled.labels({ grpc_code: name, ...labels });
        counter.inc(0);
        handled.set(Number(code), counter);
      }
      const series: MethodSeries = {
        started: this.#started.labels(labels),
        received: this.#received.labels(labels),
        sent: this.#sent.labels(labels),
        handling: this.#handling.labels(labels),
        handled,
      };
      for (const counter of [series.started, series.received, series.sent]) counter.inc(0);
      this.#methods.set(method.path, series);
    }
  }

  /** The interceptor that counts every call of the registered services: started on arrival,
   * each message in and out, and handled with its status when the status is sent, or Canceled
   * when the call ends without one. */
  readonly interceptor: ServerInterceptor = (descriptor, call): ServerInterceptingCall => {
    const series = this.#methods.get(descriptor.path);
    if (series === undefined) return new ServerInterceptingCall(call);
    series.started.inc();
    const started = performance.now();
    let handled = false;
    const handle = (code: number) => {
      if (handled) return;
      handled = true;
      series.handling.observe((performance.now() - started) / 1000);
      // A code outside gRPC's is Unknown, as grpc-go reports it.
      (series.handled.get(code) ?? series.handled.get(status.UNKNOWN))?.inc();
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, nextMessage) => {
            series.received.inc();
            nextMessage(message);
          },
          // grpc-js reports an expired deadline to the service as a cancellation too.
          onCancel: () => handle(status.CANCELLED),
        }),
      sendMessage: (message, next) => {
        series.sent.inc();
        next(message);
      },
      sendStatus: (sent, next) => {
        handle(sent.code);
        next(sent);
      },
    });
  };
}
