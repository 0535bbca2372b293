import { constants } from "node:http2";
import type { CallHooksFactory } from "./call-hooks.js";
import { http2StreamBelow } from "./call-stream.js";

/**
 * Resets a client-streaming call's HTTP/2 stream (RST_STREAM NO_ERROR, as
 * HTTP/2 and gRPC allow once a response is complete) when the server has
 * sent its status while the client still has its side open. grpc-js sends
 * the status and leaves the stream half-open: a peer that never ends its
 * side (a KeepAlive or an xDS stream refused for its credentials, or
 * waiting in vain for its first message) would keep the stream and its
 * buffers for as long as its connection lives, and the connection busy, so
 * never idle. A client that ended its side first is left alone: its stream
 * closes with the status.
 *
 * @example
 * new Server({ interceptors: [callHooksInterceptor([requestStreamResetHooks()])] });
 */
export function requestStreamResetHooks(): CallHooksFactory {
  return (method, next) => {
    if (!method.requestStream) return {};
    let halfClosed = false;
    return {
      onHalfClose() {
        halfClosed = true;
      },
      onStatus() {
        if (halfClosed) return;
        const stream = http2StreamBelow(next);
        // After the status is handed to node:http2, which sends what it has queued before the reset.
        setImmediate(() => {
          if (stream && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
        });
      },
    };
  };
}
