import { afterEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { RemovalReason } from "../../src/registry/types.js";
import { Waiter } from "../support/waiter.js";

/**
 * Reported checks (TTL, SESSION) under the registry's thresholds and
 * expiry, and the seed's events for them: a silent instance fails again and
 * again and is removed after deregisterAfter, as a probed one is.
 */

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const registries: ServiceRegistry[] = [];
afterEach(async () => {
  for (const r of registries.splice(0)) await r.close();
});

async function started(options: { healthCheckInterval?: number; deregisterAfter?: number } = {}) {
  const registry = new ServiceRegistry({ logger: silent, healthChecks: false, healthCheckInterval: 100, deregisterAfter: 400, ...options });
  registries.push(registry);
  await registry.start();
  const waiter = new Waiter();
  const removed = new Map<string, RemovalReason>();
  const passed: string[] = [];
  const failed: [string, string][] = [];
  registry.on("instanceRemoved", (i, reason) => {
    removed.set(i.id, reason);
    waiter.notify();
  });
  registry.on("healthCheckPassed", (i) => {
    passed.push(i.id);
    waiter.notify();
  });
  registry.on("healthCheckFailed", (i, reason) => {
    failed.push([i.id, reason]);
    waiter.notify();
  });
  return { registry, waiter, removed, passed, failed };
}

describe("reported checks expire like probed ones", () => {
  it("a TTL instance that never heartbeats fails every ttl ('ttl expired') and is removed after deregisterAfter", async () => {
    const { registry, waiter, removed, failed } = await started();
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "ttl", ttlMs: 100 } });
    await waiter.until(() => removed.has(instance.id), "the silent TTL instance to be removed", 5000);
    expect(removed.get(instance.id)).toBe("health_check_expired");
    const mine = failed.filter(([id]) => id === instance.id);
    // Failing once a ttl: turned unhealthy at the first, removed at the first failure past deregisterAfter.
    expect(mine.length).toBeGreaterThanOrEqual(4);
    expect(new Set(mine.map(([, reason]) => reason))).toEqual(new Set(["ttl expired"]));
  });

  it("a silent TTL instance fails first a ttl after its last heartbeat, then once an interval when that is longer than the ttl", async () => {
    const { registry, waiter, failed } = await started({ healthCheckInterval: 300, deregisterAfter: 0 });
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "ttl", ttlMs: 100 } });
    const since = Date.now();
    const at: number[] = [];
    registry.on("healthCheckFailed", () => at.push(Date.now() - since));
    await waiter.until(() => failed.filter(([id]) => id === instance.id).length >= 3, "three failures", 5000);
    expect(at[0]).toBeLessThan(300); // the first comes a ttl after registration
    expect((at[2] as number) - (at[1] as number)).toBeGreaterThanOrEqual(250); // then an interval apart, not a ttl
  });

  it("heartbeats fire healthCheckPassed and keep it registered past deregisterAfter", async () => {
    const { registry, passed, removed } = await started();
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "ttl", ttlMs: 150 } });
    for (let i = 0; i < 12; i++) {
      await registry.heartbeat(instance.id);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(passed.filter((id) => id === instance.id)).toHaveLength(12);
    expect(removed.has(instance.id)).toBe(false);
    expect(registry.getInstance(instance.id).health).toBe("healthy");
  });

  it("a SESSION instance whose session never opens fails 'no session open' an interval after Register, and is removed", async () => {
    const { registry, waiter, removed, failed } = await started();
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "session" } });
    await waiter.until(() => removed.has(instance.id), "the sessionless instance to be removed", 5000);
    expect(removed.get(instance.id)).toBe("health_check_expired");
    expect(failed.find(([id]) => id === instance.id)?.[1]).toBe("no session open");
  });

  it("a SESSION instance whose session ended is removed after deregisterAfter, unless a new session opens first", async () => {
    const { registry, waiter, removed, passed } = await started();
    const gone = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "session" } });
    const back = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 2, healthCheck: { kind: "session" } });
    registry.openSession(gone.instance.id, () => undefined).close("session lost: test");
    registry.openSession(back.instance.id, () => undefined).close("session lost: test");
    expect(passed.filter((id) => id === gone.instance.id)).toHaveLength(1); // the opening is a passing check
    await new Promise((resolve) => setTimeout(resolve, 150));
    registry.openSession(back.instance.id, () => undefined);
    await waiter.until(() => removed.has(gone.instance.id), "the instance without a session to be removed", 5000);
    expect(removed.get(gone.instance.id)).toBe("health_check_expired");
    expect(removed.has(back.instance.id)).toBe(false);
    expect(registry.getInstance(back.instance.id).health).toBe("healthy");
  });
});
