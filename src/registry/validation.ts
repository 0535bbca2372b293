import { isIP } from "node:net";
import type { ProbeTargetPolicy } from "../health/probe-target-policy.js";
import { invalidArgument } from "./registry-error.js";
import type { HealthCheckKind, HealthCheckSpec } from "./types.js";

/** What a caller asks to register, before validation. */
export interface RegisterInput {
  readonly serviceType: string;
  readonly port: number;
  /** IP literal or hostname. Transports default it to the caller's address. */
  readonly host: string;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Defaults to `/health`. HTTP checks only. */
  readonly healthCheckPath?: string;
  /** How the instance is checked; an HTTP probe of the path when absent. */
  readonly healthCheck?: HealthCheckInput | undefined;
}

/** A check as a caller asks for it (see `HealthCheckSpec`); unset fields take their defaults. */
export interface HealthCheckInput {
  readonly kind?: HealthCheckKind | undefined;
  readonly grpcService?: string | undefined;
  readonly tls?: boolean | undefined;
  readonly ttlMs?: number | undefined;
  readonly timeoutMs?: number | undefined;
}

/** A registration as validation leaves it. */
export interface ValidRegistration {
  readonly serviceType: string;
  readonly port: number;
  readonly host: string;
  readonly metadata: Record<string, string>;
  readonly healthCheckPath: string;
  /** Undefined for the default check (an HTTP probe with the registry's timeout). */
  readonly healthCheck: HealthCheckSpec | undefined;
}

/** Limits of SPEC 4.1, exported so clients and docs can quote them. */
export const limits = {
  serviceTypeMaxLength: 63,
  metadataMaxEntries: 64,
  metadataKeyMaxLength: 63,
  metadataValueMaxBytes: 512,
  healthCheckPathMaxLength: 256,
  hostMaxLength: 253,
  grpcServiceMaxLength: 256,
  ttlMinMs: 100,
  ttlMaxMs: 3_600_000,
  probeTimeoutMaxMs: 60_000,
} as const;

const SERVICE_TYPE = /^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$/;
const METADATA_KEY = /^[A-Za-z0-9._/-]{1,63}$/;
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const CONTROL_CHARACTER = /[\x00-\x1f\x7f]/;

/** Whether `value` could name a service type (what validateServiceType accepts), without building an error. */
export function isServiceTypeName(value: string): boolean {
  return value.length <= limits.serviceTypeMaxLength && SERVICE_TYPE.test(value);
}

/** Throws INVALID_ARGUMENT naming the field unless `value` is a valid service type. */
export function validateServiceType(value: string, field = "service_type"): void {
  if (value.length === 0) throw invalidArgument(field, "must not be empty");
  if (value.length > limits.serviceTypeMaxLength) {
    throw invalidArgument(field, `must be at most ${limits.serviceTypeMaxLength} characters`);
  }
  if (!SERVICE_TYPE.test(value)) {
    throw invalidArgument(
      field,
      "must use only [a-z0-9._-] and start and end with a lowercase letter or digit",
    );
  }
}

/**
 * True for an IP literal or an RFC 1123 hostname. A name whose last label is
 * numeric ("999.1.1.1", "1.2.3") is neither: resolvers would read it as a
 * (different) IPv4 address.
 */
export function isValidHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > limits.hostMaxLength) return false;
  const labels = name.split(".");
  if (/^(?:\d+|0x[0-9a-f]*)$/i.test(labels[labels.length - 1] ?? "")) return false;
  return labels.every((label) => HOSTNAME_LABEL.test(label));
}

/**
 * The metadata checked and copied: own data properties (even a key named
 * "__proto__") in a compact object; a null-prototype object is a hash table,
 * three times the size. One pass over `Object.keys`, with no entry arrays.
 */
function validMetadata(source: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (source == null) return metadata; // null too: JavaScript callers of the library may pass it
  const keys = Object.keys(source);
  if (keys.length > limits.metadataMaxEntries) {
    throw invalidArgument("metadata", `must have at most ${limits.metadataMaxEntries} entries`);
  }
  for (const key of keys) {
    const value = source[key];
    if (!METADATA_KEY.test(key)) {
      throw invalidArgument("metadata", `key ${JSON.stringify(key.slice(0, 80))} must match [A-Za-z0-9._/-]{1,63}`);
    }
    if (typeof value !== "string") throw invalidArgument(`metadata.${key}`, "must be a string");
    // A UTF-16 unit is at most 3 UTF-8 bytes: only a long value needs counting.
    if (value.length * 3 > limits.metadataValueMaxBytes && Buffer.byteLength(value, "utf8") > limits.metadataValueMaxBytes) {
      throw invalidArgument(`metadata.${key}`, `must be at most ${limits.metadataValueMaxBytes} bytes`);
    }
    if (key === "__proto__") Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true });
    else metadata[key] = value;
  }
  return metadata;
}

/**
 * Throws INVALID_ARGUMENT naming `host` when it is an IP literal the probe
 * target policy denies. A name passes: it is resolved, and each address
 * judged, at every probe (what it resolves to now says nothing of later).
 */
export function assertProbeTargetAllowed(host: string, policy: ProbeTargetPolicy): void {
  if (isIP(host) !== 0 && !policy.allows(host)) {
    throw invalidArgument("host", `${host} is denied by the probe-target policy (PROBE_ALLOW_CIDRS / PROBE_DENY_CIDRS)`);
  }
}

