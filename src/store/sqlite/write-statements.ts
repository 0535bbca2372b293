/**
 * The SQL of the SQLite store's writes, in one place: the store prepares
 * these, and the benchmark's bare-SQLite floor (`bench/load/sqlite-writes.ts`)
 * runs the very same statements without the store around them.
 */
export const WRITE_SQL = {
  insertInstance: `INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash)
       VALUES (@id, @service_type, @host, @port, @metadata, @health_check_path, @health, @registered_at, @updated_at, @revision, @token_hash)`,
  updateHealth: "UPDATE instances SET health = ?, updated_at = ?, revision = ? WHERE id = ?",
  deleteInstance: "DELETE FROM instances WHERE id = ?",
  insertHistory: "INSERT INTO history (revision, change) VALUES (?, ?)",
  pruneHistory: "DELETE FROM history WHERE revision <= ?",
  /** A revision marker, written when history is pruned: the current revision is the newest history row's. */
  setRevision: "UPDATE meta SET value = ? WHERE key = 'revision'",
} as const;
