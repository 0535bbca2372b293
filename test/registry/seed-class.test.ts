import { once } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ServiceRegistry } from "../../src/lib.js";
import type { Instance } from "../../src/registry/types.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";

/**
 * The seed README's library example, as a user copies it: `new
 * ServiceRegistry({...})` with the seed's option names and defaults, `logger`
 * defaulting to console, `registry.on("instanceRegistered", ...)`, and a
 * `failedChecks` map that unregisters an instance after repeated failures.
 */
describe("ServiceRegistry as the seed's README shows it", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function backend(): Promise<HealthServer> {
    const s = await startHealthServer({ status: "ok" });
    cleanup.push(() => s.close());
    return s;
  }

  it("takes the seed's options and defaults, with console as the logger, and emits instanceRegistered", async () => {
    const info = vi.spyOn(console, "info").mockImplementation(() => {});
    const registry = new ServiceRegistry({
      healthChecks: true,
      healthCheckBatchSize: 100,
      healthCheckInterval: 5000,
      healthCheckMaxRequests: 10,
      healthCheckTTL: 2000,
      logger: console,
    });
    await registry.start();
    cleanup.push(() => registry.close());
    const seen: Instance[] = [];
    registry.on("instanceRegistered", (instance) => {
      seen.push(instance);
    });
    const s = await backend();
    const passed = once(registry, "healthCheckPassed") as Promise<[Instance, unknown]>;
    const { instance } = await registry.register({ serviceType: "product-service", host: "127.0.0.1", port: s.port });
    expect(seen.map((i) => i.id)).toEqual([instance.id]);
    // A new instance is probed soon after registering, not one interval later.
    const [probed, data] = await passed;
    expect(probed.id).toBe(instance.id);
    expect(data).toEqual({ status: "ok" });
    // console gets the message first, then the fields, as console output reads.
    expect(info).toHaveBeenCalledWith("instance registered", expect.objectContaining({ instanceId: instance.id, serviceType: "product-service" }));
  });

  it("logs to console when no logger is given", async () => {
    const info = vi.spyOn(console, "info").mockImplementation(() => {});
    const registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    cleanup.push(() => registry.close());
    const { instance } = await registry.register({ serviceType: "api", host: "10.0.0.1", port: 80 });
    expect(info).toHaveBeenCalledWith("instance registered", expect.objectContaining({ instanceId: instance.id }));
  });

  it("accepts any object with info/warn/error/debug", async () => {
    const lines: string[] = [];
    const logger = {
      debug: (...args: unknown[]) => lines.push(`debug ${String(args[0])}`),
      info: (...args: unknown[]) => lines.push(`info ${String(args[0])}`),
      warn: (...args: unknown[]) => lines.push(`warn ${String(args[0])}`),
      error: (...args: unknown[]) => lines.push(`error ${String(args[0])}`),
    };
    const registry = new ServiceRegistry({ healthChecks: false, logger });
    await registry.start();
    cleanup.push(() => registry.close());
    const { instance } = await registry.register({ serviceType: "api", host: "10.0.0.1", port: 80 });
    await registry.unregister(instance.id);
    expect(lines).toEqual(["info instance registered", "info instance removed"]);
  });

  it("runs the failedChecks example: a listener counts failures and unregisters after three", async () => {
    vi.spyOn(console, "info").mockImplementation(() => {});
    // The seed's example, with a short interval so three probes fit in a test.
    const registry = new ServiceRegistry({ healthCheckInterval: 100, healthCheckTTL: 500, logger: console });
    await registry.start();
    cleanup.push(() => registry.close());

    const failedChecks = new Map<string, number>();
    registry.on("healthCheckFailed", (instance, reason) => {
      const count = (failedChecks.get(instance.id) ?? 0) + 1;
      failedChecks.set(instance.id, count);
      console.info(`${instance.id} failed its health check (${count}): ${reason}`);
      if (count === 3) void registry.unregister(instance.id);
    });
    registry.on("healthCheckPassed", (instance) => {
      failedChecks.delete(instance.id);
    });

    const s = await backend();
    s.status = 503;
    const removed = once(registry, "instanceRemoved") as Promise<[Instance, string]>;
    const { instance } = await registry.register({ serviceType: "product-service", host: "127.0.0.1", port: s.port });
    const [gone, reason] = await removed;
    expect(gone.id).toBe(instance.id);
    expect(reason).toBe("unregistered");
    expect(failedChecks.get(instance.id)).toBeGreaterThanOrEqual(3);
    expect(registry.getByType("product-service", true).instances).toEqual([]);
  });
});
