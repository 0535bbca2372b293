import { constants, type Http2Server, type ServerHttp2Stream } from "node:http2";
import type { Server } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CallHooksFactory } from "./call-hooks.js";
import { http2StreamBelow } from "./call-stream.js";

/**
 * Resets a call's HTTP/2 stream (RST_STREAM CANCEL: the server needs
 * nothing more of it) when the call ended before its client ended its side. grpc-js sends the status and leaves the stream half-open,
 * so a peer that never ends its side would keep the stream, its buffers and
 * its connection (busy, so never idle) for as long as the connection lives:
 * a KeepAlive or xDS stream refused for its credentials or ended by the
 * server, a call refused by grpc-js itself for a message over the size
 * limit before its body came, a request that never arrived in full. A
 * client that ended its side first is left alone: its stream closes with
 * the status.
 *
 * The reset must follow the status on the wire, or gRPC clients report the
 * reset ("Received RST_STREAM") instead of the status; once the status is
 * in, they ignore it. Not NO_ERROR, which HTTP/2 also allows after a
 * complete response: a node:http2 client still writing never closes a
 * stream reset so (it waits for its writes to drain first). grpc-js
 * tells a call's layers it ended (onCancel) after it has handed the status
 * to node:http2, for statuses it sends itself too, which the layers never
 * see as such. A status in the response headers (no message before it) is
 * then on its way, and the reset follows in the next immediate; trailers
 * are given a grace period (`resetAfterTrailers`).
 *
 * @example
 * new Server({ interceptors: [callHooksInterceptor([earlyStatusResetHooks()])] });
 */
export function earlyStatusResetHooks(): CallHooksFactory {
  return (_method, next) => {
    let halfClosed = false;
    return {
      onHalfClose() {
        halfClosed = true;
      },
      onCancel() {
        // Every call passes here after its status: one whose client ended its side first costs nothing more.
        if (halfClosed) return;
        const stream = http2StreamBelow(next);
        // Closed already: the client cancelled, or the call ended cleanly.
        if (stream === undefined || stream.closed) return;
        // A status after messages went out as trailers, behind them; otherwise it was in the response headers.
        if (stream.sentHeaders?.["grpc-status"] === undefined) resetAfterTrailers(stream);
        else resetAfterAnswer(stream);
      },
    };
  };
}

/**
 * The same for the calls grpc-js answers itself, before any interceptor
 * runs: an unknown method (UNIMPLEMENTED) and a request without a gRPC
 * content type (HTTP 415). grpc-js offers no way to see those streams: its
 * http2 servers are reached through its private `http2Servers` map (grpc-js
 * 1.14, server.ts), whose stream handler is registered before this one, so
 * a stream already answered in full when this one runs was answered by
 * grpc-js alone. Call after each bind or connection injector grpc-js makes;
 * `hooked` keeps a server from being followed twice. A warning says so if
 * the map is gone; test/server/early-status-reset.test.ts fails then too.
 */
export function resetStreamsAnsweredByGrpcJs(server: Server, hooked: WeakSet<object>, logger: Logger): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) {
    logger.warn("cannot reach grpc-js's http2 servers: calls it answers itself (unknown methods) are not reset");
    return;
  }
  for (const http2Server of servers.keys() as IterableIterator<Http2Server>) {
    if (hooked.has(http2Server)) continue;
    hooked.add(http2Server);
    http2Server.on("stream", (stream: ServerHttp2Stream) => {
      if (stream.writableEnded) resetAfterAnswer(stream);
    });
  }
}

/** Resets `stream` in the next immediate: its answer, complete in its response headers, is ahead of the reset. */
function resetAfterAnswer(stream: ServerHttp2Stream): void {
  setImmediate(() => reset(stream));
}

/**
 * Resets `stream` a grace period after its status went out as trailers,
 * unless it closes first. node:http2 sends trailers after the last message,
 * at a moment no event marks, and a reset sent sooner can overtake them (seen
 * as Python's grpcio reading CANCELLED instead of the status, about one run
 * in four, when the next immediate was used). A client still reading has its
 * status by then; one not reading gets the reset.
 */
function resetAfterTrailers(stream: ServerHttp2Stream): void {
  const grace = setTimeout(() => reset(stream), TRAILERS_GRACE_MS);
  grace.unref();
  stream.once("close", () => clearTimeout(grace));
}

function reset(stream: ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
}

/** How long a stream whose status went out as trailers gets to close before it is reset. */
const TRAILERS_GRACE_MS = 1000;
