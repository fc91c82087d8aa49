// A minimal gRPC client of unary calls on node:http2: the gRPC wire protocol (a POST per call,
// the message behind a 5-byte length prefix, the status in the trailers) and nothing else. It
// stands in for bb_worker's Go client, whose cost per call is a fraction of @grpc/grpc-js's
// (resolver, load balancer, retries, filters and interceptors on every call), so that the
// serve contenders measure the runner rather than the client sharing its two cores.
import { type ClientHttp2Session, connect } from 'node:http2';
import { createConnection } from 'node:net';

export class Http2GrpcClient {
  readonly #session: ClientHttp2Session;

  /** `socket`: the path of the server's unix socket. */
  constructor(socket: string) {
    this.#session = connect('http://localhost', {
      createConnection: () => createConnection(socket),
    });
  }

  /** Calls `path` (/package.Service/Method) with a serialised request; resolves with the
   * serialised response, or rejects with the gRPC status and message. */
  unary(path: string, request: Uint8Array): Promise<Buffer> {
    const frame = Buffer.allocUnsafe(5 + request.length);
    frame[0] = 0; // not compressed
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    return new Promise((resolve, reject) => {
      const stream = this.#session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = '';
      // A status comes in the trailers, or in the headers of a trailers-only response.
      const readStatus = (headers: Record<string, unknown>) => {
        if (headers['grpc-status'] === undefined) return;
        status = String(headers['grpc-status']);
        message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
      };
      stream.on('response', readStatus);
      stream.on('trailers', readStatus);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => {
        if (status !== '0') {
          reject(new Error(`${path} failed with gRPC status ${status ?? 'none'}: ${message}`));
          return;
        }
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
          reject(new Error(`${path} answered with a malformed message`));
          return;
        }
        resolve(body.subarray(5));
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.#session.close();
  }
}
