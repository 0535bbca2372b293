/**
 * The ceiling of the memory scenario's RSS, in a bare process (no registry
 * code): N instance records as plain objects in one Map by id, the least a
 * registry must keep in memory. (The start-up ceiling is `startup-reader.mjs`.)
 */
import { createHash, randomUUID } from "node:crypto";
import { emit, serveIpc } from "../lib/ipc.js";
import { BENCH_METADATA, typeName } from "../lib/workload.js";

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
emit("ready");
