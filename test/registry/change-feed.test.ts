import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change, WatchEvent } from "../../src/registry/types.js";

function revisionOf(e: WatchEvent): number {
  return e.type === "change" ? e.change.revision : -1;
}

describe("the registry's change feed (committed changes applied in revision order)", () => {
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

  it("fails calls still waiting for their change when the registry closes", async () => {
    const registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    // Hold the change feed: the commit is acknowledged by the store but never applied.
    const waiting = (registry as unknown as { applied(rev: number): Promise<void> }).applied(99);
    await registry.close();
    await expect(waiting).rejects.toMatchObject({ code: "unavailable" });
  });
});
