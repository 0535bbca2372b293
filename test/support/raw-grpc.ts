import type { ClientHttp2Session } from "node:http2";

/** A length-prefixed gRPC message: the Compressed-Flag byte, the length, the bytes. */
export function grpcFrame(message: Uint8Array, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flag, 0);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** How a raw call ended: its grpc-status and grpc-message (absent when none came), and the stream's reset code. */
export interface RawCallEnd {
  readonly code: number | undefined;
  readonly message: string;
  readonly rstCode: number | undefined;
}

/**
 * One call over raw node:http2, with headers and bytes no gRPC library would
 * send: writes `chunks` (framed already) and ends its side, then resolves
 * once the stream has closed.
 */
export function rawCall(session: ClientHttp2Session, path: string, chunks: readonly Buffer[], headers: Record<string, string> = {}): Promise<RawCallEnd> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let code: number | undefined;
    let message = "";
    const read = (h: Record<string, unknown>): void => {
      if (h["grpc-status"] === undefined) return;
      code = Number(h["grpc-status"]);
      message = decodeURIComponent(String(h["grpc-message"] ?? ""));
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", () => {});
    stream.on("error", reject);
    stream.on("close", () => resolve({ code, message, rstCode: stream.rstCode }));
    for (const c of chunks) stream.write(c);
    stream.end();
  });
}
