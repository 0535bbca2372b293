import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";

describe("a store whose backend fails under the registry", () => {
  it("reports a store whose backend fails (an 'unavailable' RegistryError) as failing, then recovered", async () => {
    const inner = new SqliteStore({ dataDir: mkdtempSync(join(tmpdir(), "registry-failing-")) });
    const failing: boolean[] = [];
    const outcomes: string[] = [];
    const commitObserver = {
      onCommit: (_op: string, outcome: string) => outcomes.push(outcome),
      onFailingChange: (f: boolean) => failing.push(f),
    };
    const registry = new ServiceRegistry({ healthChecks: false, store: inner, commitObserver });
    await registry.start();
    await registry.register({ serviceType: "a", host: "127.0.0.1", port: 1 });
    // The database goes away under the store (a stand-in for SQLITE_IOERR / SQLITE_FULL).
    (inner as unknown as { db: { close(): void } }).db.close();
    await expect(registry.register({ serviceType: "a", host: "127.0.0.1", port: 2 })).rejects.toMatchObject({ code: "unavailable" });
    expect(outcomes).toEqual(["ok", "error"]);
    expect(failing).toEqual([true]);
  });
});
