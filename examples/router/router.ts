/**
 * Example router: HTTP in front, gRPC behind. `GET /hello?name=Ada` becomes a
 * GreeterService.SayHello call on a channel whose target is
 * `registry:///greeter`: the registry resolver feeds it the healthy greeter
 * instances, updated live, and round_robin spreads the calls over them.
 *
 *   REGISTRY_ADDRESS=127.0.0.1:4000 SERVICE_REGISTRATION_KEY=... PORT=8080 \
 *     node --import tsx examples/router/router.ts
 *   curl 'localhost:8080/hello?name=Ada'
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import {
  RegistryClient,
  registerRegistryResolver,
  ROUND_ROBIN_SERVICE_CONFIG,
  type ResolverUpdate,
} from "../../src/client/index.js";
import { greeterClient, sayHello, type GreeterClient } from "./greeter.js";

/**
 * round_robin over the healthy backends, and one retry on another backend for
 * a call that failed with UNAVAILABLE: a backend that dies mid-call (before the
 * registry's probe notices) costs a retry, not an error.
 */
const SERVICE_CONFIG = JSON.stringify({
  ...JSON.parse(ROUND_ROBIN_SERVICE_CONFIG),
  methodConfig: [
    {
      name: [{ service: "example.greeter.v1.GreeterService" }],
      retryPolicy: {
        maxAttempts: 2,
        initialBackoff: "0.01s",
        maxBackoff: "0.1s",
        backoffMultiplier: 2,
        retryableStatusCodes: ["UNAVAILABLE"],
      },
    },
  ],
});

export interface RouterOptions {
  /** Client watching the registry (with the registration key). */
  readonly registry: RegistryClient;
  readonly serviceType?: string;
  readonly host?: string;
  /** Default 0: any free port. */
  readonly port?: number;
  /** Told about every change of the backend list. */
  readonly onUpdate?: (update: ResolverUpdate) => void;
}

export interface Router {
  readonly port: number;
  /** The gRPC channel to the backends (one, for the router's whole life). */
  readonly greeter: GreeterClient;
  close(): Promise<void>;
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const serviceType = options.serviceType ?? "greeter";
  registerRegistryResolver({ client: options.registry, onUpdate: options.onUpdate });
  const greeter = greeterClient(`registry:///${serviceType}`, credentials.createInsecure(), {
    "grpc.service_config": SERVICE_CONFIG,
  });
  // Resolve and connect now rather than on the first request (grpc-js channels start idle).
  greeter.getChannel().getConnectivityState(true);
  const http: HttpServer = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://router");
    if (req.method !== "GET" || url.pathname !== "/hello") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"try GET /hello?name=you"}\n');
      return;
    }
    sayHello(greeter, url.searchParams.get("name") ?? "").then(
      (reply) => res.writeHead(200, { "content-type": "application/json" }).end(`${JSON.stringify(reply)}\n`),
      (err: ServiceError) => {
        const code = err.code === status.UNAVAILABLE ? 503 : 502;
        res.writeHead(code, { "content-type": "application/json" }).end(`${JSON.stringify({ error: err.details })}\n`);
      },
    );
  });
  await new Promise<void>((resolve) => http.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  return {
    port: (http.address() as AddressInfo).port,
    greeter,
    async close() {
      greeter.close();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

async function main(): Promise<void> {
  const env = process.env;
  const key = env.SERVICE_REGISTRATION_KEY;
  if (!key) throw new Error("set SERVICE_REGISTRATION_KEY (e.g. KEY=$(cat data/registration-key))");
  const registry = new RegistryClient({ addresses: (env.REGISTRY_ADDRESS ?? "127.0.0.1:4000").split(","), auth: { key } });
  const router = await startRouter({
    registry,
    host: env.HOST ?? "127.0.0.1",
    port: Number(env.PORT ?? 8080),
    onUpdate: (u) => console.log(JSON.stringify({ msg: "backends", ...u })),
  });
  console.log(JSON.stringify({ msg: "router serving", port: router.port }));
  const stop = (): void => {
    void router.close().then(() => {
      registry.close();
      process.exit(0);
    });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    console.error(`router: ${(err as Error).message}`);
    process.exit(1);
  });
}
