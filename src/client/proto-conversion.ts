import * as pb from "../../gen/registry/v1/registry.js";
import type { Instance, RemovalReason, ServiceSummary } from "../registry/types.js";

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
    health: message.health === pb.HealthStatus.HEALTH_STATUS_UNHEALTHY ? "unhealthy" : "healthy",
    draining: message.draining,
    drainingSince: message.drainingSince?.getTime() ?? 0,
    registeredAt: message.registeredAt?.getTime() ?? 0,
    updatedAt: message.updatedAt?.getTime() ?? 0,
    revision: message.revision,
  };
}

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
