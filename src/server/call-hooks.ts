import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  type status,
} from "@grpc/grpc-js";

/** What one server feature does at the points of a call's life; every hook is optional. */
export interface CallHooks {
  /** The call started (its metadata is in). */
  onStart?(): void;
  /** The client has sent its whole request. */
  onHalfClose?(): void;
  /**
   * The call is over: the client cancelled it, its connection went, or its
   * status has been handed to node:http2 (grpc-js tells every layer so after
   * any status, including those it sends itself: a message over the size
   * limit, its own deadline), which `onStatus` never sees.
   */
  onCancel?(): void;
  /** The server is sending the call's status. */
  onStatus?(code: status): void;
}

/**
 * Makes one call's hooks. `next` is the call below (grpc-js's, reaching its
 * HTTP/2 stream); `call` is the layer the hooks may end the call through
 * (`call.sendStatus`), whose status the other hooks then see too.
 */
export type CallHooksFactory = (
  method: ServerMethodDefinition<unknown, unknown>,
  next: ServerInterceptingCallInterface,
  call: ServerInterceptingCall,
) => CallHooks;

/**
 * One grpc-js server interceptor running the hooks of several features
 * (request read timeout, RPC metrics). grpc-js wraps every call once per
 * interceptor and passes every message through each wrapper: a watch stream
 * writes each event through all of them, once per stream. Features that only
 * follow a call's life share this one wrapper instead of adding one each.
 *
 * @example
 * new Server({ interceptors: [callHooksInterceptor([requestReadTimeoutHooks(10_000), rpcMetricsHooks(metrics)])] });
 */
export function callHooksInterceptor(factories: readonly CallHooksFactory[]): ServerInterceptor {
  return (method, next) => {
    const hooks: CallHooks[] = [];
    const call: ServerInterceptingCall = new ServerInterceptingCall(next, {
      start: (go) => {
        for (const h of hooks) h.onStart?.();
        go({
          onReceiveHalfClose: (halfCloseNext) => {
            for (const h of hooks) h.onHalfClose?.();
            halfCloseNext();
          },
          onCancel: () => {
            for (const h of hooks) h.onCancel?.();
          },
        });
      },
      sendStatus: (sent, go) => {
        for (const h of hooks) h.onStatus?.(sent.code);
        go(sent);
      },
    });
    for (const make of factories) hooks.push(make(method, next, call));
    return call;
  };
}
