import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { HealthStatus } from "../../gen/registry/v1/registry.js";
import type { ServiceRegistryOptions } from "../../src/registry/registry-options.js";
import type { Instance, RemovalReason } from "../../src/registry/types.js";
import { startBlackhole } from "../support/blackhole.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { call, register, startHarness, type Harness } from "../support/registry-harness.js";

const fast: ServiceRegistryOptions = {
  healthChecks: true,
  healthCheckInterval: 50,
  healthCheckTTL: 200,
  deregisterAfter: 0,
};

/** Resolves when the instance's committed health is `health` (awaits `change` events). */
async function healthBecomes(h: Harness, id: string, health: "healthy" | "unhealthy", timeoutMs = 5000): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  while (h.registry.getInstance(id).health !== health) {
    await once(h.registry, "change", { signal }).catch(() => {
      throw new Error(`instance did not turn ${health} within ${timeoutMs} ms`);
    });
  }
}

describe("health probing through the server", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(options: ServiceRegistryOptions = {}): Promise<Harness> {
    const h = await startHarness({ registry: { ...fast, ...options } });
    cleanup.push(() => h.close());
    return h;
  }

  async function backend(): Promise<HealthServer> {
    const s = await startHealthServer({ status: "ok", load: 0.5 });
    cleanup.push(() => s.close());
    return s;
  }

  it("passes a 2xx probe, hands the JSON body to listeners, and sends a user-agent", async () => {
    const h = await setup();
    const s = await backend();
    const passed = once(h.registry, "healthCheckPassed") as Promise<[Instance, unknown]>;
    const { id } = await register(h, "api", s.port);
    const [instance, data] = await passed;
    expect(instance.id).toBe(id);
    expect(data).toEqual({ status: "ok", load: 0.5 });
    expect(s.requests[0]?.url).toBe("/health");
    expect(s.requests[0]?.headers["user-agent"]).toMatch(/service-registry/);
  });

  it("marks a failing instance unhealthy, hides it from GetByType, and brings it back on recovery", async () => {
    const h = await setup();
    const s = await backend();
    const { id } = await register(h, "api", s.port);
    await s.nextRequest();
    s.status = 503;
    const [, reason] = (await once(h.registry, "healthCheckFailed")) as [Instance, string];
    expect(reason).toMatch(/503/);
    await healthBecomes(h, id, "unhealthy");
    expect(h.registry.getInstance(id).health).toBe("unhealthy");

    const visible = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} });
    expect(visible.instances).toEqual([]);
    const all = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} });
    expect(all.instances.map((i) => [i.id, i.health])).toEqual([[id, HealthStatus.HEALTH_STATUS_UNHEALTHY]]);

    s.status = 200;
    await healthBecomes(h, id, "healthy");
    const back = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} });
    expect(back.instances.map((i) => i.id)).toEqual([id]);
  });

  it("applies unhealthyThreshold and healthyThreshold to consecutive results", async () => {
    const h = await setup({ unhealthyThreshold: 3, healthyThreshold: 2 });
    const s = await backend();
    const { id } = await register(h, "api", s.port);
    await s.nextRequest();
    s.status = 500;
    const healthAtFailure: string[] = [];
    h.registry.on("healthCheckFailed", (i) => healthAtFailure.push(h.registry.getInstance(i.id).health));
    while (healthAtFailure.length < 3) await once(h.registry, "healthCheckFailed");
    // The first two failures leave it healthy; the third turns it unhealthy.
    expect(healthAtFailure.slice(0, 2)).toEqual(["healthy", "healthy"]);
    await healthBecomes(h, id, "unhealthy");

    s.status = 200;
    const healthAtPass: string[] = [];
    h.registry.on("healthCheckPassed", (i) => healthAtPass.push(h.registry.getInstance(i.id).health));
    while (healthAtPass.length < 1) await once(h.registry, "healthCheckPassed");
    expect(healthAtPass[0]).toBe("unhealthy"); // one pass is not enough
    await healthBecomes(h, id, "healthy");
    expect(healthAtPass.length).toBeGreaterThanOrEqual(2);
  });

  it("removes an instance unhealthy for longer than deregisterAfter, as health_check_expired", async () => {
    const h = await setup({ deregisterAfter: 300 });
    const s = await backend();
    s.status = 503;
    const removed = once(h.registry, "instanceRemoved") as Promise<[Instance, RemovalReason]>;
    const started = Date.now();
    const { id } = await register(h, "api", s.port);
    const [instance, reason] = await removed;
    expect(instance.id).toBe(id);
    expect(reason).toBe("health_check_expired");
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    const err = await call(h.client, h.client.getInstance, { instanceId: id }).catch((e: unknown) => e);
    expect((err as { code: number }).code).toBe(5); // NOT_FOUND
  });

  it("keeps probing healthy instances on time while one is blackholed", async () => {
    const h = await setup({ healthCheckMaxRequests: 2, healthCheckTTL: 1500 });
    const hole = await startBlackhole();
    cleanup.push(() => hole.close());
    const healthy = await Promise.all([backend(), backend(), backend()]);
    await register(h, "api", hole.port);
    for (const s of healthy) await register(h, "api", s.port);
    // Within one blackhole timeout, every healthy backend is probed several times.
    const deadline = Date.now() + 1200;
    while (healthy.some((s) => s.requests.length < 5)) {
      if (Date.now() > deadline) {
        throw new Error(`healthy probes were delayed: ${healthy.map((s) => s.requests.length).join(",")} requests`);
      }
      await Promise.race(healthy.map((s) => s.nextRequest(1500)));
    }
    expect(hole.accepted).toBeGreaterThanOrEqual(1);
    expect(h.registry.probeLag().p99).toBeLessThan(200);
  });

  it("stops probing an instance once it is unregistered", async () => {
    const h = await setup();
    const s = await backend();
    const { id } = await register(h, "api", s.port);
    await s.nextRequest();
    await call(h.client, h.client.unregister, { instanceId: id });
    const seen = s.requests.length;
    // A second backend's probes are the clock: after four of its intervals, the
    // removed instance got at most the probe that was already in flight.
    const clock = await backend();
    await register(h, "clock", clock.port);
    while (clock.requests.length < 4) await clock.nextRequest();
    expect(s.requests.length - seen).toBeLessThanOrEqual(1);
  });
});
