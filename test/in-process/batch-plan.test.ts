import { describe, expect, it } from "vitest";
import { planBatch } from "../../src/registry/batch-plan.js";
import type { Mutation } from "../../src/registry/registry-store.js";
import type { StoredInstance } from "../../src/registry/types.js";

function instance(id: string, host = "10.0.0.1"): Omit<StoredInstance, "revision"> {
  return { id, serviceType: "api", host, port: 80, metadata: {}, healthCheckPath: "/health", health: "healthy", draining: false, drainingSince: 0, registeredAt: 1, updatedAt: 1, tokenHash: "h" };
}

describe("planBatch", () => {
  const table = new Map<string, StoredInstance>([["x", { ...instance("x"), revision: 7 }]]);
  const current = (id: string) => table.get(id);

  it("numbers a batch's changes on from the table's revision, each against what the earlier ones left", () => {
    const mutations: Mutation[] = [
      { op: "register", instance: instance("y", "10.0.0.2") },
      { op: "setHealth", id: "y", health: "unhealthy", at: 5, failureReason: "HTTP 503" },
      { op: "setHealth", id: "x", health: "unhealthy", at: 6 },
      { op: "remove", id: "x", reason: "unregistered", at: 7 },
    ];
    const plan = planBatch(current, 9, mutations);
    expect(plan.map((c) => (c instanceof Error ? c.message : [c.kind, c.revision, c.instance.id, c.instance.health, c.instance.revision]))).toEqual([
      ["registered", 10, "y", "healthy", 10],
      ["health", 11, "y", "unhealthy", 11],
      ["health", 12, "x", "unhealthy", 12],
      ["removed", 13, "x", "unhealthy", 12], // the removal carries the instance as it was
    ]);
    expect(plan[1]).toMatchObject({ failureReason: "HTTP 503", instance: { updatedAt: 5, host: "10.0.0.2" } });
  });

  it("answers a change of an instance that is not there (or no longer, earlier in the batch) with not_found, in its place, and numbers the rest without a gap", () => {
    const plan = planBatch(current, 7, [
      { op: "remove", id: "x", reason: "unregistered", at: 1 },
      { op: "remove", id: "x", reason: "unregistered", at: 1 },
      { op: "setHealth", id: "nope", health: "unhealthy", at: 1 },
      { op: "register", instance: instance("z") },
    ]);
    expect(plan.map((c) => (c instanceof Error ? c.code : c.revision))).toEqual([8, "not_found", "not_found", 9]);
  });

  it("changes nothing it was given: the table is the caller's to update once the store has the changes", () => {
    planBatch(current, 7, [{ op: "remove", id: "x", reason: "unregistered", at: 1 }]);
    expect(table.get("x")?.revision).toBe(7);
  });
});
