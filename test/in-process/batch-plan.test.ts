import { describe, expect, it } from "vitest";
import { planBatch, type PlanTable } from "../../src/registry/batch-plan.js";
import { InstanceIndex } from "../../src/registry/instance-index.js";
import { RegistryError } from "../../src/registry/registry-error.js";
import type { Mutation } from "../../src/registry/registry-store.js";
import type { StoredInstance } from "../../src/registry/types.js";

function instance(id: string, host = "10.0.0.1"): Omit<StoredInstance, "revision"> {
  return { id, serviceType: "api", host, port: 80, metadata: {}, healthCheckPath: "/health", health: "healthy", draining: false, drainingSince: 0, registeredAt: 1, updatedAt: 1, tokenHash: "h" };
}

describe("planBatch", () => {
  const table = new Map<string, StoredInstance>([["x", { ...instance("x"), revision: 7 }]]);
  const current: PlanTable = { get: (id) => table.get(id), atAddress: () => undefined };

  it("numbers a batch's changes on from the table's revision, each against what the earlier ones left", () => {
    const mutations: Mutation[] = [
      { op: "register", instance: instance("y", "10.0.0.2") },
      { op: "setHealth", id: "y", health: "unhealthy", at: 5, failureReason: "HTTP 503" },
      { op: "setHealth", id: "x", health: "unhealthy", at: 6 },
      { op: "remove", id: "x", reason: "unregistered", at: 7 },
    ];
    const plan = planBatch(current, 9, mutations).results;
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
    ]).results;
    expect(plan.map((c) => (c instanceof RegistryError ? c.code : c instanceof Error ? c.message : c.revision))).toEqual([8, "not_found", "not_found", 9]);
  });

  it("changes nothing it was given: the table is the caller's to update once the store has the changes", () => {
    planBatch(current, 7, [{ op: "remove", id: "x", reason: "unregistered", at: 1 }]);
    expect(table.get("x")?.revision).toBe(7);
  });

  it("replaces the live instance at a register's address: its removal (replaced) first, then the registration, each numbered", () => {
    const index = new InstanceIndex();
    index.put({ ...instance("old", "10.0.0.9"), revision: 3 });
    index.put({ ...instance("other", "10.0.0.8"), revision: 4 });
    const plan = planBatch(index, 4, [{ op: "register", instance: instance("new", "10.0.0.9") }]);
    expect(plan.changes.map((c) => [c.kind, c.revision, c.instance.id, c.kind === "removed" ? c.reason : ""])).toEqual([
      ["removed", 5, "old", "replaced"],
      ["registered", 6, "new", ""],
    ]);
    expect(plan.results.map((c) => (c instanceof Error ? c.message : c.instance.id))).toEqual(["new"]);
  });

  it("tells addresses apart by type and port, and sees hosts as one address whatever their spelling", () => {
    const index = new InstanceIndex();
    index.put({ ...instance("v6"), host: "0:0::1", revision: 1 });
    index.put({ ...instance("name"), host: "Api.Example.", revision: 2 });
    const plan = planBatch(index, 2, [
      { op: "register", instance: { ...instance("a"), host: "::1", port: 81 } }, // another port
      { op: "register", instance: { ...instance("b"), host: "::1", serviceType: "db" } }, // another type
      { op: "register", instance: { ...instance("c"), host: "::1" } }, // replaces v6
      { op: "register", instance: { ...instance("d"), host: "api.example.com" } }, // another name
      { op: "register", instance: { ...instance("e"), host: "api.example" } }, // replaces name
      { op: "register", instance: { ...instance("f"), host: "10.0.0.4" } },
      { op: "register", instance: { ...instance("g"), host: "::ffff:10.0.0.4" } }, // IPv4-mapped: replaces f
    ]);
    expect(plan.changes.filter((c) => c.kind === "removed").map((c) => c.instance.id)).toEqual(["v6", "name", "f"]);
  });

  it("sees earlier mutations of its own batch: two registers of one address leave the second, one unregister frees it", () => {
    const index = new InstanceIndex();
    const plan = planBatch(index, 0, [
      { op: "register", instance: instance("first", "10.0.0.5") },
      { op: "register", instance: instance("second", "10.0.0.5") },
      { op: "remove", id: "second", reason: "unregistered", at: 2 },
      { op: "register", instance: instance("third", "10.0.0.5") },
    ]);
    expect(plan.changes.map((c) => `${c.kind}:${c.instance.id}`)).toEqual([
      "registered:first", "removed:first", "registered:second", "removed:second", "registered:third",
    ]);
  });

  it("marks an instance draining with the drain's time, keeping its health", () => {
    const plan = planBatch(current, 7, [{ op: "drain", id: "x", at: 42 }]);
    expect(plan.changes).toEqual([expect.objectContaining({ kind: "draining", revision: 8 })]);
    expect(plan.changes[0]?.instance).toMatchObject({ draining: true, drainingSince: 42, updatedAt: 42, health: "healthy" });
  });

  it("changes nothing for a drain of a draining instance, in the table or earlier in the batch: its deadline stays", () => {
    const index = new InstanceIndex();
    index.put({ ...instance("d"), draining: true, drainingSince: 5, revision: 3 });
    index.put({ ...instance("e", "10.0.0.2"), revision: 4 });
    const plan = planBatch(index, 4, [
      { op: "drain", id: "d", at: 50 },
      { op: "drain", id: "e", at: 60 },
      { op: "drain", id: "e", at: 70 },
    ]);
    expect(plan.changes.map((c) => [c.kind, c.instance.id, c.revision])).toEqual([["draining", "e", 5]]);
    expect(plan.results.map((r) => (r instanceof Error ? r.message : [r.instance.id, r.revision, r.instance.drainingSince]))).toEqual([
      ["d", 3, 5],
      ["e", 5, 60],
      ["e", 5, 60],
    ]);
  });
});
