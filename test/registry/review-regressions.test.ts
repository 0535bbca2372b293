import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change, WatchEvent } from "../../src/registry/types.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";

function revisionOf(e: WatchEvent): number {
  return e.type === "change" ? e.change.revision : -1;
}

describe("registry core regressions", () => {
  it("applies a change committed from inside a listener after the one being applied", async () => {
    const registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    // A policy hook: remove a banned type as soon as it registers.
    registry.on("instanceRegistered", (i) => {
      if (i.serviceType === "banned") void registry.unregister(i.id);
    });
    const applied: Change[] = [];
    registry.on("change", (c) => applied.push(c));
    const w = registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false });
    expect((await w.next()).value).toMatchObject({ type: "synced" });
    await registry.register({ serviceType: "banned", host: "127.0.0.1", port: 1 });
    const events = [(await w.next()).value as WatchEvent, (await w.next()).value as WatchEvent];
    expect(events.map(revisionOf)).toEqual([1, 2]);
    expect(applied.map((c) => [c.kind, c.revision])).toEqual([["registered", 1], ["removed", 2]]);
    expect(registry.size).toBe(0);
    w.end();
    await registry.close();
  });

  it("keeps a watcher's queue near its limit when its consumer stays slightly behind", async () => {
    const registry = new ServiceRegistry({ healthChecks: false, watchQueueLimit: 64 });
    await registry.start();
    const w = registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false });
    await w.next(); // synced
    await registry.register({ serviceType: "a", host: "127.0.0.1", port: 1 });
    for (let i = 0; i < 5000; i++) {
      await registry.register({ serviceType: "a", host: "127.0.0.1", port: 1 });
      await w.next(); // always one event behind
    }
    // White-box: the backing array, not just the live count, stays bounded.
    expect((w as unknown as { queue: unknown[] }).queue.length).toBeLessThan(2100);
    expect(w.isParked).toBe(false);
    w.end();
    await registry.close();
  });

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

  it("fails calls still waiting for their change when the registry closes", async () => {
    const registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    // Hold the change feed: the commit is acknowledged by the store but never applied.
    const waiting = (registry as unknown as { applied(rev: number): Promise<void> }).applied(99);
    await registry.close();
    await expect(waiting).rejects.toMatchObject({ code: "unavailable" });
  });
});
