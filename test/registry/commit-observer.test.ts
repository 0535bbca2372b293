import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { CommitReporter, type CommitOutcome } from "../../src/registry/commit-outcomes.js";
import { RegistryError } from "../../src/registry/registry-error.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change } from "../../src/registry/types.js";
import { FlakyStore } from "../surfaces/flaky-store.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe("the commit observer", () => {
  it("times every commit by operation and outcome, and reports failing and recovery once each", async () => {
    const store = new FlakyStore();
    const commits: [string, CommitOutcome][] = [];
    const failing: boolean[] = [];
    const registry = new ServiceRegistry({
      store,
      healthChecks: false,
      logger: silent,
      commitObserver: {
        onCommit: (op, outcome, seconds) => {
          expect(seconds).toBeGreaterThanOrEqual(0);
          commits.push([op, outcome]);
        },
        onFailingChange: (f) => failing.push(f),
      },
    });
    await registry.start();
    const { instance } = await registry.register({ serviceType: "api", host: "127.0.0.1", port: 1 });
    await expect(registry.unregister("nope")).rejects.toThrow(/not found/);
    store.failing = true;
    await expect(registry.unregister(instance.id)).rejects.toThrow(/disk/);
    await expect(registry.unregister(instance.id)).rejects.toThrow(/disk/);
    store.failing = false;
    await registry.unregister(instance.id);
    expect(commits).toEqual([
      ["register", "ok"],
      ["remove", "rejected"],
      ["remove", "error"],
      ["remove", "error"],
      ["remove", "ok"],
    ]);
    expect(failing).toEqual([true, false]);
    expect(registry.size).toBe(0);
    await registry.close();
  });

  it("reads a shared store's per-mutation answers: a domain answer is no failure, 'unavailable' is", () => {
    const commits: [string, CommitOutcome][] = [];
    const failing: boolean[] = [];
    const reporter = new CommitReporter({ onCommit: (op, outcome) => commits.push([op, outcome]), onFailingChange: (f) => failing.push(f) });
    const instance = { id: "a", serviceType: "api", host: "127.0.0.1", port: 1, metadata: {}, healthCheckPath: "/health", health: "healthy" as const, draining: false, drainingSince: 0, registeredAt: 0, updatedAt: 0, tokenHash: "" };
    const change: Change = { kind: "registered", revision: 1, instance: { ...instance, revision: 1 } };
    const register = { op: "register", instance } as const;
    const remove = { op: "remove", id: "nope", reason: "unregistered", at: 0 } as const;
    reporter.report([register, remove], [change, new RegistryError("not_found", "instance nope not found")], performance.now());
    reporter.report([remove], [new RegistryError("unavailable", "etcd did not commit the change; retry")], performance.now());
    reporter.report([register, register], [new Error("connection reset"), new Error("connection reset")], performance.now());
    reporter.report([register], [change], performance.now());
    expect(commits).toEqual([
      ["register", "ok"],
      ["remove", "rejected"],
      ["remove", "error"],
      ["register", "error"],
      ["register", "error"],
      ["register", "ok"],
    ]);
    expect(failing).toEqual([true, false]);
  });
});
