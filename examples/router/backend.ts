/**
 * Example backend: a GreeterService that names itself, serving gRPC and the
 * registry's HTTP health check on one port, kept registered with
 * `registerSelf`. Run it (several times, with different NAMEs):
 *
 *   REGISTRY_ADDRESS=127.0.0.1:4000 SERVICE_REGISTRATION_KEY=... NAME=b1 \
 *     node --import tsx examples/router/backend.ts
 */
import { pathToFileURL } from "node:url";
import { Server, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { listenWithHealth, registerSelf, type BackoffOptions, type SelfRegistration } from "../../src/client/index.js";
import { greeterService, type SayHelloRequest, type SayHelloResponse } from "./greeter.js";

export interface BackendOptions {
  /** Shown in every answer, so you can see who answered. */
  readonly name: string;
  /** Registry address(es). */
  readonly registry: readonly string[];
  readonly key: string;
  readonly serviceType?: string;
  /** Metadata to register besides `name`, e.g. `{ zone: "eu-1" }` for routers that select by zone. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Address the registry and routers reach this backend at. Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port. */
  readonly port?: number;
  readonly checkIntervalMs?: number;
  readonly backoff?: BackoffOptions;
  readonly unregisterOnSignal?: boolean | readonly NodeJS.Signals[];
  /**
   * On these signals: drain (routers stop sending new calls), let calls in
   * flight finish for at most `graceMs`, unregister, exit (see
   * `HealthListener.drainOnSignal`). Instead of `unregisterOnSignal`.
   */
  readonly drainOnSignal?: { readonly graceMs: number; readonly signals?: readonly NodeJS.Signals[] };
}

export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly registration: SelfRegistration;
  /** Calls answered so far. */
  readonly calls: () => number;
  /** Makes /health answer 503 (false) or 200 (true), e.g. while draining. */
  setHealthy(healthy: boolean): void;
  /** Graceful stop: unregister, then stop serving. */
  stop(): Promise<void>;
  /** Stops serving at once without unregistering, as a crash would (the registry's probe notices). */
  kill(): Promise<void>;
}

export async function startBackend(options: BackendOptions): Promise<Backend> {
  let calls = 0;
  let healthy = true;
  const server = new Server();
  server.addService(greeterService, {
    sayHello(call: ServerUnaryCall<SayHelloRequest, SayHelloResponse>, callback: sendUnaryData<SayHelloResponse>) {
      calls++;
      const answer = (): void => callback(null, { message: `Hello, ${call.request.name || "world"}!`, backend: options.name });
      if (call.request.delayMs) setTimeout(answer, call.request.delayMs);
      else answer();
    },
  });
  const host = options.host ?? "127.0.0.1";
  const listener = await listenWithHealth(server, { host, port: options.port ?? 0, check: () => healthy });
  let registration: SelfRegistration;
  try {
    registration = await registerSelf({
      connection: { addresses: options.registry },
      key: options.key,
      serviceType: options.serviceType ?? "greeter",
      host,
      port: listener.port,
      metadata: { ...options.metadata, name: options.name },
      // Probed over HTTP rather than a session: /health follows setHealthy(), and kill() (a stop
      // without unregistering) must be noticed by the registry while this process lives on.
      healthCheck: { kind: "http" },
      checkIntervalMs: options.checkIntervalMs,
      backoff: options.backoff,
      unregisterOnSignal: options.unregisterOnSignal,
    });
  } catch (err) {
    await listener.close();
    server.forceShutdown();
    throw err;
  }
  if (options.drainOnSignal) listener.drainOnSignal(registration, options.drainOnSignal);
  return {
    name: options.name,
    port: listener.port,
    registration,
    calls: () => calls,
    setHealthy(ok) {
      healthy = ok;
    },
    async stop() {
      await registration.close();
      await listener.close(500);
      server.forceShutdown();
    },
    async kill() {
      await listener.close();
      server.forceShutdown();
    },
  };
}

async function main(): Promise<void> {
  const env = process.env;
  const key = env.SERVICE_REGISTRATION_KEY;
  if (!key) throw new Error("set SERVICE_REGISTRATION_KEY (e.g. KEY=$(cat data/registration-key))");
  const backend = await startBackend({
    name: env.NAME ?? `backend-${process.pid}`,
    registry: (env.REGISTRY_ADDRESS ?? "127.0.0.1:4000").split(","),
    key,
    host: env.HOST,
    port: Number(env.PORT ?? 0),
    // On SIGTERM or Ctrl-C: drain, let calls in flight finish (GRACE_MS, default 10 s),
    // unregister, then let the signal end the process as usual.
    drainOnSignal: { graceMs: Number(env.GRACE_MS ?? 10_000), signals: ["SIGTERM", "SIGINT"] },
  });
  backend.registration.on("registered", (i) => console.log(JSON.stringify({ msg: "registered", id: i.id })));
  backend.registration.on("lost", (e) => console.log(JSON.stringify({ msg: "registry lost us; registering again", why: e.message })));
  backend.registration.on("replaced", (by) => console.log(JSON.stringify({ msg: "another process registered this address; stopped", by: by.id })));
  console.log(JSON.stringify({ msg: "backend serving", name: backend.name, port: backend.port, id: backend.registration.id }));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    console.error(`backend: ${(err as Error).message}`);
    process.exit(1);
  });
}
