import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { ServerCredentials, type Server } from "@grpc/grpc-js";
import type { SelfRegistration } from "./register-self.js";
import { ServingHealth } from "./serving-health.js";

/** Options of `listenWithHealth`. */
export interface HealthListenerOptions {
  /** Bind address. Default `0.0.0.0`. */
  readonly host?: string;
  /** Port; 0 (default) picks a free one. */
  readonly port?: number;
  /** Health path answered over HTTP/1.1. Default `/health` (the registry's default). */
  readonly path?: string;
  /** Whether the service is healthy now (200 / SERVING) or not (503 / NOT_SERVING). Default: always healthy. */
  readonly check?: () => boolean | Promise<boolean>;
  /**
   * Also serve grpc.health.v1 on the gRPC server (default true), for the
   * registry's `grpc` checks and for clients with health checking: SERVING
   * while `check` says healthy, NOT_SERVING once the listener drains or
   * closes. A server that already serves grpc.health.v1 keeps its own.
   */
  readonly grpcHealth?: boolean;
  /** Service names grpc.health.v1 knows besides the overall "" (e.g. `"greeter.v1.Greeter"`); others are NOT_FOUND. */
  readonly grpcHealthServices?: readonly string[];
}

/** A port serving both gRPC and the HTTP health endpoint. */
export interface HealthListener {
  readonly port: number;
  /**
   * Marks the port draining while it still serves calls: grpc.health.v1
   * answers NOT_SERVING from now on (Watch streams are told), so clients
   * that check health move away. HTTP /health still follows `check`.
   * `close()` and `drainOnSignal` do it too. Idempotent.
   */
  drain(): void;
  /**
   * Stops accepting, closes health connections, and ends this port's gRPC
   * connections: each is told to take no new calls (HTTP/2 GOAWAY) and is
   * closed once its calls in flight have finished, or after `graceMs`
   * (default 0) at the latest.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * Graceful stop on a signal (default SIGTERM): marks `registration`
   * draining (routers stop picking this instance), lets calls in flight
   * finish for at most `graceMs` (default 10000) while taking no new ones,
   * unregisters, and closes this listener; then, if nothing else listens for
   * the signal, raises it again so the process ends as it would have.
   * Use it instead of registerSelf's `unregisterOnSignal`.
   */
  drainOnSignal(registration: SelfRegistration, options?: { readonly graceMs?: number; readonly signals?: readonly NodeJS.Signals[] }): void;
}

/** The HTTP/2 connection preface every gRPC client sends first. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves a grpc-js server and an HTTP/1.1 health endpoint on one plaintext
 * port, and adds grpc.health.v1 to the server (see `grpcHealth`), so the
 * registry can check the instance either way (`http` or `grpc` checks).
 * The registry probes `http://host:port/health` on the port an
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
  const grpcHealth = new ServingHealth(check, options.grpcHealthServices);
  if (options.grpcHealth !== false) grpcHealth.addToServer(server);
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
  /**
   * Health-check connections: closed at `close()` by hand, since an HTTP
   * server that never listened itself tracks no connections for
   * `closeAllConnections()` to close.
   */
  const httpSockets = new Set<Socket>();
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
        httpSockets.add(socket);
        socket.once("close", () => httpSockets.delete(socket));
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
  let closing: Promise<void> | undefined;
  const close = async (graceMs: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    for (const socket of httpSockets) socket.destroy();
    // Watch streams would hold their connections open for the whole grace.
    grpcHealth.close();
    injector.drain(graceMs);
    if (graceMs > 0) await allClosed(sockets, graceMs);
    injector.destroy();
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  const listener: HealthListener = {
    port: (tcp.address() as AddressInfo).port,
    drain() {
      grpcHealth.drain();
    },
    close(graceMs = 0) {
      closing ??= close(graceMs);
      return closing;
    },
    drainOnSignal(registration, options = {}) {
      const graceMs = options.graceMs ?? 10_000;
      for (const signal of options.signals ?? ["SIGTERM"]) {
        process.once(signal, () => {
          void (async () => {
            listener.drain();
            await registration.drain();
            const inFlight = listener.close(graceMs);
            await registration.close({ graceMs, inFlight });
            await inFlight;
            // Nobody else handles it: behave as if we had not been listening.
            if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
          })();
        });
      }
    },
  };
  return listener;
}

/** Resolves once every socket has closed (their calls finished after GOAWAY), or after `ms`. */
async function allClosed(sockets: Set<Socket>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (sockets.size > 0 && Date.now() < deadline) {
    const next = sockets.values().next().value as Socket;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, deadline - Date.now());
      next.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
