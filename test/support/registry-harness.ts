import { credentials, Metadata, type CallOptions, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import pino, { type Logger } from "pino";
import {
  EventType,
  RegistryServiceClient,
  type WatchInstancesRequest,
  type WatchInstancesResponse,
} from "../../gen/registry/v1/registry.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import type { ServiceRegistryOptions } from "../../src/registry/registry-options.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { RegistryGrpcServer, type RegistryGrpcServerOptions } from "../../src/server/grpc-server.js";
import { StreamCursor } from "./stream-cursor.js";

export const TEST_KEY = "test-registration-key-0123456789";

/** A real registry behind a real gRPC server on a loopback ephemeral port. */
export interface Harness {
  readonly port: number;
  readonly address: string;
  readonly registry: ServiceRegistry;
  readonly server: RegistryGrpcServer;
  readonly client: RegistryServiceClient;
  /** A second, independent client connection. */
  newClient(): RegistryServiceClient;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly registry?: ServiceRegistryOptions;
  readonly server?: Partial<Omit<RegistryGrpcServerOptions, "registry" | "keys" | "logger">>;
  readonly keys?: string[];
  /** Silent by default; pass one to read what the registry logs. */
  readonly logger?: Logger;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const logger = options.logger ?? pino({ level: "silent" });
  const registry = new ServiceRegistry({ healthChecks: false, logger, ...options.registry });
  await registry.start();
  const server = new RegistryGrpcServer({
    registry,
    keys: new RegistrationKeys(options.keys ?? [TEST_KEY]),
    logger,
    shutdownGraceMs: 1000,
    ...options.server,
  });
  const port = await server.listen("127.0.0.1", 0);
  const address = `127.0.0.1:${port}`;
  const clients: RegistryServiceClient[] = [];
  const newClient = (): RegistryServiceClient => {
    const c = new RegistryServiceClient(address, credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const client = newClient();
  return {
    port,
    address,
    registry,
    server,
    client,
    newClient,
    async close() {
      for (const c of clients) c.close();
      await server.shutdown();
      await registry.close();
    },
  };
}

/** Metadata carrying the registration key. */
export function keyAuth(key = TEST_KEY): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  return md;
}

/** Metadata carrying instance credentials. */
export function instanceAuth(id: string, token: string): Metadata {
  const md = new Metadata();
  md.set("x-service-id", id);
  md.set("x-service-token", token);
  return md;
}

/** A generated client's unary method; TS infers from its last overload (with options). */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls a unary method of a generated client and resolves with its response. */
export function call<Req, Res>(client: RegistryServiceClient, method: UnaryMethod<Req, Res>, request: Req, metadata = keyAuth()): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, metadata, {}, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Calls a unary method expecting failure; resolves with the error. */
export async function callError<Req, Res>(
  client: RegistryServiceClient,
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
): Promise<ServiceError> {
  try {
    await call(client, method, request, metadata);
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Registers an instance with the key; returns id, token and instance. */
export async function register(h: Harness, serviceType: string, port: number, extra: Record<string, unknown> = {}) {
  const res = await call(h.client, h.client.register, { serviceType, port, host: "127.0.0.1", metadata: {}, ...extra });
  return { id: res.serviceId, token: res.token, instance: res.instance! };
}

/** A watch stream read through an async cursor (see StreamCursor). */
export class WatchCursor extends StreamCursor<WatchInstancesResponse> {
  constructor(stream: ClientReadableStream<WatchInstancesResponse>) {
    super(stream, "watch stream");
  }

  static open(client: RegistryServiceClient, request: Partial<WatchInstancesRequest>, metadata = keyAuth()): WatchCursor {
    const full: WatchInstancesRequest = { serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {}, ...request };
    return new WatchCursor(client.watchInstances(full, metadata));
  }

  /** The next `n` events that are not BOOKMARKs (idle keep-alives), each within `timeoutMs`. */
  async changes(n: number, timeoutMs = 10_000): Promise<WatchInstancesResponse[]> {
    const out: WatchInstancesResponse[] = [];
    while (out.length < n) {
      const m = await this.next(timeoutMs);
      if (m.type !== EventType.EVENT_TYPE_BOOKMARK) out.push(m);
    }
    return out;
  }
}
