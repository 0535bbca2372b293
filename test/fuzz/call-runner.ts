import { connect, constants as h2, type ClientHttp2Session } from "node:http2";
import type { FuzzCall } from "./grpc-call-cases.js";

/** How one fuzzed call ended. */
export interface CallOutcome {
  /** grpc-status from trailers (or trailers-only headers), if any. */
  readonly grpcStatus?: number;
  /** :status of the response headers. */
  readonly httpStatus?: number;
  /** RST_STREAM code, when the stream was reset. */
  readonly rstCode?: number;
  readonly error?: string;
}

/** A connection the fuzz runs on, and what it saw at connection level. */
export class FuzzConnection {
  readonly session: ClientHttp2Session;
  /** GOAWAY frames received: error code (0 = NO_ERROR). */
  readonly goaways: number[] = [];
  closed = false;
  readonly ready: Promise<void>;

  constructor(address: string) {
    this.session = connect(`http://${address}`);
    this.session.on("goaway", (code: number) => this.goaways.push(code));
    this.session.on("error", () => {}); // seen through 'close' and the streams
    this.session.on("close", () => (this.closed = true));
    this.ready = new Promise((resolve, reject) => {
      this.session.once("connect", () => resolve());
      this.session.once("error", reject);
    });
  }

  /** Sends one call; resolves when its stream closes, or after `timeoutMs` (then it is cancelled). */
  send(call: FuzzCall, timeoutMs: number): Promise<CallOutcome> {
    return new Promise((resolve) => {
      let httpStatus: number | undefined;
      let grpcStatus: number | undefined;
      let error: string | undefined;
      let stream;
      try {
        stream = this.session.request(call.headers, { endStream: false });
      } catch (err) {
        // Node refuses to send some headers: not a server outcome.
        resolve({ error: `client refused: ${(err as Error).message}` });
        return;
      }
      const readStatus = (headers: Record<string, unknown>): void => {
        const s = headers["grpc-status"];
        if (s !== undefined) grpcStatus = Number(s);
      };
      stream.on("response", (headers) => {
        httpStatus = Number(headers[":status"]);
        readStatus(headers);
      });
      stream.on("trailers", (headers) => readStatus(headers));
      stream.on("data", () => {});
      stream.on("error", (err: Error) => (error = err.message));
      const timer = setTimeout(() => stream.close(h2.NGHTTP2_CANCEL), timeoutMs);
      stream.on("close", () => {
        clearTimeout(timer);
        const rstCode = stream.rstCode;
        resolve({
          ...(httpStatus !== undefined ? { httpStatus } : {}),
          ...(grpcStatus !== undefined ? { grpcStatus } : {}),
          ...(rstCode !== undefined && rstCode !== h2.NGHTTP2_NO_ERROR ? { rstCode } : {}),
          ...(error !== undefined ? { error } : {}),
        });
      });
      if (!call.trickle) {
        for (const chunk of call.chunks) stream.write(chunk);
        if (call.end) stream.end();
        return;
      }
      let next = 0;
      const writeNext = (): void => {
        if (stream.destroyed || stream.closed) return;
        if (next < call.chunks.length) {
          stream.write(call.chunks[next++] as Buffer);
          setImmediate(writeNext);
        } else if (call.end) stream.end();
      };
      writeNext();
    });
  }

  close(): void {
    this.session.close();
  }
}
