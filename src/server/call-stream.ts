import type { ServerHttp2Stream } from "node:http2";

/**
 * The node:http2 stream under a grpc-js server call, or undefined if this
 * grpc-js keeps it elsewhere.
 *
 * grpc-js offers no public way to reset one call's stream: a status is sent
 * as trailers, which queue behind the DATA a peer's full flow-control window
 * holds back, so a client that stopped reading never gets it and the stream's
 * buffers stay. Resetting the stream (RST_STREAM) is the only way to end it
 * on the wire. In grpc-js 1.14 the call object (`ServerWritableStreamImpl`)
 * holds the interceptor chain in `call`, each interceptor holds the next in
 * `nextCall`, and the innermost `BaseServerInterceptingCall` holds `stream`
 * (server-call.ts, server-interceptors.ts). A test
 * (test/watch/stalled-stream-reset.test.ts) catches a grpc-js that moves it.
 */
export function http2StreamOf(call: object): ServerHttp2Stream | undefined {
  return http2StreamBelow((call as { call?: unknown }).call);
}

/** The node:http2 stream at the end of an interceptor chain (`next` as a server interceptor gets it), if found. */
export function http2StreamBelow(interceptingCall: unknown): ServerHttp2Stream | undefined {
  let link: unknown = interceptingCall;
  // The chain is as long as the interceptor list; the bound only guards against a cycle.
  for (let hops = 0; hops < 32 && typeof link === "object" && link !== null; hops++) {
    const stream = (link as { stream?: unknown }).stream;
    if (isServerHttp2Stream(stream)) return stream;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

function isServerHttp2Stream(value: unknown): value is ServerHttp2Stream {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Partial<ServerHttp2Stream>;
  return typeof s.close === "function" && typeof s.respond === "function" && typeof s.sendTrailers === "function";
}
