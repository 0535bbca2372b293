import { randomBytes, randomUUID } from "node:crypto";
import * as pb from "../../gen/registry/v1/registry.js";

/** The registration key every bench registry accepts (bench-only, never a real secret). */
export const BENCH_KEY = "bench-registration-key-0123456789abcdef";

/** Metadata every bench registration carries: two short entries, as a typical service sends. */
export const BENCH_METADATA: Readonly<Record<string, string>> = { zone: "eu-west-1a", version: "1.42.0" };

/** The Register request the load sends; `seq` travels in metadata so watchers can tell events apart. */
export function registerRequest(serviceType: string, seq: number): pb.RegisterRequest {
  return {
    serviceType,
    port: 1 + (seq % 65_535),
    host: `10.${(seq >> 16) & 255}.${(seq >> 8) & 255}.${seq & 255}`,
    metadata: { ...BENCH_METADATA, seq: String(seq) },
  };
}

/** An instance shaped like the registry's answer to `registerRequest` (for the ceilings' canned answers). */
export function instanceFor(request: pb.RegisterRequest, revision: number): pb.Instance {
  const now = new Date();
  return {
    id: randomUUID(),
    serviceType: request.serviceType,
    host: request.host ?? "127.0.0.1",
    port: request.port,
    metadata: request.metadata,
    health: pb.HealthStatus.HEALTH_STATUS_HEALTHY,
    draining: false,
    healthCheckKind: pb.HealthCheckKind.HEALTH_CHECK_KIND_HTTP,
    registeredAt: now,
    updatedAt: now,
    revision,
    healthCheckPath: "/health",
  };
}

/** A Register answer of the same size as the registry's (id, 43-character token, instance). */
export function registerResponseFor(request: pb.RegisterRequest, revision: number): pb.RegisterResponse {
  const instance = instanceFor(request, revision);
  return { serviceId: instance.id, token: randomBytes(32).toString("base64url"), instance };
}

/** What an etcd-based registry would store for one instance: the same fields, as JSON. */
export function etcdValue(request: pb.RegisterRequest, id: string): string {
  const now = Date.now();
  return JSON.stringify({
    id,
    serviceType: request.serviceType,
    host: request.host,
    port: request.port,
    metadata: request.metadata,
    healthCheckPath: "/health",
    registeredAt: now,
    updatedAt: now,
  });
}

/** Service type names for the GetByType scenario: `t-0000` ... */
export function typeName(i: number): string {
  return `t-${String(i).padStart(4, "0")}`;
}
