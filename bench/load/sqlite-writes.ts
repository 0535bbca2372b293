/**
 * The SQLite part of a registration, bare: better-sqlite3 (WAL, the store's
 * pragmas and schema) writing the rows a Register writes — the instance row
 * and its history row, and every 256 changes the prune and the revision
 * marker — in transactions of several registrations, as the store's
 * commit groups are.
 * None of our code runs. The ceiling server answers Register with it ("no-op
 * + SQLite"): what the SQLite store costs at the least, the bound of its share
 * of the Register figure.
 */
import Database from "better-sqlite3";
import { newInstanceId } from "../../src/registry/instance-id.js";
import { instanceRowValues } from "../../src/store/sqlite/row-codec.js";
import { migrate } from "../../src/store/sqlite/sqlite-schema.js";
import { prunesHistory, WRITE_SQL } from "../../src/store/sqlite/write-statements.js";
import { BENCH_METADATA } from "../lib/workload.js";

/** A database written the way the store writes it; `writeGroup(n)` commits n registrations in one transaction. */
export class BareSqliteWriter {
  readonly writeGroup: (size: number) => void;
  private readonly db: Database.Database;
  private revision = 0;

  constructor(path: string, sync: "normal" | "full") {
    const db = new Database(path);
    this.db = db;
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`);
    migrate(db, path);
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', '0')").run();
    const insertInstance = db.prepare(WRITE_SQL.insertInstance);
    const insertHistory = db.prepare(WRITE_SQL.insertHistory);
    const pruneHistory = db.prepare(WRITE_SQL.pruneHistory);
    const setRevision = db.prepare(WRITE_SQL.setRevision);
    const tokenHash = Buffer.alloc(32, 7);
    this.writeGroup = db.transaction((size: number) => {
      for (let i = 0; i < size; i++) {
        const revision = ++this.revision;
        const now = Date.now();
        const row = {
          id: newInstanceId(), // the registry's ids, so the rows hold the same bytes
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
          key_id: null,
          draining_since: 0,
          health_check: null,
        };
        insertInstance.run(instanceRowValues(row));
        const { token_hash: _, key_id: __, draining_since: ___, health_check: ____, ...instance } = row;
        insertHistory.run(revision, JSON.stringify({ kind: "registered", instance }));
      }
      if (prunesHistory(this.revision - size, this.revision)) {
        pruneHistory.run(this.revision - 10_000);
        setRevision.run(String(this.revision));
      }
    });
  }

  close(): void {
    this.db.close();
  }
}
