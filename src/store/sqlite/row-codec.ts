import type { Change, Health, HealthCheckSpec, RemovalReason, StoredInstance } from "../../registry/types.js";

/** A row of the `instances` table. */
export interface InstanceRow {
  id: string;
  service_type: string;
  host: string;
  port: number;
  metadata: string;
  health_check_path: string;
  health: string;
  registered_at: number;
  updated_at: number;
  revision: number;
  token_hash: Buffer;
  key_id: string | null;
  draining_since: number;
  /** JSON of the instance's `HealthCheckSpec`; null for the default check. */
  health_check: string | null;
}

export function toInstanceRow(instance: StoredInstance): InstanceRow {
  return {
    id: instance.id,
    service_type: instance.serviceType,
    host: instance.host,
    port: instance.port,
    metadata: JSON.stringify(instance.metadata),
    health_check_path: instance.healthCheckPath,
    health: instance.health,
    registered_at: instance.registeredAt,
    updated_at: instance.updatedAt,
    revision: instance.revision,
    token_hash: Buffer.from(instance.tokenHash, "latin1"),
    key_id: instance.keyId ?? null,
    draining_since: instance.drainingSince,
    health_check: instance.healthCheck === undefined ? null : JSON.stringify(instance.healthCheck),
  };
}

/** A row's values in {@link INSTANCE_COLUMNS} order, as the positional `insertInstance` binds them. */
export function instanceRowValues(row: InstanceRow): unknown[] {
  return [
    row.id, row.service_type, row.host, row.port, row.metadata, row.health_check_path,
    row.health, row.registered_at, row.updated_at, row.revision, row.token_hash, row.key_id, row.draining_since,
    row.health_check,
  ];
}

/** The token hash of instances read from history: replay only, never auth. */
const NO_HASH = "";

/**
 * A history row's instance (which carries no token hash) as a stored
 * instance, built by {@link fromInstanceValues} so that every instance read
 * back has the one field order, and so the one hidden class.
 */
function fromHistoryInstance(row: ChangeJson["instance"]): StoredInstance {
  return fromInstanceValues([
    row.id, row.service_type, row.host, row.port, row.metadata, row.health_check_path,
    row.health, row.registered_at, row.updated_at, row.revision, NO_HASH, undefined, row.draining_since ?? 0,
    row.health_check ?? null,
  ]);
}

/** The `instances` columns, in the order `insertInstance` binds them. */
export const INSTANCE_COLUMNS =
  "id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash, key_id, draining_since, health_check";

/**
 * The `instances` columns as {@link fromInstanceValues} reads them: the token
 * hash as hex text, which better-sqlite3 hands over as a plain string. A blob
 * comes as a Buffer with memory of its own apiece (100,000 of them at
 * start-up); decoding the hex takes only a small slice of Node's shared
 * Buffer pool, garbage at once.
 */
export const LOADED_INSTANCE_COLUMNS = INSTANCE_COLUMNS.replace("token_hash", "hex(token_hash)");

/**
 * A row read in raw mode (an array in {@link LOADED_INSTANCE_COLUMNS} order) as a
 * stored instance. Start-up reads every instance this way: better-sqlite3
 * builds an array far faster than an object with eleven named properties,
 * and it is garbage the moment the instance is built.
 */
export function fromInstanceValues(v: readonly unknown[], share: (value: string) => string = asIs): StoredInstance {
  return {
    id: v[0] as string,
    serviceType: share(v[1] as string),
    host: v[2] as string,
    port: v[3] as number,
    metadata: JSON.parse(v[4] as string) as Record<string, string>,
    healthCheckPath: share(v[5] as string),
    healthCheck: healthCheckFrom(v[13]),
    health: share(v[6] as string) as Health,
    draining: ((v[12] as number | undefined) ?? 0) > 0,
    drainingSince: (v[12] as number | undefined) ?? 0,
    registeredAt: v[7] as number,
    updatedAt: v[8] as number,
    revision: v[9] as number,
    // Held as 32 latin1 characters, as `hashSecret` makes it.
    tokenHash: v[10] === NO_HASH ? NO_HASH : Buffer.from(v[10] as string, "hex").toString("latin1"),
    keyId: (v[11] as string | null | undefined) ?? undefined,
  };
}

const asIs = (value: string): string => value;

/** A `health_check` column's spec; undefined for NULL (the default check). */
function healthCheckFrom(value: unknown): HealthCheckSpec | undefined {
  return typeof value === "string" ? (JSON.parse(value) as HealthCheckSpec) : undefined;
}

/**
 * A function answering each string with the first equal one it was given:
 * SQLite hands every row's text over as a fresh string, and the types,
 * health paths and healths of a data set are few, so 100,000 instances
 * loaded would otherwise keep 100,000 copies of each (~28 bytes apiece).
 * For one load; dropped with it.
 */
export function stringSharer(): (value: string) => string {
  const seen = new Map<string, string>();
  return (value) => {
    const first = seen.get(value);
    if (first !== undefined) return first;
    seen.set(value, value);
    return value;
  };
}

/** JSON form of a change for the `history` table (the token hash is kept out). */
interface ChangeJson {
  kind: Change["kind"];
  /** `draining_since` is absent in rows written before schema v6. */
  instance: Omit<InstanceRow, "token_hash" | "key_id" | "draining_since" | "health_check"> & { draining_since?: number; health_check?: string | null };
  reason?: RemovalReason;
  failureReason?: string;
}


/**
 * The history row of a change. `row` is the instance's row when the caller
 * has already built it (a registration writes both), so it is built once.
 */
export function encodeChange(change: Change, row: InstanceRow = toInstanceRow(change.instance)): string {
  // Field by field, not a rest spread: the token hash stays out, and the
  // object keeps one fixed shape for JSON.stringify.
  const instance: ChangeJson["instance"] = {
    id: row.id,
    service_type: row.service_type,
    host: row.host,
    port: row.port,
    metadata: row.metadata,
    health_check_path: row.health_check_path,
    health: row.health,
    registered_at: row.registered_at,
    updated_at: row.updated_at,
    revision: row.revision,
    draining_since: row.draining_since,
    health_check: row.health_check,
  };
  const json: ChangeJson = { kind: change.kind, instance };
  if (change.kind === "removed") json.reason = change.reason;
  if (change.kind === "health" && change.failureReason !== undefined) json.failureReason = change.failureReason;
  return JSON.stringify(json);
}

/** A history row as the change it records (with an empty token hash). */
export function decodeChange(revision: number, text: string): Change {
  const json = JSON.parse(text) as ChangeJson;
  const instance = fromHistoryInstance(json.instance);
  switch (json.kind) {
    case "registered":
      return { kind: "registered", revision, instance };
    case "removed":
      return { kind: "removed", revision, instance, reason: json.reason ?? "unregistered" };
    case "draining":
      return { kind: "draining", revision, instance };
    case "health":
      return json.failureReason === undefined
        ? { kind: "health", revision, instance }
        : { kind: "health", revision, instance, failureReason: json.failureReason };
  }
}
