import { status } from "@grpc/grpc-js";
import type { CallHooksFactory } from "./call-hooks.js";

/**
 * Ends a call whose request has not arrived in full (its message and the
 * client's half-close) within `timeoutMs`, with DEADLINE_EXCEEDED naming
 * why. Every RegistryService and grpc.health.v1 method takes one request
 * message, so a call that is still reading it after a few seconds is a
 * peer trickling bytes or holding a stream open: without this it keeps its
 * connection busy (never idle, so never closed) and a connection slot taken,
 * without ever presenting a credential. The stream is then reset, as any
 * call's whose status came before its client ended its side
 * (early-status-reset.ts). The client's own deadline still applies as
 * usual; this one bounds only the reading of the request.
 *
 * Methods whose client streams (KeepAlive, xDS's StreamAggregatedResources)
 * are left out: their requests never end while the stream lives (their
 * handlers bound the wait for the first message themselves).
 *
 * @example
 * new Server({ interceptors: [callHooksInterceptor([requestReadTimeoutHooks(10_000)])] });
 */
export function requestReadTimeoutHooks(timeoutMs: number): CallHooksFactory {
  return (method, _next, call) => {
    if (method.requestStream) return {};
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => clearTimeout(timer);
    return {
      onStart() {
        timer = setTimeout(() => {
          call.sendStatus({ code: status.DEADLINE_EXCEEDED, details: `the request did not arrive in full within ${timeoutMs} ms` });
        }, timeoutMs);
        timer.unref();
      },
      onHalfClose: stop,
      onCancel: stop,
      onStatus: stop,
    };
  };
}
