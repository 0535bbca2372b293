/**
 * The ceiling of a restart: a bare process (no registry code) that reads
 * every row of the registry's SQLite `instances` table, parses each row's
 * metadata, keeps one object per row, and prints one JSON line when done,
 * the least a restart must do before it serves. It reads the cheapest way
 * the server knows: row by row as arrays, the token hash as hex text (the
 * columns of `LOADED_INSTANCE_COLUMNS` in src/store/sqlite/row-codec.ts,
 * written out: this process loads none of our code).
 * JavaScript, so that it runs under plain node beside the
 * compiled server, and under `node --import tsx` beside `npm start`.
 *
 * argv[2]: the database file.
 */
import Database from "better-sqlite3";

const dbPath = process.argv[2];
if (!dbPath) throw new Error("usage: startup-reader.mjs DB_FILE");
const db = new Database(dbPath, { readonly: true });
const select = db
  .prepare(
    "SELECT id, service_type, host, port, metadata, health_check_path, health, registered_at, updated_at, revision, hex(token_hash) FROM instances",
  )
  .raw(true);
const rows = [];
for (const [id, serviceType, host, port, metadata, healthCheckPath, health, registeredAt, updatedAt, revision, tokenHash] of select.iterate()) {
  rows.push({ id, serviceType, host, port, metadata: JSON.parse(metadata), healthCheckPath, health, registeredAt, updatedAt, revision, tokenHash });
}
db.close();
process.stdout.write(`${JSON.stringify({ msg: "rows read", rows: rows.length })}\n`);
