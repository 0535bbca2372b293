import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { ServerCredentials, type Server } from "@grpc/grpc-js";

/** Options of `listenWithHealth`. */
export interface HealthListenerOptions {
  /** Bind address. Default `0.0.0.0`. */
  readonly host?: string;
  /** Port; 0 (default) picks a free one. */
  readonly port?: number;
  /** Health path answered over HTTP/1.1. Default `/health` (the registry's default). */
  readonly path?: string;
  /** Whether the service is healthy now (200) or not (503). Default: always healthy. */
  readonly check?: () => boolean | Promise<boolean>;
}

/** A port serving both gRPC and the HTTP health endpoint. */
export interface HealthListener {
  readonly port: number;
  /**
   * Stops accepting, closes health connections, and ends this port's gRPC
   * connections (after `graceMs`, default 0, for calls in flight).
   */
  close(graceMs?: number): Promise<void>;
}

/** The HTTP/2 connection preface every gRPC client sends first. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves a grpc-js server and an HTTP/1.1 health endpoint on one plaintext
 * port. The registry probes `http://host:port/health` on the port an
 * instance registered, which for a gRPC service is its gRPC port: this tells
 * the two protocols apart by the first bytes of each connection (HTTP/2's
 * preface) and hands gRPC connections to the server through grpc-js's
 * connection injector.
 *
 * @example
 * const server = new Server();
 * server.addService(GreeterService, impl);
 * const { port } = await listenWithHealth(server, { port: 8080 });
 * await registerSelf({ ..., serviceType: "greeter", port });
 */
export async function listenWithHealth(server: Server, options: HealthListenerOptions = {}): Promise<HealthListener> {
  const path = options.path ?? "/health";
  const check = options.check ?? (() => true);
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const http = createHttpServer((req, res) => {
    const target = req.url ?? "/";
    const pathname = URL.canParse(target, "http://x") ? new URL(target, "http://x").pathname : undefined;
    if (req.method !== "GET" || pathname !== path) {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve()
      .then(check)
      .then(
        (ok) => ok,
        () => false,
      )
      .then((ok) => {
        res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: ok ? "ok" : "unhealthy" }));
      });
  });
  const sockets = new Set<Socket>();
  const tcp = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A peer that resets before sending a byte (a TCP health check, a port
    // scan) must not crash the service with an unhandled 'error'.
    socket.on("error", () => socket.destroy());
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const n = Math.min(chunk.length, H2_PREFACE.length);
      if (chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
        injector.injectConnection(socket);
      } else {
        http.emit("connection", socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(options.port ?? 0, options.host ?? "0.0.0.0", () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  return {
    port: (tcp.address() as AddressInfo).port,
    async close(graceMs = 0) {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      http.closeAllConnections();
      injector.drain(graceMs);
      if (graceMs > 0) await new Promise((resolve) => setTimeout(resolve, graceMs));
      injector.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
