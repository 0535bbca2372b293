import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type ServiceError, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { RegistryServiceService, type RegistryServiceClient } from "../../gen/registry/v1/registry.js";

/**
 * A registry that holds no sessions: a grpc-js server on a loopback
 * ephemeral port implementing RegistryService's unary RPCs by forwarding
 * them (request and metadata as received) to a real registry, and nothing
 * else, so KeepAlive is answered UNIMPLEMENTED as by a registry from before
 * sessions. `calls` counts the forwarded calls by method name.
 */
export interface SessionlessRegistry {
  readonly address: string;
  readonly calls: Map<string, number>;
  /** Told after every forwarded call. */
  onCall?: (method: string) => void;
  close(): void;
}

type Forward = (request: unknown, metadata: unknown, callback: (err: ServiceError | null, res: unknown) => void) => void;

/** Starts a sessionless registry in front of `upstream` (a client of a real registry). */
export async function startSessionlessRegistry(upstream: RegistryServiceClient): Promise<SessionlessRegistry> {
  const server = new Server();
  const calls = new Map<string, number>();
  const implementation: UntypedServiceImplementation = {};
  const registry: SessionlessRegistry = {
    address: "",
    calls,
    close: () => server.forceShutdown(),
  };
  for (const [name, method] of Object.entries(RegistryServiceService)) {
    if (method.requestStream || method.responseStream) continue;
    // The generated client has one method per RPC, under the same name as the service definition's key.
    const forward = (upstream as unknown as Record<string, Forward>)[name] as Forward;
    implementation[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      forward.call(upstream, call.request, call.metadata, (err, res) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        if (err) callback(err);
        else callback(null, res);
        registry.onCall?.(name);
      });
    };
  }
  server.addService(RegistryServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return Object.assign(registry, { address: `127.0.0.1:${port}` });
}
