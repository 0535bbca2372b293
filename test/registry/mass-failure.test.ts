import { credentials } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { HealthStatus, RegistryServiceClient, type GetByTypeResponse } from "../../gen/registry/v1/registry.js";
import { check, healthClient, HealthWatch } from "../support/health-client.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { recordings } from "../support/registry-recordings.js";

/**
 * Long enough that the guard trips well inside the interval in which every
 * probe starts failing (it needs 13 of the 20 instances), with room for a
 * loaded machine's probe lag.
 */
const INTERVAL_MS = 500;
const DEREGISTER_AFTER_MS = 400;

/**
 * A stack probing `perType` instances of "orders" and of "payments", each
 * behind a real /health server, and what the registry saw as it saw it:
 * passing probes, failing probes with their times, committed changes.
 */
async function fleet(cleanup: (() => unknown)[], env: Record<string, string>, perType: number, logger?: pino.Logger) {
  const stack = await startStack({ HEALTH_CHECKS: "true", ...env }, {}, logger);
  cleanup.push(() => stack.close());
  const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
  const health = healthClient(stack.address);
  cleanup.push(() => client.close(), () => health.close());
  const { waiter, passed, failedAt, changes } = recordings(stack.registry);
  const backends: HealthServer[] = [];
  const ids: string[] = [];
  for (const serviceType of ["orders", "payments"]) {
    for (let i = 0; i < perType; i++) {
      const backend = await startHealthServer();
      cleanup.push(() => backend.close());
      backends.push(backend);
      ids.push((await call(client, client.register, { serviceType, host: "127.0.0.1", port: backend.port, metadata: {} })).serviceId);
    }
  }
  await waiter.until(() => ids.every((id) => passed.has(id)), "a passing probe of every instance", 10_000);
  return { stack, client, health, waiter, failedAt, changes, backends, ids };
}

