import { describe, expect, it } from "vitest";
import { InstanceIndex } from "../../src/registry/instance-index.js";
import type { Health, StoredInstance } from "../../src/registry/types.js";

let revision = 0;
function instance(id: string, serviceType: string, health: Health = "healthy"): StoredInstance {
  revision++;
  return {
    id, serviceType, host: "10.0.0.1", port: 80, metadata: {}, healthCheckPath: "/health", health,
    draining: false, drainingSince: 0, registeredAt: 0, updatedAt: 0, revision, tokenHash: "\0".repeat(32),
  };
}

describe("InstanceIndex lists", () => {
  it("hands out one frozen list per type until that type changes", () => {
    const index = new InstanceIndex();
    index.put(instance("a1", "api"));
    index.put(instance("d1", "db"));
    const api = index.list("api");
    const healthy = index.serving("api");
    expect(index.list("api")).toBe(api);
    expect(index.serving("api")).toBe(healthy);
    expect(Object.isFrozen(api)).toBe(true);

    index.apply({ kind: "registered", revision: ++revision, instance: instance("d2", "db") });
    expect(index.list("api")).toBe(api); // another type changed

    index.apply({ kind: "registered", revision: ++revision, instance: instance("a2", "api") });
    expect(index.list("api")).not.toBe(api);
    expect(index.list("api").map((i) => i.id)).toEqual(["a1", "a2"]);
  });

  it("keeps healthy lists in step with health changes and removals", () => {
    const index = new InstanceIndex();
    index.put(instance("a1", "api"));
    index.put(instance("a2", "api"));
    expect(index.serving("api").map((i) => i.id)).toEqual(["a1", "a2"]);

    index.apply({ kind: "health", revision: ++revision, instance: instance("a1", "api", "unhealthy") });
    expect(index.serving("api").map((i) => i.id)).toEqual(["a2"]);
    expect(index.list("api").map((i) => i.health)).toEqual(["unhealthy", "healthy"]);
    expect(index.summaries()).toEqual([{ serviceType: "api", healthyCount: 1, totalCount: 2, drainingCount: 0, panic: false }]);

    index.apply({ kind: "removed", revision: ++revision, instance: index.get("a2")!, reason: "unregistered" });
    expect(index.serving("api")).toEqual([]);
    index.apply({ kind: "removed", revision: ++revision, instance: index.get("a1")!, reason: "unregistered" });
    expect(index.list("api")).toEqual([]);
    expect(index.summaries()).toEqual([]);
  });
});
