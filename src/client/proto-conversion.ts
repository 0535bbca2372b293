import * as pb from "../../gen/registry/v1/registry.js";
import type { HealthCheckKind, HealthCheckSpec, Instance, RemovalReason, ServiceSummary } from "../registry/types.js";
import type { HealthCheckInput } from "../registry/validation.js";

/**
 * Protobuf messages to the SDK's plain objects. The SDK speaks the same
 * vocabulary as the core (`Instance`, `ServiceSummary`): lower-case health,
 * timestamps as milliseconds since the Unix epoch.
 */
export function fromProtoInstance(message: pb.Instance): Instance {
  return {
    id: message.id,
    serviceType: message.serviceType,
    host: message.host,
    port: message.port,
    metadata: { ...message.metadata },
    healthCheckPath: message.healthCheckPath,
    ...(message.healthCheckKind > pb.HealthCheckKind.HEALTH_CHECK_KIND_HTTP ? { healthCheck: fromProtoKind(message.healthCheckKind) } : {}),
    health: message.health === pb.HealthStatus.HEALTH_STATUS_UNHEALTHY ? "unhealthy" : "healthy",
    draining: message.draining,
    drainingSince: message.drainingSince?.getTime() ?? 0,
    registeredAt: message.registeredAt?.getTime() ?? 0,
    updatedAt: message.updatedAt?.getTime() ?? 0,
    revision: message.revision,
  };
}

/**
 * An instance's check as far as the contract shows it (its kind): the SDK's
 * `Instance.healthCheck.kind`; the other fields read as unknown (0, "").
 */
function fromProtoKind(kind: pb.HealthCheckKind): HealthCheckSpec {
  const name = KIND_NAMES[kind] ?? "http";
  return { kind: name, grpcService: "", tls: false, ttlMs: 0, timeoutMs: 0 };
}

const KIND_NAMES: Partial<Record<pb.HealthCheckKind, HealthCheckKind>> = {
  [pb.HealthCheckKind.HEALTH_CHECK_KIND_GRPC]: "grpc",
  [pb.HealthCheckKind.HEALTH_CHECK_KIND_TCP]: "tcp",
  [pb.HealthCheckKind.HEALTH_CHECK_KIND_TTL]: "ttl",
  [pb.HealthCheckKind.HEALTH_CHECK_KIND_SESSION]: "session",
};

/** A registration's check as the contract's HealthCheck; undefined when nothing was asked for. */
export function toProtoHealthCheck(path: string | undefined, check: HealthCheckInput | undefined): pb.HealthCheck | undefined {
  if (path === undefined && check === undefined) return undefined;
  return {
    path: path ?? "",
    kind: check?.kind === undefined ? pb.HealthCheckKind.HEALTH_CHECK_KIND_UNSPECIFIED : PROTO_KINDS[check.kind],
    grpcService: check?.grpcService ?? "",
    ttlMs: check?.ttlMs ?? 0,
    timeoutMs: check?.timeoutMs ?? 0,
    tls: check?.tls ?? false,
  };
}

const PROTO_KINDS: Record<HealthCheckKind, pb.HealthCheckKind> = {
  http: pb.HealthCheckKind.HEALTH_CHECK_KIND_HTTP,
  grpc: pb.HealthCheckKind.HEALTH_CHECK_KIND_GRPC,
  tcp: pb.HealthCheckKind.HEALTH_CHECK_KIND_TCP,
  ttl: pb.HealthCheckKind.HEALTH_CHECK_KIND_TTL,
  session: pb.HealthCheckKind.HEALTH_CHECK_KIND_SESSION,
};

/** A ServiceSummary message as a plain object. */
export function fromProtoSummary(message: pb.ServiceSummary): ServiceSummary {
  return {
    serviceType: message.serviceType,
    healthyCount: message.healthyCount,
    totalCount: message.totalCount,
    drainingCount: message.drainingCount,
    panic: message.panic,
  };
}

/** RemovalReason enum to the core's string form. */
export function fromProtoRemovalReason(reason: pb.RemovalReason): RemovalReason {
  switch (reason) {
    case pb.RemovalReason.REMOVAL_REASON_HEALTH_CHECK_EXPIRED:
      return "health_check_expired";
    case pb.RemovalReason.REMOVAL_REASON_REPLACED:
      return "replaced";
    case pb.RemovalReason.REMOVAL_REASON_DRAIN_EXPIRED:
      return "drain_expired";
    default:
      return "unregistered";
  }
}
