import type { RegisterRequest } from "../api/registry-api.js";
import { invalidArgument } from "../registry/registry-error.js";
import { HttpError } from "./http-errors.js";
import { healthCheckOf, type Health, type HealthCheckKind, type Instance, type ServiceSummary } from "../registry/types.js";
import type { HealthCheckInput } from "../registry/validation.js";

/** Health as the HTTP/JSON API and the CLI spell it (see the README's "Health spelling"). */
export type HealthJson = "HEALTHY" | "UNHEALTHY";

/**
 * The core's `healthy`/`unhealthy` as the HTTP/JSON API and the CLI show it:
 * the proto enum's value name without its `HEALTH_STATUS_` prefix.
 */
export function healthJson(health: Health): HealthJson {
  return health === "healthy" ? "HEALTHY" : "UNHEALTHY";
}

/** An instance as the HTTP/JSON API shows it: the gRPC contract's fields, camelCase. */
export interface InstanceJson {
  readonly id: string;
  readonly serviceType: string;
  readonly host: string;
  readonly port: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly health: HealthJson;
  readonly healthCheckPath: string;
  /** The proto's HealthCheckKind without its prefix: HTTP, GRPC, TCP, TTL or SESSION. */
  readonly healthCheckKind: string;
  /** RFC 3339 timestamps, as google.protobuf.Timestamp renders in JSON. */
  readonly registeredAt: string;
  readonly updatedAt: string;
  readonly revision: number;
  readonly draining: boolean;
  /** Set only while draining. */
  readonly drainingSince?: string;
}

/** Domain instance to JSON (only public fields; never the token hash). */
export function instanceJson(instance: Instance): InstanceJson {
  return {
    id: instance.id,
    serviceType: instance.serviceType,
    host: instance.host,
    port: instance.port,
    metadata: { ...instance.metadata },
    health: healthJson(instance.health),
    healthCheckPath: instance.healthCheckPath,
    healthCheckKind: healthCheckOf(instance).kind.toUpperCase(),
    registeredAt: new Date(instance.registeredAt).toISOString(),
    updatedAt: new Date(instance.updatedAt).toISOString(),
    revision: instance.revision,
    draining: instance.draining,
    ...(instance.draining ? { drainingSince: new Date(instance.drainingSince).toISOString() } : {}),
  };
}

/** Service summary to JSON. */
export function serviceJson(summary: ServiceSummary): ServiceSummary {
  const { serviceType, healthyCount, totalCount, drainingCount, panic } = summary;
  return { serviceType, healthyCount, totalCount, drainingCount, panic };
}

/** Snake_case spellings (the proto's field names) that the JSON API spells in camelCase, at the body's top level. */
const CAMEL_CASE: Readonly<Record<string, string>> = {
  service_type: "serviceType",
  health_check: "healthCheck",
};

/** The same, inside `healthCheck`. */
const CHECK_CAMEL_CASE: Readonly<Record<string, string>> = {
  grpc_service: "grpcService",
  ttl_ms: "ttlMs",
  timeout_ms: "timeoutMs",
};

/**
 * Refuses a snake_case field name with the camelCase one it means (a field
 * ignored would register something other than what was asked for). An
 * HttpError, not the core's field error, so the edge does not rename the
 * field it names.
 */
function refuseSnakeCase(json: Record<string, unknown>, names: Readonly<Record<string, string>>, prefix = ""): void {
  for (const [snake, camel] of Object.entries(names)) {
    if (Object.hasOwn(json, snake)) {
      throw new HttpError(400, "INVALID_ARGUMENT", `${prefix}${snake}: unknown field; the HTTP/JSON API spells it ${prefix}${camel}`);
    }
  }
}

/** A port as a decimal string: the seed's own example sends `"port": "3000"`. */
const DECIMAL_PORT = /^(0|[1-9][0-9]{0,9})$/;

/**
 * Decodes `POST /service`'s body: `{"serviceType", "port", "host"?,
 * "metadata"?, "healthCheck"?}`. Only JSON types are checked here; the values
 * are validated by the core exactly as for gRPC. `port` is a number or a
 * decimal string of one (as the seed sends it), answered exactly as the number
 * would be. `healthCheck` is the contract's HealthCheck in camelCase
 * (`{"path": "/ready"}`, `{"kind": "TTL", "ttlMs": 10000}`; a kind spelled
 * as the proto names it, with or without its prefix, any case) or just the
 * path. A snake_case field name is refused with the camelCase one it
 * means; other unknown fields are ignored.
 */
