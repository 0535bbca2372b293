import { credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { keyAuth } from "./registry-harness.js";
import { startServerProcess, type ServerProcess } from "./server-process.js";

/**
 * A registry replica process on etcd, as the etcd suites start them: no
 * probing (the instances they register are not real) and a 2 s membership
 * TTL (the minimum), so a dead replica's share moves quickly. `env` adds or
 * overrides settings.
 */
export function startEtcdReplica(endpoint: string, key: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServerProcess({
    STORE: "etcd",
    ETCD_ENDPOINTS: endpoint,
    SERVICE_REGISTRATION_KEY: key,
    HEALTH_CHECKS: "false",
    ETCD_MEMBER_TTL_S: "2",
    ...env,
  });
}

/**
 * Registers instances of `serviceType` through a replica, each at a port of
 * its own from `firstPort`, every call with the key and a deadline of
 * `deadlineMs` (less than the store's etcd call timeout, as the SDK's
 * default is). `registerAndList` resolves with the new id once the replica
 * also lists it (its watch delivered the write), and rejects when the
 * Register fails or the instance is not listed. `unregister` removes one.
 */
export function replicaWriter(port: number, key: string, serviceType: string, firstPort: number, deadlineMs = 2000) {
  const client = new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  let nextPort = firstPort;
  function unary<Req, Res>(
    method: (req: Req, md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
    request: Req,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, keyAuth(key), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }
  return {
    async registerAndList(): Promise<string> {
      const { serviceId } = await unary(client.register, { serviceType, host: "127.0.0.1", port: nextPort++, metadata: {} });
      const listed = await unary(client.getByType, { serviceType, includeUnhealthy: true, includeDraining: true, selector: {} });
      if (!listed.instances.some((i) => i.id === serviceId)) throw new Error(`${serviceId} was acknowledged but is not listed`);
      return serviceId;
    },
    async unregister(id: string): Promise<void> {
      await unary(client.unregister, { instanceId: id });
    },
    close: () => client.close(),
  };
}
