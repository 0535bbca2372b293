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
  await store.open(() => {});
  await store.close();
  editDatabase(dataDir, sql);
  return dataDir;
}

/**
 * A data directory holding instance `x` (at 10.0.0.1, revision 1) in two
 * rows, the second an older copy at 10.0.0.2 (revision 0), as a hand-edited
 * file could; then `extraSql` is run on it.
 */
export async function dataDirWithRepeatedRow(extraSql = ""): Promise<string> {
  const dataDir = tempDataDir();
  const store = new SqliteStore({ dataDir });
  await store.open(() => {});
  await store.commit({
    op: "register",
    instance: { id: "x", serviceType: "api", host: "10.0.0.1", port: 80, metadata: {}, healthCheckPath: "/health", health: "healthy", registeredAt: 1, updatedAt: 1, tokenHash: "h".repeat(32) },
  });
  await store.close();
  editDatabase(
    dataDir,
    `INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
       SELECT id, service_type, '10.0.0.2', port, metadata, health_check_path, health, registered_at, updated_at, 0, token_hash FROM instances;
     ${extraSql}`,
  );
  return dataDir;
}
