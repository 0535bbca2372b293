import { afterEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change } from "../../src/registry/types.js";
import { Waiter } from "../support/waiter.js";

/**
 * A session opening or ending decides its instance's health at once and is
 * never lost, even when it comes while another health change of the
 * instance is being committed, or while the mass-failure guard holds every
 * health state (review findings of issue #26).
 */

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const registries: ServiceRegistry[] = [];
afterEach(async () => {
  for (const r of registries.splice(0)) await r.close();
});

async function started(options: ConstructorParameters<typeof ServiceRegistry>[0]): Promise<{ registry: ServiceRegistry; healths: Change[]; waiter: Waiter }> {
  const registry = new ServiceRegistry({ logger: silent, ...options });
  registries.push(registry);
  await registry.start();
  const healths: Change[] = [];
  const waiter = new Waiter();
  registry.on("change", (c) => {
    if (c.kind === "health") healths.push(c);
    waiter.notify();
  });
  return { registry, healths, waiter };
}

describe("session health is reconciled", () => {
  it("a session reopened while the failure of the last one is being committed makes the instance HEALTHY again", async () => {
    const { registry, healths, waiter } = await started({ healthChecks: false, healthCheckInterval: 60_000 });
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "session" } });
    const first = registry.openSession(instance.id, () => undefined);
    first.close("session closed by the instance");
    // At once, as a client reconnecting right after its stream ended: the failure is still in flight.
    registry.openSession(instance.id, () => undefined);
    await waiter.until(() => healths.length === 2, "the failure, then the recovery", 3000);
    expect(healths.map((c) => c.instance.health)).toEqual(["unhealthy", "healthy"]);
    expect(registry.getInstance(instance.id).health).toBe("healthy");
  });

  it("a session opened while the guard suspects this registry's network counts once the guard leaves", async () => {
    let probesPass = true;
    const { registry, healths, waiter } = await started({
      healthCheckInterval: 50,
      healthCheckTTL: 50,
      massFailureThreshold: 60,
      massFailureMinInstances: 3,
      massFailureMinServiceTypes: 1,
      deregisterAfter: 0,
      probe: async () => (probesPass ? { ok: true, status: 200 } : { ok: false, reason: "connection refused (ECONNREFUSED)" }),
    });
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "session" } });
    registry.openSession(instance.id, () => undefined).close("session closed by the instance");
    await waiter.until(() => healths.some((c) => c.instance.id === instance.id), "the session instance to fail", 3000);
    for (let port = 10; port < 15; port++) await registry.register({ serviceType: "web", host: "127.0.0.1", port });
    const suspected = new Promise<void>((resolve) => registry.on("massFailure", (s) => s && resolve()));
    probesPass = false;
    await suspected;
    // Its session opens while every health state is held.
    registry.openSession(instance.id, () => undefined);
    expect(registry.getInstance(instance.id).health).toBe("unhealthy");
    const left = new Promise<void>((resolve) => registry.on("massFailure", (s) => !s && resolve()));
    probesPass = true;
    await left;
    await waiter.until(() => registry.getInstance(instance.id).health === "healthy", "the held session to make the instance healthy", 3000);
  });
});
