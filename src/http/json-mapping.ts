import type { RegisterRequest } from "../api/registry-api.js";
import { invalidArgument } from "../registry/registry-error.js";
import type { Instance, ServiceSummary } from "../registry/types.js";

/** An instance as the HTTP/JSON API shows it: the gRPC contract's fields, camelCase. */
export interface InstanceJson {
  readonly id: string;
  readonly serviceType: string;
  readonly host: string;
  readonly port: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly health: "HEALTHY" | "UNHEALTHY";
  readonly healthCheckPath: string;
  /** RFC 3339 timestamps, as google.protobuf.Timestamp renders in JSON. */
  readonly registeredAt: string;
  readonly updatedAt: string;
  readonly revision: number;
}

/** Domain instance to JSON (only public fields; never the token hash). */
export function instanceJson(instance: Instance): InstanceJson {
  return {
    id: instance.id,
    serviceType: instance.serviceType,
    host: instance.host,
    port: instance.port,
    metadata: { ...instance.metadata },
    health: instance.health === "healthy" ? "HEALTHY" : "UNHEALTHY",
    healthCheckPath: instance.healthCheckPath,
    registeredAt: new Date(instance.registeredAt).toISOString(),
    updatedAt: new Date(instance.updatedAt).toISOString(),
    revision: instance.revision,
  };
}

/** Service summary to JSON. */
export function serviceJson(summary: ServiceSummary): { serviceType: string; healthyCount: number; totalCount: number } {
  return { serviceType: summary.serviceType, healthyCount: summary.healthyCount, totalCount: summary.totalCount };
}

/**
 * Decodes `POST /service`'s body: `{"serviceType", "port", "host"?,
 * "metadata"?, "healthCheck"?}`. Only JSON types are checked here; the values
 * are validated by the core exactly as for gRPC. `healthCheck` is
 * `{"path": "/ready"}` (the contract's shape) or just the path. Unknown
 * fields are ignored.
 */
export function registerRequestFromJson(body: unknown): RegisterRequest {
  if (!isObject(body)) throw invalidArgument("body", "must be a JSON object");
  const { serviceType, port, host, metadata, healthCheck } = body;
  if (typeof serviceType !== "string") throw invalidArgument("serviceType", "must be a string");
  if (typeof port !== "number") throw invalidArgument("port", "must be a number");
  if (host !== undefined && host !== null && typeof host !== "string") throw invalidArgument("host", "must be a string");
  if (metadata !== undefined && metadata !== null && !isObject(metadata)) {
    throw invalidArgument("metadata", "must be an object of strings");
  }
  let healthCheckPath: string | undefined;
  if (typeof healthCheck === "string") healthCheckPath = healthCheck;
  else if (isObject(healthCheck)) {
    if (healthCheck.path !== undefined && typeof healthCheck.path !== "string") {
      throw invalidArgument("healthCheck.path", "must be a string");
    }
    healthCheckPath = healthCheck.path;
  } else if (healthCheck !== undefined && healthCheck !== null) {
    throw invalidArgument("healthCheck", 'must be {"path": "/..."} or a path');
  }
  return {
    serviceType,
    port,
    host: host ?? undefined,
    metadata: (metadata ?? undefined) as Record<string, string> | undefined,
    healthCheckPath,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
