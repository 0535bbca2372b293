import http2 from "node:http2";

/**
 * A gRPC unary client on bare node:http2: the request is sent as one framed
 * message, the answer is kept as its message bytes, and the status comes from
 * the trailers (or a trailers-only answer's headers). It does what a grpc-go
 * or grpc-java router does on the wire and none of grpc-js's per-call work:
 * answering a 14 KiB GetByType, grpc-js's client spent 240-290 µs of CPU per
 * call on this 2-core machine and this one 105-125 µs, so with grpc-js the
 * load generator, not the server, bounded the read scenario's throughput.
 * Every system in a scenario gets the same client.
 */
export class RawGrpcClient {
  private constructor(private readonly session: http2.ClientHttp2Session) {}

  /** One HTTP/2 connection to `address` (host:port) with a 16 MiB receive window, as the grpc-js load client has. */
  static connect(address: string): Promise<RawGrpcClient> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: RECEIVE_WINDOW } });
      session.once("error", reject);
      session.once("connect", () => {
        session.off("error", reject);
        session.on("error", () => {}); // a broken connection fails its calls, each with its own error
        session.setLocalWindowSize(RECEIVE_WINDOW);
        resolve(new RawGrpcClient(session));
      });
    });
  }

  /** Calls `path` with an encoded request; resolves with the encoded answer, rejects on any status but OK. */
  unary(path: string, request: Uint8Array, headers: Readonly<Record<string, string>> = {}): Promise<Buffer> {
    const framed = Buffer.allocUnsafe(5 + request.length);
    framed[0] = 0; // not compressed
    framed.writeUInt32BE(request.length, 1);
    framed.set(request, 5);
    return new Promise((resolve, reject) => {
      const stream = this.session.request({ ...headers, ...GRPC_HEADERS, ":path": path });
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      let grpcMessage = "";
      const noteStatus = (h: http2.IncomingHttpHeaders): void => {
        if (h["grpc-status"] === undefined) return;
        grpcStatus = String(h["grpc-status"]);
        grpcMessage = decodeURIComponent(String(h["grpc-message"] ?? ""));
      };
      stream.on("response", noteStatus); // a trailers-only answer carries its status here
      stream.on("trailers", noteStatus);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("close", () => {
        if (grpcStatus !== "0") {
          reject(new Error(`${path}: ${grpcStatus === undefined ? `stream closed without a status (code ${stream.rstCode})` : `status ${grpcStatus} ${grpcMessage}`}`));
          return;
        }
        try {
          resolve(unframe(path, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
        } catch (err) {
          reject(err);
        }
      });
      stream.end(framed);
    });
  }

  close(): void {
    this.session.close();
  }
}

const RECEIVE_WINDOW = 16 * 1024 * 1024;
const GRPC_HEADERS = { ":method": "POST", "content-type": "application/grpc", te: "trailers" } as const;

/** The one message of a unary answer. */
function unframe(path: string, body: Buffer): Buffer {
  if (body.length < 5 || body[0] !== 0) throw new Error(`${path}: the answer is not one uncompressed gRPC message`);
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new Error(`${path}: the answer holds ${body.length - 5} bytes, its frame says ${length}`);
  return body.subarray(5);
}

const clients = new Map<string, Promise<RawGrpcClient>>();

/** One raw client (one connection) per address, reused across runs. */
export function rawGrpcClient(address: string): Promise<RawGrpcClient> {
  let client = clients.get(address);
  if (!client) {
    client = RawGrpcClient.connect(address);
    clients.set(address, client);
  }
  return client;
}

export async function closeRawGrpcClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  for (const c of await Promise.allSettled(all)) if (c.status === "fulfilled") c.value.close();
}
