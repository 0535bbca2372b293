import { describe, expect, it } from "vitest";
import { InstrumentedStore, type CommitOutcome } from "../../src/observability/instrumented-store.js";
import type { Change } from "../../src/registry/types.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import type { ProbeOwnership } from "../../src/registry/registry-store.js";
import { FlakyStore } from "./flaky-store.js";

const INSTANCE = {
  id: "a",
  serviceType: "api",
  host: "127.0.0.1",
  port: 1,
  metadata: {},
  healthCheckPath: "/health",
  health: "healthy" as const,
  registeredAt: 0,
  updatedAt: 0,
  tokenHash: "\0".repeat(32),
};

describe("InstrumentedStore", () => {
  it("hands a shared store's probe ownership and availability through unchanged", async () => {
    const ownership: ProbeOwnership = { owns: (id) => id === "mine", onChange: () => {} };
    let availability: ((available: boolean, reason: string) => void) | undefined;
    const shared = Object.assign(new MemoryStore(), {
      probeOwnership: ownership,
      onAvailabilityChange: (l: (available: boolean, reason: string) => void) => void (availability = l),
    });
    const store = new InstrumentedStore(shared, {});
    expect(store.probeOwnership).toBe(ownership);
    const seen: boolean[] = [];
    store.onAvailabilityChange((available) => seen.push(available));
    availability?.(false, "etcd gone");
    expect(seen).toEqual([false]);
    expect(new InstrumentedStore(new MemoryStore(), {}).probeOwnership).toBeUndefined();
  });

  it("times every commit by operation and outcome, and reports failing and recovery once each", async () => {
    const inner = new FlakyStore();
    const commits: [string, CommitOutcome][] = [];
    const failing: boolean[] = [];
    const store = new InstrumentedStore(inner, {
      onCommit: (op, outcome, seconds) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        commits.push([op, outcome]);
      },
      onFailingChange: (f) => failing.push(f),
    });
    const changes: Change[] = [];
    await store.open((c) => changes.push(c));
    await store.commit({ op: "register", instance: INSTANCE });
    await expect(store.commit({ op: "remove", id: "nope", reason: "unregistered", at: 0 })).rejects.toThrow(/not found/);
    inner.failing = true;
    await expect(store.commit({ op: "remove", id: "a", reason: "unregistered", at: 0 })).rejects.toThrow(/disk/);
    await expect(store.commit({ op: "remove", id: "a", reason: "unregistered", at: 0 })).rejects.toThrow(/disk/);
    inner.failing = false;
    await store.commit({ op: "remove", id: "a", reason: "unregistered", at: 0 });
    expect(commits).toEqual([
      ["register", "ok"],
      ["remove", "rejected"],
      ["remove", "error"],
      ["remove", "error"],
      ["remove", "ok"],
    ]);
    expect(failing).toEqual([true, false]);
    expect(changes.map((c) => c.kind)).toEqual(["registered", "removed"]);
  });
});
