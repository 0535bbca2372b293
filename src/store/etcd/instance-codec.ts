import type { Change, Health, HealthCheckSpec, RemovalReason, StoredInstance } from "../../registry/types.js";

/** The JSON kept under an instance key (revision comes from etcd's mod_revision). */
interface InstanceJson {
  id: string;
  serviceType: string;
  host: string;
  port: number;
  metadata: Record<string, string>;
  healthCheckPath: string;
  /** Absent for the default check (and in values older builds wrote). */
  healthCheck?: HealthCheckSpec;
  health: Health;
  registeredAt: number;
  updatedAt: number;
  tokenHash: string;
  /** The registration key's identity (`keyIdOf`); absent on instances written by older builds. */
  keyId?: string;
  /** When it was marked draining (epoch ms); absent when not draining (and in values older builds wrote). */
  drainingSince?: number;
  /** Why the last health check failed, set with a transition to unhealthy. */
  failureReason?: string;
}

export function encodeInstance(instance: Omit<StoredInstance, "revision">, failureReason?: string): string {
  const json: InstanceJson = {
    id: instance.id,
    serviceType: instance.serviceType,
    host: instance.host,
    port: instance.port,
    metadata: { ...instance.metadata },
    healthCheckPath: instance.healthCheckPath,
    health: instance.health,
    registeredAt: instance.registeredAt,
    updatedAt: instance.updatedAt,
    tokenHash: Buffer.from(instance.tokenHash, "latin1").toString("base64"),
  };
  if (instance.healthCheck !== undefined) json.healthCheck = instance.healthCheck;
  if (instance.keyId !== undefined) json.keyId = instance.keyId;
  if (instance.drainingSince > 0) json.drainingSince = instance.drainingSince;
  if (failureReason !== undefined) json.failureReason = failureReason;
  return JSON.stringify(json);
}

export function decodeInstance(value: Buffer, revision: number): { instance: StoredInstance; failureReason?: string } {
  const json = JSON.parse(value.toString("utf8")) as InstanceJson;
  const instance: StoredInstance = {
    id: json.id,
    serviceType: json.serviceType,
    host: json.host,
    port: json.port,
    metadata: json.metadata,
    healthCheckPath: json.healthCheckPath,
    healthCheck: json.healthCheck,
    health: json.health,
    draining: (json.drainingSince ?? 0) > 0,
    drainingSince: json.drainingSince ?? 0,
    registeredAt: json.registeredAt,
    updatedAt: json.updatedAt,
    revision,
    tokenHash: Buffer.from(json.tokenHash, "base64").toString("latin1"),
    keyId: json.keyId,
  };
  return json.failureReason === undefined ? { instance } : { instance, failureReason: json.failureReason };
}

/** Builds the registry change for one etcd event on an instance key. */
export function changeFromEvent(
  type: "Put" | "Delete",
  kv: { value: Buffer; mod_revision: string; create_revision: string },
  previous: { value: Buffer; mod_revision: string } | undefined,
  removalReason: RemovalReason | undefined,
): Change | undefined {
  const revision = Number(kv.mod_revision);
  if (type === "Delete") {
    if (!previous) return undefined;
    const { instance } = decodeInstance(previous.value, Number(previous.mod_revision));
    return { kind: "removed", revision, instance, reason: removalReason ?? "unregistered" };
  }
  const { instance, failureReason } = decodeInstance(kv.value, revision);
  if (kv.create_revision === kv.mod_revision) return { kind: "registered", revision, instance };
  // A drain writes updatedAt = drainingSince; no later change of a draining instance keeps them equal.
  if (instance.draining && instance.updatedAt === instance.drainingSince) return { kind: "draining", revision, instance };
  return failureReason === undefined || instance.health === "healthy"
    ? { kind: "health", revision, instance }
    : { kind: "health", revision, instance, failureReason };
}
