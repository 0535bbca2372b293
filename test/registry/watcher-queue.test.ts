import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

describe("a core watcher's queue", () => {
  it("keeps a watcher's queue near its limit when its consumer stays slightly behind", async () => {
    const registry = new ServiceRegistry({ healthChecks: false, watchQueueLimit: 64 });
    await registry.start();
    const w = registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false });
    await w.next(); // synced
    await registry.register({ serviceType: "a", host: "127.0.0.1", port: 1 });
    for (let i = 0; i < 5000; i++) {
      // Each on a port of its own: a Register of a live address would replace it (two events, not one).
      await registry.register({ serviceType: "a", host: "127.0.0.1", port: 2 + i });
      await w.next(); // always one event behind
    }
    // White-box: the backing array, not just the live count, stays bounded.
    expect((w as unknown as { queue: unknown[] }).queue.length).toBeLessThan(2100);
    expect(w.isParked).toBe(false);
    w.end();
    await registry.close();
  });
});
