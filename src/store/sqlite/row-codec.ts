import type { Change, Health, RemovalReason, StoredInstance } from "../../registry/types.js";

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
    token_hash: instance.tokenHash,
  };
}

export function fromInstanceRow(row: InstanceRow): StoredInstance {
  return {
    id: row.id,
    serviceType: row.service_type,
    host: row.host,
    port: row.port,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    healthCheckPath: row.health_check_path,
    health: row.health as Health,
    registeredAt: row.registered_at,
    updatedAt: row.updated_at,
    revision: row.revision,
    // SQLite hands each blob over in an allocation of its own; a copy in Node's
    // buffer pool costs a 32-byte slice (0.6 KiB of RSS less per instance).
    tokenHash: row.token_hash.length > 0 ? Buffer.from(row.token_hash) : row.token_hash,
  };
}

/** The `instances` columns in the order {@link fromInstanceValues} reads them. */
export const INSTANCE_COLUMNS =
  "id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash";

/**
 * `fromInstanceRow` for a row read in raw mode (an array in
 * {@link INSTANCE_COLUMNS} order). Start-up reads every instance this way:
 * better-sqlite3 builds an array far faster than an object with eleven named
 * properties, and it is garbage the moment the instance is built.
 */
export function fromInstanceValues(v: readonly unknown[]): StoredInstance {
  const tokenHash = v[10] as Buffer;
  return {
    id: v[0] as string,
    serviceType: v[1] as string,
    host: v[2] as string,
    port: v[3] as number,
    metadata: JSON.parse(v[4] as string) as Record<string, string>,
    healthCheckPath: v[5] as string,
    health: v[6] as Health,
    registeredAt: v[7] as number,
    updatedAt: v[8] as number,
    revision: v[9] as number,
    // As in fromInstanceRow: a 32-byte slice of Node's pool, not an allocation of its own.
    tokenHash: tokenHash.length > 0 ? Buffer.from(tokenHash) : tokenHash,
  };
}

/** JSON form of a change for the `history` table (the token hash is kept out). */
interface ChangeJson {
  kind: Change["kind"];
  instance: Omit<InstanceRow, "token_hash">;
  reason?: RemovalReason;
  failureReason?: string;
}

const NO_HASH = Buffer.alloc(0);

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
  };
  const json: ChangeJson = { kind: change.kind, instance };
  if (change.kind === "removed") json.reason = change.reason;
  if (change.kind === "health" && change.failureReason !== undefined) json.failureReason = change.failureReason;
  return JSON.stringify(json);
}

/** History entries carry no token hash: they are for replay, never for auth. */
export function decodeChange(revision: number, text: string): Change {
  const json = JSON.parse(text) as ChangeJson;
  const instance = fromInstanceRow({ ...json.instance, token_hash: NO_HASH });
  switch (json.kind) {
    case "registered":
      return { kind: "registered", revision, instance };
    case "removed":
      return { kind: "removed", revision, instance, reason: json.reason ?? "unregistered" };
    case "health":
      return json.failureReason === undefined
        ? { kind: "health", revision, instance }
        : { kind: "health", revision, instance, failureReason: json.failureReason };
  }
}
