import type Database from "better-sqlite3";

/**
 * Schema migrations, in order: `MIGRATIONS[n]` takes a database from version n
 * to n + 1. The version lives in `PRAGMA user_version`. Never edit a shipped
 * migration; append a new one.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;
  CREATE TABLE instances (
    id                TEXT PRIMARY KEY,
    service_type      TEXT NOT NULL,
    host              TEXT NOT NULL,
    port              INTEGER NOT NULL,
    metadata          TEXT NOT NULL,
    health_check_path TEXT NOT NULL,
    health            TEXT NOT NULL,
    registered_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    revision          INTEGER NOT NULL,
    token_hash        BLOB NOT NULL
  ) STRICT;
  CREATE TABLE history (
    revision INTEGER PRIMARY KEY,
    change   TEXT NOT NULL
  ) STRICT;
  `,
  // v2 changes no table. Since v2 the current revision is the newest history
  // row's, and meta's 'revision' is a marker written when history is
  // pruned; a v1 build reads meta's alone and would reuse revisions, so the
  // version rises to make it refuse the file.
  "SELECT 1;",
  // v3 keys the instances table by an integer (SQLite's rowid), no longer by
  // the id's text: a table keyed by text is two B-trees, the rows and the
  // key's index, and every registration wrote a page of each to the WAL. The
  // store keeps each id's row key in memory. Rows keep their rowids.
  `
  CREATE TABLE instances_v3 (
    row_key           INTEGER PRIMARY KEY,
    id                TEXT NOT NULL,
    service_type      TEXT NOT NULL,
    host              TEXT NOT NULL,
    port              INTEGER NOT NULL,
    metadata          TEXT NOT NULL,
    health_check_path TEXT NOT NULL,
    health            TEXT NOT NULL,
    registered_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    revision          INTEGER NOT NULL,
    token_hash        BLOB NOT NULL
  ) STRICT;
  INSERT INTO instances_v3 (row_key, id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
    SELECT rowid, id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash FROM instances;
  DROP TABLE instances;
  ALTER TABLE instances_v3 RENAME TO instances;
  `,
  // v4 records which registration key registered each instance (a digest
  // prefix, never the key), for per-key quotas; NULL for older rows.
  "ALTER TABLE instances ADD COLUMN key_id TEXT;",
  // v5 keys the instances table by the id again (the id's unique index finds
  // a row): the store then keeps no map of row keys in memory to keep in
  // step with the table, and no file can hold an id twice. Should a v4 file
  // hold one twice (edited by hand), the newest row (highest revision) is
  // kept. Rows keep their rowids, so instances load in registration order.
  `
  CREATE TABLE instances_v5 (
    id                TEXT PRIMARY KEY,
    service_type      TEXT NOT NULL,
    host              TEXT NOT NULL,
    port              INTEGER NOT NULL,
    metadata          TEXT NOT NULL,
    health_check_path TEXT NOT NULL,
    health            TEXT NOT NULL,
    registered_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    revision          INTEGER NOT NULL,
    token_hash        BLOB NOT NULL,
    key_id            TEXT
  ) STRICT;
  INSERT OR REPLACE INTO instances_v5 (rowid, id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash, key_id)
    SELECT row_key, id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash, key_id
    FROM instances ORDER BY revision, row_key;
  DROP TABLE instances;
  ALTER TABLE instances_v5 RENAME TO instances;
  `,
  // v6 records when an instance was marked draining (epoch ms; 0 = not draining).
  "ALTER TABLE instances ADD COLUMN draining_since INTEGER NOT NULL DEFAULT 0;",
  // v7 records how an instance is checked (JSON of its HealthCheckSpec);
  // NULL for the default HTTP check, which older rows all have.
  "ALTER TABLE instances ADD COLUMN health_check TEXT;",
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Raised for a database this build must not touch; the message names the file. */
export class SchemaError extends Error {
  override readonly name = "SchemaError";
}

/**
 * Brings the database to `SCHEMA_VERSION`, one migration per transaction,
 * and answers how many ran. Refuses a database written by a newer build
 * instead of guessing.
 */
export function migrate(db: Database.Database, path: string): number {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new SchemaError(
      `${path} has schema version ${version}, newer than this build supports (${SCHEMA_VERSION}); ` +
        "run a newer service-registry or restore a backup",
    );
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return SCHEMA_VERSION - version;
}
