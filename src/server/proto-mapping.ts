import * as pb from "../../gen/registry/v1/registry.js";
import type { HealthCheckInput } from "../registry/validation.js";
import { healthCheckOf, type Change, type HealthCheckKind, type Instance, type RemovalReason, type WatchEvent } from "../registry/types.js";

/** Domain instance to its protobuf form (only public fields; never the token hash). */
export function toProtoInstance(instance: Instance): pb.Instance {
  return {
    id: instance.id,
    serviceType: instance.serviceType,
    host: instance.host,
    port: instance.port,
    metadata: instance.metadata as Record<string, string>,
    health: instance.health === "healthy" ? pb.HealthStatus.HEALTH_STATUS_HEALTHY : pb.HealthStatus.HEALTH_STATUS_UNHEALTHY,
    registeredAt: new Date(instance.registeredAt),
    updatedAt: new Date(instance.updatedAt),
    revision: instance.revision,
    healthCheckPath: instance.healthCheckPath,
    draining: instance.draining,
    ...(instance.draining ? { drainingSince: new Date(instance.drainingSince) } : {}),
    healthCheckKind: PROTO_KINDS[healthCheckOf(instance).kind],
  };
}

const PROTO_KINDS: Record<HealthCheckKind, pb.HealthCheckKind> = {
  http: pb.HealthCheckKind.HEALTH_CHECK_KIND_HTTP,
  grpc: pb.HealthCheckKind.HEALTH_CHECK_KIND_GRPC,
  tcp: pb.HealthCheckKind.HEALTH_CHECK_KIND_TCP,
  ttl: pb.HealthCheckKind.HEALTH_CHECK_KIND_TTL,
  session: pb.HealthCheckKind.HEALTH_CHECK_KIND_SESSION,
};

const KINDS_BY_NUMBER: ReadonlyMap<number, HealthCheckKind> = new Map([
  [pb.HealthCheckKind.HEALTH_CHECK_KIND_UNSPECIFIED, "http"],
  ...Object.entries(PROTO_KINDS).map(([kind, n]) => [n, kind as HealthCheckKind] as const),
]);

/**
 * A request's HealthCheck as the core's input: the path apart (as before
 * kinds existed), the rest only when set. An enum number this build does not
 * know is passed on spelled as such, for validation to refuse by name.
 */
export function fromProtoHealthCheck(check: pb.HealthCheck | undefined): { path?: string; check?: HealthCheckInput } {
  if (check === undefined) return {};
  const kind = KINDS_BY_NUMBER.get(check.kind) ?? (`HealthCheckKind ${check.kind}` as HealthCheckKind);
  const plain = kind === "http" && check.grpcService === "" && check.ttlMs === 0 && check.timeoutMs === 0 && !check.tls;
  return {
    path: check.path,
    ...(plain ? {} : { check: { kind, grpcService: check.grpcService, tls: check.tls, ttlMs: check.ttlMs, timeoutMs: check.timeoutMs } }),
  };
}

const REMOVAL_REASONS: Record<RemovalReason, pb.RemovalReason> = {
  unregistered: pb.RemovalReason.REMOVAL_REASON_UNREGISTERED,
  health_check_expired: pb.RemovalReason.REMOVAL_REASON_HEALTH_CHECK_EXPIRED,
  replaced: pb.RemovalReason.REMOVAL_REASON_REPLACED,
  drain_expired: pb.RemovalReason.REMOVAL_REASON_DRAIN_EXPIRED,
};

function changeMessage(change: Change, epoch: string, panic: boolean): pb.WatchInstancesResponse {
  const base = { ...empty(epoch, change.revision), instance: toProtoInstance(change.instance), panic };
  switch (change.kind) {
    case "registered":
      return { ...base, type: pb.EventType.EVENT_TYPE_INSTANCE_REGISTERED };
    case "removed":
      return { ...base, type: pb.EventType.EVENT_TYPE_INSTANCE_REMOVED, removalReason: REMOVAL_REASONS[change.reason] };
    case "draining":
      return { ...base, type: pb.EventType.EVENT_TYPE_INSTANCE_DRAINING };
    case "health":
      return change.instance.health === "healthy"
        ? { ...base, type: pb.EventType.EVENT_TYPE_HEALTH_CHECK_PASSED }
        : { ...base, type: pb.EventType.EVENT_TYPE_HEALTH_CHECK_FAILED, failureReason: change.failureReason ?? "" };
  }
}

function empty(epoch: string, revision: number): pb.WatchInstancesResponse {
  return {
    type: pb.EventType.EVENT_TYPE_UNSPECIFIED,
    revision,
    epoch,
    removalReason: pb.RemovalReason.REMOVAL_REASON_UNSPECIFIED,
    snapshot: false,
    failureReason: "",
    panic: false,
  };
}

/** A watch event as the message the contract defines. */
export function toWatchResponse(event: WatchEvent, epoch: string): pb.WatchInstancesResponse {
  switch (event.type) {
    case "change":
      return changeMessage(event.change, epoch, event.panic ?? false);
    case "snapshot":
      return {
        ...empty(epoch, event.revision),
        type: pb.EventType.EVENT_TYPE_INSTANCE_REGISTERED,
        instance: toProtoInstance(event.instance),
        snapshot: true,
        panic: event.panic ?? false,
      };
    case "probe":
      return {
        ...empty(epoch, event.probe.revision),
        type: event.probe.passed ? pb.EventType.EVENT_TYPE_HEALTH_CHECK_PASSED : pb.EventType.EVENT_TYPE_HEALTH_CHECK_FAILED,
        instance: toProtoInstance(event.probe.instance),
        failureReason: event.probe.failureReason ?? "",
      };
    case "synced":
      return { ...empty(epoch, event.revision), type: pb.EventType.EVENT_TYPE_SYNCED };
    case "bookmark":
      if (event.panic) return { ...empty(epoch, event.revision), type: pb.EventType.EVENT_TYPE_BOOKMARK, panic: true };
      return { ...empty(epoch, event.revision), type: pb.EventType.EVENT_TYPE_BOOKMARK };
    case "reset":
      return { ...empty(epoch, event.revision), type: pb.EventType.EVENT_TYPE_RESET };
  }
}
