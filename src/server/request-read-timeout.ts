import { constants } from "node:http2";
import { status } from "@grpc/grpc-js";
import type { CallHooksFactory } from "./call-hooks.js";
import { http2StreamBelow } from "./call-stream.js";

/**
 * Ends a call whose request has not arrived in full (its message and the
 * client's half-close) within `timeoutMs`, with DEADLINE_EXCEEDED naming
 * why. Every RegistryService and grpc.health.v1 method takes one request
 * message, so a call that is still reading it after a few seconds is a
 * peer trickling bytes or holding a stream open: without this it keeps its
 * connection busy (never idle, so never closed) and a connection slot taken,
 * without ever presenting a credential. After the status the stream is
 * reset (RST_STREAM NO_ERROR, as HTTP/2 allows once a response is complete):
 * a peer that never ends its side would otherwise keep it open, and its
 * connection busy. The client's own deadline still applies as usual; this
 * one bounds only the reading of the request.
 *
 * Methods whose client streams (KeepAlive, xDS's StreamAggregatedResources)
 * are left out: their requests never end while the stream lives (their
 * handlers bound the wait for the first message themselves).
 *
 * @example
 * new Server({ interceptors: [callHooksInterceptor([requestReadTimeoutHooks(10_000)])] });
 */
export function requestReadTimeoutHooks(timeoutMs: number): CallHooksFactory {
  return (method, next, call) => {
    if (method.requestStream) return {};
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => clearTimeout(timer);
    return {
      onStart() {
        timer = setTimeout(() => {
          call.sendStatus({ code: status.DEADLINE_EXCEEDED, details: `the request did not arrive in full within ${timeoutMs} ms` });
          const stream = http2StreamBelow(next);
          setImmediate(() => {
            if (stream && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
          });
        }, timeoutMs);
        timer.unref();
      },
      onHalfClose: stop,
      onCancel: stop,
      onStatus: stop,
    };
  };
}
