import { status, type Server, type ServerWritableStream, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";

type WatchHandler = (call: ServerWritableStream<unknown, unknown>) => void;

/**
 * Lets shutdown end open `grpc.health.v1.Health/Watch` streams.
 *
 * grpc-health-check keeps a Watch open for as long as the client wants, and
 * every grpc-js client with health checking enabled holds one; a graceful
 * shutdown would then always wait its whole grace period for them. Shutdown
 * first reports NOT_SERVING (the health service writes it to every watcher),
 * then ends these streams with UNAVAILABLE, like watch streams.
 *
 * The Watch handler itself is wrapped, rather than every call intercepted: a
 * server interceptor adds a layer of call objects to every RPC, Register and
 * GetByType included.
 */
export class HealthWatchCloser {
  private readonly open = new Set<ServerWritableStream<unknown, unknown>>();

  /** Adds `health` to `server` (as `health.addToServer(server)` does), tracking its Watch streams. */
  addToServer(health: HealthImplementation, server: Server): void {
    const tracking = {
      addService: (service: Parameters<Server["addService"]>[0], impl: UntypedServiceImplementation) => {
        const watch = impl.watch as WatchHandler;
        server.addService(service, { ...impl, watch: (call: ServerWritableStream<unknown, unknown>) => this.watch(call, watch) });
      },
    };
    health.addToServer(tracking as unknown as Server);
  }

  /** Ends every open Watch; messages already written (NOT_SERVING) go out first. */
  endAll(): void {
    for (const call of [...this.open]) {
      this.open.delete(call);
      // grpc-js ends a server stream's writes, then sends this status.
      call.emit("error", { code: status.UNAVAILABLE, details: "server is shutting down" });
    }
  }

  private watch(call: ServerWritableStream<unknown, unknown>, handler: WatchHandler): void {
    this.open.add(call);
    call.on("cancelled", () => this.open.delete(call));
    handler(call);
  }
}
