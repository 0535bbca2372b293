/**
 * The ceilings of the memory scenario, in a bare process (no registry code):
 * - hold: N instance records as plain objects in one Map by id (the least a
 *   registry must keep in memory), to measure RSS per instance;
 * - with argv[2] = JSON `{ dbPath }`: read every row of the registry's
 *   SQLite `instances` table before reporting ready, the least a restart
 *   must do before serving.
 */
import { createHash, randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import { emit, serveIpc } from "../lib/ipc.js";
import { BENCH_METADATA, typeName } from "../lib/workload.js";

const { dbPath } = JSON.parse(process.argv[2] ?? "{}") as { dbPath?: string };
let loaded: { rows: number; ms: number } | undefined;
if (dbPath) {
  const t0 = performance.now();
  const db = new Database(dbPath, { readonly: true });
  const rows = (db.prepare("SELECT * FROM instances").all() as { metadata: string }[]).map((r) => ({
    ...r,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
  }));
  db.close();
  loaded = { rows: rows.length, ms: performance.now() - t0 };
}

const held = new Map<string, object>();
serveIpc({
  hold({ count }: { count: number }) {
    const now = Date.now();
    const types = Array.from({ length: 1000 }, (_, t) => typeName(t));
    for (let i = 0; i < count; i++) {
      // Flat strings and a pooled 32-byte hash: the most compact plain-JS form of an instance.
      const id = Buffer.from(randomUUID(), "latin1").toString("latin1");
      held.set(id, {
        id,
        serviceType: types[i % types.length],
        host: [10, (i >> 16) & 255, (i >> 8) & 255, i & 255].join("."),
        port: 8000 + (i % 1000),
        metadata: { ...BENCH_METADATA },
        healthCheckPath: "/health",
        health: "healthy",
        registeredAt: now,
        updatedAt: now,
        revision: i + 1,
        tokenHash: createHash("sha256").update(id).digest("binary"), // latin1, as the registry keeps it
      });
    }
    return { held: held.size };
  },
  gc() {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    return process.memoryUsage();
  },
  stop() {
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { loaded, uptimeMs: performance.now() });
