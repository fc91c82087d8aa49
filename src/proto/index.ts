// The wire protocol: generated message types (src/proto/gen, from proto/) and the glue that
// turns a generated service descriptor into a @grpc/grpc-js service definition.
import { isUtf8 } from 'node:buffer';
import {
  type DescMessage,
  type DescService,
  fromBinary,
  ScalarType,
  toBinary,
} from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export * from './gen/buildbarn/resourceusage/resourceusage_pb.js';
export * from './gen/buildbarn/runner/runner_pb.js';
export * from './gen/chrootrunner/resourceusage/cgroup_pb.js';
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

/** A request that could not be decoded, handed to the method's handler in place of the
 * message: grpc-js itself would answer INTERNAL "Error deserializing request", without saying
 * what is wrong, for what is the client's mistake. */
export class MalformedMessage {
  constructor(readonly reason: string) {}
}

function codec(schema: DescMessage, side: 'request' | 'response') {
  return {
    // A Buffer view of the encoded bytes, not a copy: grpc-js copies them into its frame.
    [`${side}Serialize`]: (message: Parameters<typeof toBinary>[1]) => {
      const bytes = toBinary(schema, message);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    [`${side}Deserialize`]:
      side === 'response'
        ? (bytes: Buffer) => fromBinary(schema, bytes)
        : (bytes: Buffer) => {
            try {
              return fromBinary(schema, bytes);
            } catch (error) {
              return new MalformedMessage(decodingFailure(schema, bytes, error as Error));
            }
          },
  };
}

function decodingFailure(schema: DescMessage, bytes: Uint8Array, error: Error): string {
  const field = fieldWithInvalidUtf8(schema, bytes);
  return field === undefined
    ? `Malformed ${schema.name}: ${error.message}`
    : `Malformed ${schema.name}: ${field} is not valid UTF-8, which proto3 strings must be`;
}

/** The path of the first string in the encoded message that is not UTF-8 (e.g.
 * `environment_variables["BAD"]`), found by walking the wire format along the schema. */
function fieldWithInvalidUtf8(schema: DescMessage, bytes: Uint8Array): string | undefined {
  const reader = new BinaryReader(bytes);
  try {
    while (reader.pos < reader.len) {
      const [number, wireType] = reader.tag();
      const field = schema.fields.find((candidate) => candidate.number === number);
      if (field === undefined || wireType !== WireType.LengthDelimited) {
        reader.skip(wireType, number);
        continue;
      }
      const value = reader.bytes();
      let found: string | undefined;
      switch (field.fieldKind) {
        case 'scalar':
        case 'list':
          if (field.scalar === ScalarType.STRING && !isUtf8(value)) return field.name;
          if (field.fieldKind === 'list' && field.listKind === 'message') {
            found = fieldWithInvalidUtf8(field.message, value);
          }
          break;
        case 'message':
          found = fieldWithInvalidUtf8(field.message, value);
          break;
        case 'map':
          found = mapEntryWithInvalidUtf8(field, value);
          if (found !== undefined) return `${field.name}${found}`;
          break;
      }
      if (found !== undefined) return `${field.name}.${found}`;
    }
  } catch {
    // Truncated or otherwise broken beyond strings: the runtime's own message says it.
  }
  return undefined;
}

/** `["key"]` or `["key"].field` for a map entry (key 1, value 2) holding invalid UTF-8. */
function mapEntryWithInvalidUtf8(
  field: Extract<DescMessage['fields'][number], { fieldKind: 'map' }>,
  entry: Uint8Array,
): string | undefined {
  const reader = new BinaryReader(entry);
  let key = Buffer.alloc(0);
  let invalidValue: string | undefined;
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const value = reader.bytes();
    if (number === 1) key = Buffer.from(value);
    if (number === 2 && field.mapKind === 'scalar' && field.scalar === ScalarType.STRING) {
      if (!isUtf8(value)) invalidValue = '';
    } else if (number === 2 && field.mapKind === 'message') {
      const found = fieldWithInvalidUtf8(field.message, value);
      if (found !== undefined) invalidValue = `.${found}`;
    }
  }
  if (field.mapKey === ScalarType.STRING && !isUtf8(key)) return '[key]';
  return invalidValue === undefined
    ? undefined
    : `[${JSON.stringify(key.toString())}]${invalidValue}`;
}
