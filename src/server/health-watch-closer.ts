import { ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";

/** The grpc.health.v1 streaming method. */
const HEALTH_WATCH_PATH = "/grpc.health.v1.Health/Watch";

/**
 * Lets shutdown end open `grpc.health.v1.Health/Watch` streams.
 *
 * grpc-health-check keeps a Watch open for as long as the client wants, and
 * every grpc-js client with health checking enabled holds one; a graceful
 * shutdown would then always wait its whole grace period for them. Shutdown
 * first reports NOT_SERVING (the health service writes it to every watcher),
 * then ends these streams with UNAVAILABLE, like watch streams.
 */
export class HealthWatchCloser {
  private readonly open = new Set<ServerInterceptingCall>();

  /** Add to the server's interceptors. */
  readonly interceptor: ServerInterceptor = (method, next) => {
    if (method.path !== HEALTH_WATCH_PATH) return new ServerInterceptingCall(next);
    const call: ServerInterceptingCall = new ServerInterceptingCall(next, {
      start: (go) => go({ onCancel: () => this.open.delete(call) }),
      sendStatus: (s, go) => {
        this.open.delete(call);
        go(s);
      },
    });
    this.open.add(call);
    return call;
  };

  /** Ends every open Watch; messages already written (NOT_SERVING) go out first. */
  endAll(): void {
    for (const call of [...this.open]) {
      call.sendStatus({ code: status.UNAVAILABLE, details: "server is shutting down" });
    }
  }
}