export function registerRequestFromJson(body: unknown): RegisterRequest {
  if (!isObject(body)) throw invalidArgument("body", "must be a JSON object");
  refuseSnakeCase(body, CAMEL_CASE);
  const { serviceType, host, metadata, healthCheck } = body;
  if (serviceType === undefined || serviceType === null) throw invalidArgument("serviceType", "required");
  if (typeof serviceType !== "string") throw invalidArgument("serviceType", "must be a string");
  const port = portFromJson(body.port);
  if (host !== undefined && host !== null && typeof host !== "string") throw invalidArgument("host", "must be a string");
  if (metadata !== undefined && metadata !== null && !isObject(metadata)) {
    throw invalidArgument("metadata", "must be an object of strings");
  }
  let healthCheckPath: string | undefined;
  let check: HealthCheckInput | undefined;
  if (typeof healthCheck === "string") healthCheckPath = healthCheck;
  else if (isObject(healthCheck)) {
    refuseSnakeCase(healthCheck, CHECK_CAMEL_CASE, "healthCheck.");
    if (healthCheck.path !== undefined && typeof healthCheck.path !== "string") {
      throw invalidArgument("healthCheck.path", "must be a string");
    }
    healthCheckPath = healthCheck.path;
    check = checkFromJson(healthCheck);
  } else if (healthCheck !== undefined && healthCheck !== null) {
    throw invalidArgument("healthCheck", 'must be {"path": "/..."} or a path');
  }
  return {
    serviceType,
    port,
    host: host ?? undefined,
    metadata: (metadata ?? undefined) as Record<string, string> | undefined,
    healthCheckPath,
    ...(check === undefined ? {} : { healthCheck: check }),
  };
}

/** The check fields of a JSON `healthCheck` beside its path; undefined when none is set. Values are the core's to judge. */
function checkFromJson(json: Record<string, unknown>): HealthCheckInput | undefined {
  const { kind, grpcService, ttlMs, timeoutMs, tls } = json;
  if (kind === undefined && grpcService === undefined && ttlMs === undefined && timeoutMs === undefined && tls === undefined) return undefined;
  if (kind !== undefined && typeof kind !== "string") throw invalidArgument("healthCheck.kind", "must be a string such as \"TTL\"");
  if (grpcService !== undefined && typeof grpcService !== "string") throw invalidArgument("healthCheck.grpcService", "must be a string");
  for (const [name, value] of [["ttlMs", ttlMs], ["timeoutMs", timeoutMs]] as const) {
    if (value !== undefined && typeof value !== "number") throw invalidArgument(`healthCheck.${name}`, "must be a number of milliseconds");
  }
  if (tls !== undefined && typeof tls !== "boolean") throw invalidArgument("healthCheck.tls", "must be true or false");
  return {
    ...(kind === undefined ? {} : { kind: kindFromJson(kind) }),
    ...(grpcService === undefined ? {} : { grpcService }),
    ...(ttlMs === undefined ? {} : { ttlMs: ttlMs as number }),
    ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs as number }),
    ...(tls === undefined ? {} : { tls }),
  };
}

/** The core's kinds, as "TTL", "ttl" or "HEALTH_CHECK_KIND_TTL" name them. */
const KINDS: ReadonlySet<string> = new Set<HealthCheckKind>(["http", "grpc", "tcp", "ttl", "session"]);

/** "TTL", "ttl" or "HEALTH_CHECK_KIND_TTL" as the core's kind; anything else is passed on as sent, for the core to refuse by name. */
function kindFromJson(kind: string): HealthCheckKind {
  const bare = kind.toUpperCase().replace(/^HEALTH_CHECK_KIND_/, "");
  if (bare === "UNSPECIFIED") return "http";
  return (KINDS.has(bare.toLowerCase()) ? bare.toLowerCase() : kind) as HealthCheckKind;
}

function portFromJson(port: unknown): number {
  if (port === undefined || port === null) throw invalidArgument("port", "required");
  if (typeof port === "number") return port;
  if (typeof port === "string" && DECIMAL_PORT.test(port)) return Number(port);
  throw invalidArgument("port", "must be an integer 1-65535, as a number or a decimal string");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
