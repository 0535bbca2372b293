import { INSTANCE_COLUMNS } from "./row-codec.js";

/**
 * The SQL of the SQLite store's writes, in one place: the store prepares
 * these, and the benchmark's bare-SQLite floor (`bench/load/sqlite-writes.ts`)
 * runs the very same statements without the store around them.
 */
export const WRITE_SQL = {
  /**
   * Bound by position, from `instanceRowValues` (named parameters cost
   * better-sqlite3 a string per column per call). A register of a live id
   * replaces its row, as it replaces the instance in the core's table.
   */
  insertInstance: `INSERT OR REPLACE INTO instances (${INSTANCE_COLUMNS}) VALUES (${INSTANCE_COLUMNS.split(",").map(() => "?").join(", ")})`,
  /** A health transition or a drain: the fields either changes. */
  updateHealth: "UPDATE instances SET health = ?, updated_at = ?, revision = ?, draining_since = ? WHERE id = ?",
  deleteInstance: "DELETE FROM instances WHERE id = ?",
  insertHistory: "INSERT INTO history (revision, change) VALUES (?, ?)",
  pruneHistory: "DELETE FROM history WHERE revision <= ?",
  /** A revision marker, written when history is pruned: the current revision is the newest history row's. */
  setRevision: "UPDATE meta SET value = ? WHERE key = 'revision'",
  /** The store's own write while commits fail (see `SqliteStore.checkWritable`). */
  writeCheck: "INSERT INTO meta (key, value) VALUES ('write_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
} as const;

/** Changes between two prunes of the history table (fewer when the history limit is smaller). */
export const PRUNE_EVERY = 256;

/**
 * Whether a commit taking the revision from `before` to `after` prunes the
 * history table and writes the revision marker: once per `pruneEvery`
 * changes rather than in every commit, since each of those statements
 * rewrites a page of its own (the table's oldest leaf, the meta row's),
 * which at one registration per commit made 2 of the 5 pages a commit
 * wrote. The newest history row holds the current revision (a limit of at
 * least 1 keeps it), so nothing is lost between markers; with `pruneEvery`
 * at most the limit, the table holds at most twice the limit.
 */
export function prunesHistory(before: number, after: number, pruneEvery = PRUNE_EVERY): boolean {
  return Math.floor(after / pruneEvery) > Math.floor(before / pruneEvery);
}
