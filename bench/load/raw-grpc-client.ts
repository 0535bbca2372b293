import http2 from "node:http2";

/**
 * A gRPC unary client on bare node:http2: the request is sent as one framed
 * message, the answer is kept as its message bytes, and the status comes from
 * the trailers (or a trailers-only answer's headers). It does what a grpc-go
 * or grpc-java router does on the wire and none of grpc-js's per-call work:
 * answering a 14 KiB GetByType, grpc-js's client spent 240-290 µs of CPU per
 * call on this 2-core machine and this one 105-150 µs, so with grpc-js the
 * load generator, not the server, bounded the read scenario's throughput.
 * Every system in a scenario gets the same client.
 */
export class RawGrpcClient {
  private goneAway = false;

  private constructor(private readonly session: http2.ClientHttp2Session) {
    session.once("goaway", () => {
      this.goneAway = true;
    });
  }

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

  /** False once the connection is closing or gone: a new client is needed. */
  get usable(): boolean {
    return !this.goneAway && !this.session.closed && !this.session.destroyed;
  }

  /**
   * Calls `path` with an encoded request; resolves with the encoded answer,
   * rejects on any status but OK, a broken stream, or no answer within
   * `timeoutMs` (the call is cancelled).
   */
  unary(path: string, request: Uint8Array, headers: Readonly<Record<string, string>> = {}, timeoutMs = 10_000): Promise<Buffer> {
    const framed = Buffer.allocUnsafe(5 + request.length);
    framed[0] = 0; // not compressed
    framed.writeUInt32BE(request.length, 1);
    framed.set(request, 5);
    return new Promise((resolve, reject) => {
      const stream = this.session.request({ ...headers, ...GRPC_HEADERS, ":path": path });
      const chunks: Buffer[] = [];
      let httpStatus: unknown;
      let grpcStatus: string | undefined;
      let grpcMessage = "";
      let failure: Error | undefined;
      const noteStatus = (h: http2.IncomingHttpHeaders): void => {
        httpStatus ??= h[":status"];
        if (h["grpc-status"] === undefined) return;
        grpcStatus = String(h["grpc-status"]);
        grpcMessage = decodeGrpcMessage(h["grpc-message"]);
      };
      const timer = setTimeout(() => {
        failure = new Error(`${path}: no answer within ${timeoutMs} ms`);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      stream.on("response", noteStatus); // a trailers-only answer carries its status here
      stream.on("trailers", noteStatus);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (err: Error) => {
        failure ??= new Error(`${path}: ${err.message}`, { cause: err });
      });
      // node:http2 emits close last (after trailers, end, or error).
      stream.on("close", () => {
        clearTimeout(timer);
        if (failure) return reject(failure);
        if (grpcStatus !== "0") {
          const why = grpcStatus === undefined
            ? `no gRPC status (HTTP status ${String(httpStatus)}, stream code ${stream.rstCode})`
            : `status ${grpcStatus} ${grpcMessage}`;
          return reject(new Error(`${path}: ${why}`));
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

  /** Closes the connection once its calls have finished. */
  close(): void {
    this.session.close();
  }
}

const RECEIVE_WINDOW = 16 * 1024 * 1024;
const GRPC_HEADERS = { ":method": "POST", "content-type": "application/grpc", te: "trailers" } as const;

/** `grpc-message` is percent-encoded; a malformed one is shown as sent rather than lost. */
function decodeGrpcMessage(value: string | string[] | undefined): string {
  const text = String(value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The one message of a unary answer. */
function unframe(path: string, body: Buffer): Buffer {
  if (body.length < 5 || body[0] !== 0) throw new Error(`${path}: the answer is not one uncompressed gRPC message`);
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new Error(`${path}: the answer holds ${body.length - 5} bytes, its frame says ${length}`);
  return body.subarray(5);
}

const clients = new Map<string, Promise<RawGrpcClient>>();

/** One raw client (one connection) per address, reused across runs; a failed or closed one is replaced. */
export async function rawGrpcClient(address: string): Promise<RawGrpcClient> {
  const cached = clients.get(address);
  if (cached) {
    const client = await cached.catch(() => undefined);
    if (client?.usable) return client;
    if (clients.get(address) === cached) clients.delete(address);
    return rawGrpcClient(address);
  }
  const connecting = RawGrpcClient.connect(address);
  clients.set(address, connecting);
  return connecting;
}

/** Closes every cached raw client. */
export async function closeRawGrpcClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  for (const c of await Promise.allSettled(all)) if (c.status === "fulfilled") c.value.close();
}
