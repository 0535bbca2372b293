/**
 * The ceiling of a restart: a bare process (no registry code) that reads
 * every row of the registry's SQLite `instances` table, parses each row's
 * metadata, and prints one JSON line when done, the least a restart must do
 * before it serves. JavaScript, so that it runs under plain node beside the
 * compiled server, and under `node --import tsx` beside `npm start`.
 *
 * argv[2]: the database file.
 */
import Database from "better-sqlite3";

const dbPath = process.argv[2];
if (!dbPath) throw new Error("usage: startup-reader.mjs DB_FILE");
const db = new Database(dbPath, { readonly: true });
const rows = db
  .prepare("SELECT * FROM instances")
  .all()
  .map((r) => ({ ...r, metadata: JSON.parse(r.metadata) }));
db.close();
process.stdout.write(`${JSON.stringify({ msg: "rows read", rows: rows.length })}\n`);