const DEFAULT_HEALTH_PATH = "/health";

/**
 * Checks a registration against SPEC 4.1 and returns it normalised (default
 * health path, a plain metadata copy). Throws INVALID_ARGUMENT naming the
 * first offending field.
 */
export function validateRegisterInput(input: RegisterInput): ValidRegistration {
  validateServiceType(input.serviceType);
  // JSON and the library API can pass a fraction, which "between 1 and 65535" would not explain.
  if (!Number.isInteger(input.port)) throw invalidArgument("port", "must be an integer between 1 and 65535");
  if (input.port < 1 || input.port > 65535) throw invalidArgument("port", "must be between 1 and 65535");
  if (!isValidHost(input.host)) throw invalidArgument("host", "must be an IP literal or a hostname");
  // Node accepts "fe80::1%eth0", but neither the prober nor most clients can
  // dial a zone id: an instance registered with one could never pass a probe.
  if (input.host.includes("%")) {
    throw invalidArgument("host", "IPv6 zone ids ('%eth0') are not supported; register a global or unique-local address");
  }

  const metadata = validMetadata(input.metadata);
  const healthCheck = validHealthCheck(input.healthCheck);
  if (healthCheck && healthCheck.kind !== "http" && input.healthCheckPath) {
    throw invalidArgument("health_check.path", `is for HTTP checks only, not ${healthCheck.kind.toUpperCase()}`);
  }
  // The default as the one shared string: a decoded request's "/health" is a fresh copy, kept per instance.
  const path = !input.healthCheckPath || input.healthCheckPath === DEFAULT_HEALTH_PATH ? DEFAULT_HEALTH_PATH : input.healthCheckPath;
  if (!path.startsWith("/")) throw invalidArgument("health_check.path", "must start with /");
  if (path.length > limits.healthCheckPathMaxLength) {
    throw invalidArgument("health_check.path", `must be at most ${limits.healthCheckPathMaxLength} characters`);
  }
  if (!PRINTABLE_ASCII.test(path)) throw invalidArgument("health_check.path", "must be printable ASCII without spaces");

  return { serviceType: input.serviceType, port: input.port, host: input.host, metadata, healthCheckPath: path, healthCheck };
}

const KINDS: ReadonlySet<string> = new Set<HealthCheckKind>(["http", "grpc", "tcp", "ttl", "session"]);

/**
 * A check checked and completed, or undefined for the default one (HTTP
 * with the registry's timeout, shared by most instances). Fields that do not
 * apply to the kind are refused rather than ignored: a TTL check sent with
 * a timeout but no ttl is a mistake the caller wants to hear of.
 */
function validHealthCheck(input: HealthCheckInput | undefined): HealthCheckSpec | undefined {
  if (input == null) return undefined;
  const kind = input.kind ?? "http";
  if (!KINDS.has(kind)) throw invalidArgument("health_check.kind", `must be one of HTTP, GRPC, TCP, TTL, SESSION, got ${String(kind).slice(0, 40)}`);
  const grpcService = input.grpcService ?? "";
  const tls = input.tls ?? false;
  const ttlMs = input.ttlMs ?? 0;
  const timeoutMs = input.timeoutMs ?? 0;
  const upper = kind.toUpperCase();
  if (typeof grpcService !== "string") throw invalidArgument("health_check.grpc_service", "must be a string");
  if (grpcService !== "" && kind !== "grpc") throw invalidArgument("health_check.grpc_service", `is for GRPC checks only, not ${upper}`);
  if (grpcService.length > limits.grpcServiceMaxLength) {
    throw invalidArgument("health_check.grpc_service", `must be at most ${limits.grpcServiceMaxLength} characters`);
  }
  // It is sent to the backend and shown on the console and in logs: no name a service is given has them.
  if (CONTROL_CHARACTER.test(grpcService)) throw invalidArgument("health_check.grpc_service", "must not contain control characters");
  if (typeof tls !== "boolean") throw invalidArgument("health_check.tls", "must be a boolean");
  if (tls && kind !== "grpc") throw invalidArgument("health_check.tls", `is for GRPC checks only, not ${upper}`);
  if (kind === "ttl") {
    if (!Number.isInteger(ttlMs) || ttlMs < limits.ttlMinMs || ttlMs > limits.ttlMaxMs) {
      throw invalidArgument("health_check.ttl_ms", `must be between ${limits.ttlMinMs} and ${limits.ttlMaxMs} for TTL checks`);
    }
  } else if (ttlMs !== 0) {
    throw invalidArgument("health_check.ttl_ms", `is for TTL checks only, not ${upper}`);
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > limits.probeTimeoutMaxMs) {
    throw invalidArgument("health_check.timeout_ms", `must be between 0 (the registry's default) and ${limits.probeTimeoutMaxMs}`);
  }
  if (timeoutMs !== 0 && (kind === "ttl" || kind === "session")) {
    throw invalidArgument("health_check.timeout_ms", `is for probed checks (HTTP, GRPC, TCP) only, not ${upper}`);
  }
  if (kind === "http" && timeoutMs === 0) return undefined;
  return { kind, grpcService, tls, ttlMs, timeoutMs };
}
