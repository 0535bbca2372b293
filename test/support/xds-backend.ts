import {
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  status,
  type Client,
  type ServiceError,
} from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { HealthCheckKind, type RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, keyAuth } from "./registry-harness.js";

/** A one-method service whose answer is the name of the backend that served it (raw bytes, no proto). */
const WHO_SERVICE = {
  who: {
    path: "/test.Who/Who",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
} as const;

/** A real grpc-js backend on 127.0.0.1: answers Who with its name and serves grpc.health.v1 (its status settable). */
export interface WhoBackend {
  readonly name: string;
  readonly port: number;
  /** Calls it has served. */
  readonly served: number;
  /** grpc.health.v1 answer for "" (what the registry's grpc check reads). */
  setServing(serving: boolean): void;
  close(): Promise<void>;
}

export async function startWhoBackend(name: string): Promise<WhoBackend> {
  const server = new Server();
  let served = 0;
  server.addService(WHO_SERVICE, {
    who: (_call: unknown, callback: (err: null, value: Buffer) => void) => {
      served++;
      callback(null, Buffer.from(name));
    },
  });
  const health = new HealthImplementation({ "": "SERVING" });
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name,
    port,
    get served() {
      return served;
    },
    setServing: (serving) => health.setStatus("", serving ? "SERVING" : "NOT_SERVING"),
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}

type WhoClient = Client & { who(req: Buffer, options: { deadline: number }, cb: (err: ServiceError | null, res?: Buffer) => void): void };
const WhoClientCtor = makeGenericClientConstructor(WHO_SERVICE, "test.Who") as unknown as new (
  target: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: Record<string, unknown>,
) => WhoClient;

/** The grpc-js-xds channel option that gives one channel its own bootstrap (so a test can talk to several registries). */
export const XDS_BOOTSTRAP_OPTION = "grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config";

/** A bootstrap for a proxyless client of the registry at `address`, with the registry key in the node metadata. */
export function xdsBootstrap(address: string, nodeMetadata: Record<string, string>, nodeId = "test-client"): Record<string, unknown> {
  return {
    xds_servers: [{ server_uri: address, channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] }],
    // grpc-js-xds refuses a node without a locality (other languages do not ask for one).
    node: { id: nodeId, locality: {}, metadata: nodeMetadata },
  };
}

/** A Who client on `target` (`xds:///type`, or an address). */
export function whoClient(target: string, options: Record<string, unknown> = {}): {
  /** The name of the backend that answered, or the error's status code. */
  call(timeoutMs?: number): Promise<string | status>;
  close(): void;
} {
  const client = new WhoClientCtor(target, credentials.createInsecure(), options);
  return {
    call: (timeoutMs = 2000) =>
      new Promise((resolve) =>
        client.who(Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err, res) => resolve(err ? err.code : (res as Buffer).toString())),
      ),
    close: () => client.close(),
  };
}

/** Registers `backend` as an instance of `serviceType` that the registry checks over grpc.health.v1; answers its id. */
export async function registerWho(client: RegistryServiceClient, serviceType: string, backend: WhoBackend, metadata = keyAuth()): Promise<string> {
  const answer = await call(
    client,
    client.register,
    {
      serviceType,
      host: "127.0.0.1",
      port: backend.port,
      metadata: {},
      healthCheck: { path: "", kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, grpcService: "", ttlMs: 0, timeoutMs: 0, tls: false },
    },
    metadata,
  );
  return answer.serviceId;
}
