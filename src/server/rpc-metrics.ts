import { performance } from "node:perf_hooks";
import { ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { RpcLabels } from "../observability/registry-metrics.js";

/** Where RPC counts and latencies go (RegistryMetrics implements it). */
export interface RpcObserver {
  onRpcStarted(labels: RpcLabels): void;
  onRpcHandled(labels: RpcLabels, code: string, seconds: number): void;
}

/**
 * A grpc-js server interceptor that counts every call by method and status
 * code and times it from start to status. grpc-js runs interceptors only for
 * registered methods, so the method label is bounded by the services served.
 * A call the client cancels is recorded once, as `Canceled`.
 */
export function rpcMetricsInterceptor(observer: RpcObserver): ServerInterceptor {
  return (method, next) => {
    const [service = "", name = ""] = method.path.slice(1).split("/");
    const labels: RpcLabels = {
      grpc_type: method.requestStream
        ? method.responseStream ? "bidi_stream" : "client_stream"
        : method.responseStream ? "server_stream" : "unary",
      grpc_service: service,
      grpc_method: name,
    };
    const started = performance.now();
    let done = false;
    const finish = (code: status): void => {
      if (done) return;
      done = true;
      observer.onRpcHandled(labels, codeName(code), (performance.now() - started) / 1000);
    };
    observer.onRpcStarted(labels);
    return new ServerInterceptingCall(next, {
      start: (go) => go({ onCancel: () => finish(status.CANCELLED) }),
      sendStatus: (s, go) => {
        finish(s.code);
        go(s);
      },
    });
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
