import { status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { credentials } from "@grpc/grpc-js";
import { call, callError, keyAuth } from "../support/registry-harness.js";
import { FlakyStore } from "./flaky-store.js";
import { check, healthClient, HealthWatch } from "../support/health-client.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

const REGISTER = { serviceType: "api", port: 8080, host: "127.0.0.1", metadata: {} };

describe("grpc.health.v1", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function start(store?: FlakyStore, env: Record<string, string> = {}) {
    const server = await startStack(env, store ? { store } : {});
    cleanup.push(() => server.close());
    const health = healthClient(server.address);
    const registry = new RegistryServiceClient(server.address, credentials.createInsecure());
    cleanup.push(() => health.close(), () => registry.close());
    return { server, health, registry };
  }

  it("reports SERVING for the server and for registry.v1.RegistryService, NOT_FOUND for others", async () => {
    const { health } = await start();
    expect(await check(health)).toBe("SERVING");
    expect(await check(health, "registry.v1.RegistryService")).toBe("SERVING");
    const err = (await check(health, "no.such.Service").catch((e: ServiceError) => e)) as ServiceError;
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it("answers NOT_FOUND for an unknown name of any length with a short message (a long one would not fit a client's header limit)", async () => {
    const { health } = await start();
    const name = "x".repeat(200_000);
    const err = (await check(health, name).catch((e: ServiceError) => e)) as ServiceError;
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details.length).toBeLessThan(200);
    expect(err.details).toMatch(/^Health status unknown for service "x{64}"… \(200000 characters\)$/);
    // A name of ordinary length is named as it is.
    const short = (await check(health, "no.such.Service").catch((e: ServiceError) => e)) as ServiceError;
    expect(short.details).toBe("Health status unknown for service no.such.Service");
  });

  it("Watch streams the status and every change: NOT_SERVING while the store fails, SERVING once it commits again", async () => {
    const store = new FlakyStore();
    const { health, registry } = await start(store);
    const watch = new HealthWatch(health);
    cleanup.push(() => watch.cancel());
    const watchService = new HealthWatch(health, "registry.v1.RegistryService");
    cleanup.push(() => watchService.cancel());
    expect(await watch.next()).toBe("SERVING");
    expect(await watchService.next()).toBe("SERVING");

    store.failing = true;
    const failed = await callError(registry, registry.register, REGISTER, keyAuth());
    expect(failed.code).toBe(status.INTERNAL);
    expect(failed.details).toBe("internal error"); // the store's message stays in the log
    expect(await watch.next()).toBe("NOT_SERVING");
    expect(await watchService.next()).toBe("NOT_SERVING");
    expect(await check(health)).toBe("NOT_SERVING");

    store.failing = false;
    await call(registry, registry.register, REGISTER);
    expect(await watch.next()).toBe("SERVING");
    expect(await check(health, "registry.v1.RegistryService")).toBe("SERVING");
  });

  it("says SERVING again once the store takes writes, with no commit coming: it tries a write of its own every interval", async () => {
    const store = new FlakyStore();
    const { health, registry } = await start(store, { HEALTH_CHECK_INTERVAL_MS: "200" });
    const watch = new HealthWatch(health);
    cleanup.push(() => watch.cancel());
    expect(await watch.next()).toBe("SERVING");

    store.failing = true;
    await callError(registry, registry.register, REGISTER, keyAuth());
    expect(await watch.next()).toBe("NOT_SERVING");
    // Its own writes fail too while the store does: still NOT_SERVING.
    await waitFor(() => store.writeChecks >= 2, "two write checks");
    expect(await check(health)).toBe("NOT_SERVING");

    // A balancer routing by health sends no more writes; the store's recovery is found all the same.
    store.failing = false;
    expect(await watch.next()).toBe("SERVING");
    // And a later failure is reported again.
    store.failing = true;
    await callError(registry, registry.register, REGISTER, keyAuth());
    expect(await watch.next()).toBe("NOT_SERVING");
  });

  it("a domain error (unregistering an unknown instance) is an answer, not a store failure", async () => {
    const { health, registry } = await start();
    const err = await callError(registry, registry.unregister, { instanceId: "00000000-0000-0000-0000-000000000000" }, keyAuth());
    expect(err.code).toBe(status.NOT_FOUND);
    expect(await check(health)).toBe("SERVING");
  });

  it("List names both services; Watch of an unknown name says SERVICE_UNKNOWN and stays open until shutdown", async () => {
    const server = await startStack();
    const health = healthClient(server.address);
    cleanup.push(() => health.close());
    const list = (health as unknown as { list(req: object, cb: (err: ServiceError | null, res: { statuses: Record<string, { status: string }> }) => void): void }).list;
    const listed = await new Promise<Record<string, { status: string }>>((resolve, reject) =>
      list.call(health, {}, (err, res) => (err ? reject(err) : resolve(res.statuses))),
    );
    expect(listed).toEqual({ "": { status: "SERVING" }, "registry.v1.RegistryService": { status: "SERVING" } });
    const unknown = new HealthWatch(health, "no.such.Service");
    expect(await unknown.next()).toBe("SERVICE_UNKNOWN");
    expect(unknown.error ?? unknown.ended).toBe(false);
    await server.close();
    expect((await unknown.status()).code).toBe(status.UNAVAILABLE);
  });

  it("at shutdown, Watch says NOT_SERVING, then ends with UNAVAILABLE without holding the shutdown", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: "15000" });
    const health = healthClient(server.address);
    cleanup.push(() => health.close());
    const watch = new HealthWatch(health);
    expect(await watch.next()).toBe("SERVING");
    const started = Date.now();
    const closed = server.close();
    expect(await watch.next()).toBe("NOT_SERVING");
    const end = (await watch.next().catch((e: ServiceError) => e)) as ServiceError;
    expect(end.code).toBe(status.UNAVAILABLE);
    await closed;
    expect(Date.now() - started).toBeLessThan(5000); // not the 15 s grace period
  });
});
