import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { LastProbes } from "../../src/console/last-probes.js";
import type { ProbeResult } from "../../src/health/http-probe.js";
import { instrumentProbe } from "../../src/observability/instrumented-probe.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { Waiter } from "../support/waiter.js";

describe("LastProbes (in process, a real registry probing through a held probe function)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it("keeps an instance's latest probe, and nothing for a probe that finishes after its instance was removed", async () => {
    const waiter = new Waiter();
    const held: { id: string; resolve: (r: ProbeResult) => void }[] = [];
    let lastProbes: LastProbes | undefined;
    const probe = instrumentProbe(
      (target) =>
        new Promise<ProbeResult>((resolve) => {
          held.push({ id: target.id, resolve });
          waiter.notify();
        }),
      (_outcome, seconds, target, result) => {
        lastProbes?.probed(target.id, seconds, result.ok);
        waiter.notify();
      },
    );
    const registry = new ServiceRegistry({ logger: pino({ level: "silent" }), probe, healthChecks: true, healthCheckInterval: 50 });
    lastProbes = new LastProbes(registry);
    await registry.start();
    cleanup.push(() => registry.close());

    const kept = (await registry.register({ serviceType: "api", host: "127.0.0.1", port: 1 })).instance;
    await waiter.until(() => held.some((h) => h.id === kept.id), "the first probe to start", 5000);
    for (const h of held.splice(0)) h.resolve({ ok: true, status: 200 });
    await waiter.until(() => lastProbes?.probeOf(kept.id) !== undefined, "the first probe to be kept", 5000);
    expect(lastProbes.probeOf(kept.id)).toMatchObject({ ok: true });

    const gone = (await registry.register({ serviceType: "api", host: "127.0.0.1", port: 2 })).instance;
    await waiter.until(() => held.some((h) => h.id === gone.id), "the removed instance's probe to start", 5000);
    await registry.unregister(gone.id);
    let finished = 0;
    for (const h of held.splice(0)) {
      h.resolve({ ok: false, reason: "HTTP 503" });
      if (h.id === gone.id) finished++;
    }
    expect(finished).toBeGreaterThan(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lastProbes.probeOf(gone.id)).toBeUndefined();
  });
});
