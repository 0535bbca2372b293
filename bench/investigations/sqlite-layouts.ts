/**
 * Bare better-sqlite3 (WAL, synchronous=NORMAL, exclusive locking, as the
 * store opens it) writing registrations, the instance row and its history
 * row, into the instances table laid out three ways, as CPU per row:
 *
 * - `text-key`: keyed by the id's text (schema v2): a rowid table and the
 *   key's index, two B-trees;
 * - `row-key`: keyed by an integer row key, the id unindexed (schema v3,
 *   what the store runs);
 * - `without-rowid`: one B-tree keyed by the id (`WITHOUT ROWID`).
 *
 * Layouts run in turn, round after round, fresh database each, so drift
 * hits all of them; prints every round and each layout's median. No
 * registry code runs: this is the table layout's cost alone.
 *
 * usage: node --import tsx bench/investigations/sqlite-layouts.ts [--rows=20000] [--per-commit=1] [--rounds=3]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { newInstanceId } from "../../src/registry/instance-id.js";
import { arg } from "../lib/args.js";
import { BENCH_METADATA } from "../lib/workload.js";

const rows = Number(arg("rows", "20000"));
const perCommit = Number(arg("per-commit", "1"));
const rounds = Number(arg("rounds", "3"));

const COLUMNS = `service_type TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL, metadata TEXT NOT NULL,
  health_check_path TEXT NOT NULL, health TEXT NOT NULL, registered_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  revision INTEGER NOT NULL, token_hash BLOB NOT NULL`;
const LAYOUTS = {
  "text-key": `CREATE TABLE instances (id TEXT PRIMARY KEY, ${COLUMNS}) STRICT`,
  "row-key": `CREATE TABLE instances (row_key INTEGER PRIMARY KEY, id TEXT NOT NULL, ${COLUMNS}) STRICT`,
  "without-rowid": `CREATE TABLE instances (id TEXT PRIMARY KEY, ${COLUMNS}) STRICT, WITHOUT ROWID`,
} as const;
type Layout = keyof typeof LAYOUTS;

/** CPU µs per registration row for one layout, in a fresh database. */
function measure(layout: Layout): number {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-layouts-"));
  const db = new Database(join(dir, "registry.db"));
  db.pragma("locking_mode = EXCLUSIVE");
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`${LAYOUTS[layout]}; CREATE TABLE history (revision INTEGER PRIMARY KEY, change TEXT NOT NULL) STRICT;`);
  const insert = db.prepare(
    "INSERT INTO instances (id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const insertHistory = db.prepare("INSERT INTO history (revision, change) VALUES (?, ?)");
  const tokenHash = Buffer.alloc(32, 7);
  let revision = 0;
  const commit = db.transaction(() => {
    for (let i = 0; i < perCommit; i++) {
      revision++;
      const now = Date.now();
      const values = [
        newInstanceId(now), "bench-svc", `10.0.${(revision >> 8) & 255}.${revision & 255}`, 1 + (revision % 65_535),
        JSON.stringify({ ...BENCH_METADATA, seq: String(revision) }), "/health", "healthy", now, now, revision, tokenHash,
      ];
      insert.run(values);
      insertHistory.run(revision, JSON.stringify({ kind: "registered", instance: values.slice(0, 10) }));
    }
  });
  const commits = Math.ceil(rows / perCommit);
  for (let i = 0; i < Math.min(commits, 3000); i++) commit(); // warm: JIT, page cache, a few B-tree levels
  const started = process.cpuUsage();
  for (let i = 0; i < commits; i++) commit();
  const used = process.cpuUsage(started);
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return (used.user + used.system) / (commits * perCommit);
}

const results = new Map<Layout, number[]>(Object.keys(LAYOUTS).map((l) => [l as Layout, []]));
for (let round = 1; round <= rounds; round++) {
  const line = [...results.keys()].map((layout) => {
    const us = measure(layout);
    results.get(layout)?.push(us);
    return `${layout} ${us.toFixed(2)}`;
  });
  console.log(`round ${round} (${perCommit} a commit, µs CPU per row): ${line.join("  |  ")}`);
}
for (const [layout, figures] of results) {
  const sorted = [...figures].sort((a, b) => a - b);
  console.log(`${layout}: median ${(sorted[Math.floor(sorted.length / 2)] as number).toFixed(2)} µs per row (${sorted.map((f) => f.toFixed(2)).join(", ")})`);
}
