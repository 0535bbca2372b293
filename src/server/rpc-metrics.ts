import type { ServerHttp2Stream } from "node:http2";
import { performance } from "node:perf_hooks";
import { status } from "@grpc/grpc-js";
import type { CallHooksFactory } from "./call-hooks.js";
import { http2StreamBelow } from "./call-stream.js";
import type { RpcLabels } from "../observability/registry-metrics.js";

/** The call counters of one method: plain numbers, counted on the call path. */
export interface RpcMethodCounter {
  onStarted(): void;
  /** `code` as go-grpc-prometheus spells it ("OK", "NotFound"). */
  onHandled(code: string, seconds: number): void;
}

/** Where RPC counts and latencies go (RegistryMetrics implements it). */
export interface RpcObserver {
  /** The counters of the method with `labels`; asked once per method, then kept. */
  rpcMethod(labels: RpcLabels): RpcMethodCounter;
}

/**
 * Call hooks (see call-hooks.ts) that count every call by method and status
 * code and time it from start to status. grpc-js runs interceptors only for
 * registered methods, so the method label is bounded by the services served.
 * A call the client cancels is recorded once, as `Canceled`; one grpc-js
 * answers itself, with the code it sent. Each method's
 * counters are looked up once and kept, so a call costs no label handling.
 */
export function rpcMetricsHooks(observer: RpcObserver): CallHooksFactory {
  const counters = new Map<string, RpcMethodCounter>();
  const codeNames: string[] = [];
  const nameOf = (code: status): string => (codeNames[code] ??= codeName(code));
  return (method, next) => {
    let counter = counters.get(method.path);
    if (counter === undefined) {
      const [service = "", name = ""] = method.path.slice(1).split("/");
      counter = observer.rpcMethod({
        grpc_type: method.requestStream
          ? method.responseStream ? "bidi_stream" : "client_stream"
          : method.responseStream ? "server_stream" : "unary",
        grpc_service: service,
        grpc_method: name,
      });
      counters.set(method.path, counter);
    }
    const calls = counter;
    const started = performance.now();
    let done = false;
    const finish = (code: status): void => {
      if (done) return;
      done = true;
      calls.onHandled(nameOf(code), (performance.now() - started) / 1000);
    };
    calls.onStarted();
    // A call ended without a status of ours: cancelled by its client, or answered by grpc-js itself
    // (a message over the size limit, its own deadline), whose status the stream still holds.
    return {
      onCancel: () => {
        if (!done) finish(statusSentOn(http2StreamBelow(next)) ?? status.CANCELLED);
      },
      onStatus: finish,
    };
  };
}

/** `status.NOT_FOUND` -> "NotFound", as Go's codes.Code.String() spells it (go-grpc-prometheus). */
export function codeName(code: status): string {
  const name = status[code] as string | undefined;
  if (name === undefined) return "Unknown";
  if (name === "OK") return "OK";
  if (name === "CANCELLED") return "Canceled";
  return name.toLowerCase().replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The grpc-status node:http2 sent (or was handed) on `stream`, in its trailers or a trailers-only response. */
function statusSentOn(stream: ServerHttp2Stream | undefined): status | undefined {
  const sent = stream?.sentTrailers?.["grpc-status"] ?? stream?.sentHeaders?.["grpc-status"];
  return sent === undefined ? undefined : (Number(sent) as status);
}