describe("registry-side fault: every probe fails at once", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it("holds every health state, removes nothing and reports NOT_SERVING until the backends return", async () => {
    // Two service types, twenty instances.
    const { stack, client, health, waiter, failedAt, changes, backends, ids } = await fleet(
      cleanup,
      { HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS), HEALTH_CHECK_TTL_MS: "200", DEREGISTER_AFTER_MS: String(DEREGISTER_AFTER_MS) },
      10,
    );
    const watch = new HealthWatch(health);
    const watchService = new HealthWatch(health, "registry.v1.RegistryService");
    cleanup.push(() => watch.cancel(), () => watchService.cancel());
    expect(await watch.next()).toBe("SERVING");
    expect(await watchService.next()).toBe("SERVING");

    // The registry's network "fails": no backend answers any more.
    const committedBefore = changes.length;
    await Promise.all(backends.map((b) => b.stop()));
    expect(await watch.next()).toBe("NOT_SERVING");
    expect(await watchService.next()).toBe("NOT_SERVING");
    expect(await check(health)).toBe("NOT_SERVING");
    expect(await check(health, "registry.v1.RegistryService")).toBe("NOT_SERVING");
    const healthz = await fetch(`${stack.httpUrl}/healthz`);
    expect(healthz.status).toBe(503);
    expect(await healthz.json()).toEqual({ status: "NOT_SERVING", reasons: ["mass_probe_failure"] });

    // Every instance goes on failing for longer than DEREGISTER_AFTER_MS and
    // another interval: without the guard each would have been marked
    // unhealthy and then removed by now.
    const failingFrom = Date.now();
    await waiter.until(
      () => ids.every((id) => (failedAt.get(id) ?? []).some((t) => t >= failingFrom + DEREGISTER_AFTER_MS + INTERVAL_MS)),
      "every instance failing for longer than DEREGISTER_AFTER_MS and an interval",
      10_000,
    );
    expect(changes.slice(committedBefore), "no health change or removal committed during the fault").toEqual([]);
    expect(stack.registry.size).toBe(20);
    for (const serviceType of ["orders", "payments"]) {
      const answer: GetByTypeResponse = await call(client, client.getByType, { serviceType, includeUnhealthy: false, includeDraining: false, selector: {} });
      expect(answer.instances.map((i) => i.health)).toEqual(Array(10).fill(HealthStatus.HEALTH_STATUS_HEALTHY));
      expect(answer.panic).toBe(false);
    }
    const during = parseExposition(await stack.metrics.exposition());
    expect(during.value("registry_mass_failure")).toBe(1);
    expect(during.value("registry_mass_failure_entries_total")).toBe(1);
    expect(during.value("registry_not_serving", { reason: "mass_probe_failure" })).toBe(1);

    // The network comes back: SERVING again, every instance still there and healthy.
    await Promise.all(backends.map((b) => b.resume()));
    expect(await watch.next()).toBe("SERVING");
    expect(await watchService.next()).toBe("SERVING");
    expect(await check(health)).toBe("SERVING");
    expect((await fetch(`${stack.httpUrl}/healthz`)).status).toBe(200);
    expect(parseExposition(await stack.metrics.exposition()).value("registry_mass_failure")).toBe(0);
    expect(stack.registry.getByType("orders").instances).toHaveLength(10);

    // A lone failure afterwards is the service's own: committed as usual, and the registry stays SERVING.
    const lone = ids[0] as string;
    await (backends[0] as HealthServer).stop();
    await waiter.until(
      () => changes.some((c) => c.kind === "health" && c.instance.id === lone && c.instance.health === "unhealthy"),
      "the lone failing instance to turn unhealthy",
      5000,
    );
    expect(await check(health)).toBe("SERVING");
    expect(stack.registry.massFailure).toEqual({ suspected: false, entries: 1 });
  }, 30_000);

  it("with the default threshold (60 %), 11 of 20 failing at once are the services' own failures; 13 of 20 are the registry's, logged once", async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { stack, health, waiter, failedAt, changes, backends, ids } = await fleet(
      cleanup,
      { HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS), HEALTH_CHECK_TTL_MS: "200", DEREGISTER_AFTER_MS: "0" },
      10,
      logger,
    );
    const watch = new HealthWatch(health);
    cleanup.push(() => watch.cancel());
    expect(await watch.next()).toBe("SERVING");
    const turned = (health: string, some: string[]) => () =>
      some.every((id) => changes.some((c) => c.kind === "health" && c.instance.id === id && c.instance.health === health));

    // 55 %: six of "orders" and five of "payments" stop answering.
    const few = [...backends.slice(0, 6), ...backends.slice(10, 15)];
    const fewIds = [...ids.slice(0, 6), ...ids.slice(10, 15)];
    await Promise.all(few.map((b) => b.stop()));
    await waiter.until(turned("unhealthy", fewIds), "the 11 failing instances to turn unhealthy", 10_000);
    expect(await check(health)).toBe("SERVING");
    expect(stack.registry.massFailure).toEqual({ suspected: false, entries: 0 });

    // They come back; then 65 %: seven of "orders" and six of "payments" stop at once.
    const committedBefore = changes.length;
    await Promise.all(few.map((b) => b.resume()));
    await waiter.until(
      () => fewIds.every((id) => changes.slice(committedBefore).some((c) => c.kind === "health" && c.instance.id === id && c.instance.health === "healthy")),
      "the 11 instances to pass again",
      10_000,
    );
    const many = [...backends.slice(0, 7), ...backends.slice(10, 16)];
    const manyIds = [...ids.slice(0, 7), ...ids.slice(10, 16)];
    const failingFrom = Date.now();
    await Promise.all(many.map((b) => b.stop()));
    expect(await watch.next()).toBe("NOT_SERVING");
    // Several more intervals of failures: still one error line for the fault.
    await waiter.until(
      () => manyIds.every((id) => (failedAt.get(id) ?? []).filter((t) => t >= failingFrom).length >= 4),
      "every stopped instance failing for several intervals",
      10_000,
    );
    const suspecting = lines.filter((l) => l.level === 50 && /suspecting this registry's own network/.test(l.msg));
    expect(suspecting).toHaveLength(1);
    expect(stack.registry.massFailure).toEqual({ suspected: true, entries: 1 });
  }, 40_000);

  it("trips when the probes hang (a blackholed path) and the bounded prober gets back fewer results than it has instances", async () => {
    // Each hung probe holds one of the 4 slots for its whole timeout: about 4 x (600 + 300) / 300 = 12
    // results come back per window, of 40 instances; every one a failure.
    const { stack, health, changes, backends } = await fleet(
      cleanup,
      { HEALTH_CHECK_INTERVAL_MS: "600", HEALTH_CHECK_TTL_MS: "300", HEALTH_CHECK_MAX_REQUESTS: "4", DEREGISTER_AFTER_MS: "300" },
      20,
    );
    const watch = new HealthWatch(health);
    cleanup.push(() => watch.cancel());
    expect(await watch.next()).toBe("SERVING");

    const committedBefore = changes.length;
    for (const b of backends) b.hanging = true;
    expect(await watch.next()).toBe("NOT_SERVING");
    // Nothing was committed on the way there, and nothing is removed while it lasts.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(changes.slice(committedBefore).filter((c) => c.kind !== "health" || c.instance.health !== "healthy")).toEqual([]);
    expect(stack.registry.size).toBe(40);

    for (const b of backends) b.hanging = false;
    expect(await watch.next()).toBe("SERVING");
  }, 30_000);
});
