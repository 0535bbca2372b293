import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { DATABASE_FILE, SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { tempDataDir } from "./server-process.js";

/** Runs `sql` on the database file of a data directory whose store is closed (as a hand edit would). */
export function editDatabase(dataDir: string, sql: string): void {
  const db = new Database(join(dataDir, DATABASE_FILE));
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

/** A fresh data directory holding the current schema and no instance, with `sql` run on it. */
export async function dataDirWith(sql: string): Promise<string> {
  const dataDir = tempDataDir();
  const store = new SqliteStore({ dataDir });
  await store.open();
  await store.close();
  editDatabase(dataDir, sql);
  return dataDir;
}

/**
 * A data directory holding a schema-v4 database (as builds before the
 * instances table was keyed by id wrote it) with instance `x` in two rows: at
 * 10.0.0.1, revision 1, and an older copy at 10.0.0.2, revision 0, as a
 * hand-edited file could; then `extraSql` is run on it.
 */
export async function dataDirWithRepeatedRow(extraSql = ""): Promise<string> {
  const dataDir = tempDataDir();
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, DATABASE_FILE));
  try {
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE history (revision INTEGER PRIMARY KEY, change TEXT NOT NULL) STRICT;
      CREATE TABLE instances (
        row_key INTEGER PRIMARY KEY, id TEXT NOT NULL, service_type TEXT NOT NULL, host TEXT NOT NULL,
        port INTEGER NOT NULL, metadata TEXT NOT NULL, health_check_path TEXT NOT NULL, health TEXT NOT NULL,
        registered_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, revision INTEGER NOT NULL,
        token_hash BLOB NOT NULL, key_id TEXT
      ) STRICT;
      INSERT INTO meta (key, value) VALUES ('epoch', 'v4-epoch'), ('revision', '1');
      INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
        VALUES ('x', 'api', '10.0.0.1', 80, '{}', '/health', 'healthy', 1, 1, 1, zeroblob(32)),
               ('x', 'api', '10.0.0.2', 80, '{}', '/health', 'healthy', 1, 1, 0, zeroblob(32));
      PRAGMA user_version = 4;
      ${extraSql}
    `);
  } finally {
    db.close();
  }
  return dataDir;
}
