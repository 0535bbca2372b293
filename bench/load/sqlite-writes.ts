/**
 * The SQLite part of a registration, bare: better-sqlite3 (WAL, the store's
 * pragmas and schema) writing the rows a Register writes — the instance row
 * and its history row, then the per-transaction prune and revision update —
 * in transactions of `group` registrations, as the store's commit groups are
 * at that concurrency. None of our code runs: this is what the SQLite store
 * costs at the least, the bound of its share of the Register figure.
 */
import Database from "better-sqlite3";
import { newInstanceId } from "../../src/registry/instance-id.js";
import { migrate } from "../../src/store/sqlite/sqlite-schema.js";
import { WRITE_SQL } from "../../src/store/sqlite/write-statements.js";
import { BENCH_METADATA } from "../lib/workload.js";

/** CPU of this process per registration written, and how many were. */
export interface SqliteWritesResult {
  readonly rows: number;
  readonly cpuPerRowUs: number;
}

export function bareSqliteWrites(o: { path: string; sync: "normal" | "full"; group: number; rows: number }): SqliteWritesResult {
  const db = new Database(o.path);
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${o.sync === "full" ? "FULL" : "NORMAL"}`);
    migrate(db, o.path);
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', '0')").run();
    const insertInstance = db.prepare(WRITE_SQL.insertInstance);
    const insertHistory = db.prepare(WRITE_SQL.insertHistory);
    const pruneHistory = db.prepare(WRITE_SQL.pruneHistory);
    const setRevision = db.prepare(WRITE_SQL.setRevision);
    const tokenHash = Buffer.alloc(32, 7);
    let revision = 0;
    const writeGroup = db.transaction((size: number) => {
      for (let i = 0; i < size; i++) {
        revision++;
        const now = Date.now();
        const row = {
          id: newInstanceId(), // the registry's ids (time-ordered), so the B-tree sees the same key order
          service_type: "bench-svc",
          host: `10.0.${(revision >> 8) & 255}.${revision & 255}`,
          port: 1 + (revision % 65_535),
          metadata: JSON.stringify({ ...BENCH_METADATA, seq: String(revision) }),
          health_check_path: "/health",
          health: "healthy",
          registered_at: now,
          updated_at: now,
          revision,
          token_hash: tokenHash,
        };
        insertInstance.run(row);
        const { token_hash: _, ...instance } = row;
        insertHistory.run(revision, JSON.stringify({ kind: "registered", instance }));
      }
      pruneHistory.run(revision - 10_000);
      setRevision.run(String(revision));
    });
    const warmup = Math.min(1000, o.rows);
    for (let done = 0; done < warmup; done += o.group) writeGroup(o.group);
    const cpu0 = process.cpuUsage();
    let rows = 0;
    while (rows < o.rows) {
      writeGroup(o.group);
      rows += o.group;
    }
    const cpu = process.cpuUsage(cpu0);
    return { rows, cpuPerRowUs: (cpu.user + cpu.system) / rows };
  } finally {
    db.close();
  }
}
