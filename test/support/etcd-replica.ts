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
