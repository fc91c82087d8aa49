// The wire protocol: generated message types (src/proto/gen, from proto/) and the glue that
// turns a generated service descriptor into a @grpc/grpc-js service definition.
import { type DescMessage, type DescService, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export * from './gen/buildbarn/resourceusage/resourceusage_pb.js';
export * from './gen/buildbarn/runner/runner_pb.js';
export * from './gen/grpc/health/v1/health_pb.js';

/** A grpc-js service definition whose methods (keyed by their local name, e.g. `run`)
 * serialise with the generated schemas. */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream:
        method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream:
        method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      ...codec(method.input, 'request'),
      ...codec(method.output, 'response'),
    } as MethodDefinition<unknown, unknown>;
  }
  return definition;
}

function codec(schema: DescMessage, side: 'request' | 'response') {
  return {
    [`${side}Serialize`]: (message: Parameters<typeof toBinary>[1]) =>
      Buffer.from(toBinary(schema, message)),
    [`${side}Deserialize`]: (bytes: Buffer) => fromBinary(schema, bytes),
  };
}
