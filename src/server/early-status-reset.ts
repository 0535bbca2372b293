import { constants } from "node:http2";
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
 * The reset must follow the status on the wire, or gRPC clients report
 * INTERNAL ("Received RST_STREAM") instead of the status; once the status
 * is in, they ignore it. Not NO_ERROR, which HTTP/2 also allows after a
 * complete response: a node:http2 client still writing never closes a
 * stream reset so (it waits for its writes to drain first). grpc-js
 * tells a call's layers it ended (onCancel) after it has handed the status
 * to node:http2, for statuses it sends itself too, which the layers never
 * see as such; node:http2 submits trailers in the next immediate, so the
 * reset goes in the one after.
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
        setImmediate(() => {
          if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
        });
      },
    };
  };
}
