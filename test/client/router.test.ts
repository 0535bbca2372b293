import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { ResolverUpdate } from "../../src/client/registry-resolver.js";
import { startBackend, type Backend } from "../../examples/router/backend.js";
import { startRouter, type Router } from "../../examples/router/router.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";
import { freePort, Log } from "./helpers.js";

const INTERVAL_MS = 300;
const TTL_MS = 500;
/** Time for a committed change to travel registry → watch → resolver → channel. */
const PROPAGATION_MS = 300;
const FAST = { initialMs: 20, maxMs: 300 };

/** One GET /hello through the router: who answered, or the error. */
async function hello(router: Router): Promise<{ backend?: string; error?: string }> {
  const res = await fetch(`http://127.0.0.1:${router.port}/hello?name=test`);
  const body = (await res.json()) as { backend?: string; error?: string };
  return res.ok ? body : { error: `${res.status} ${body.error}` };
}

/**
 * Calls through the router until every one of `names` has answered; fails
 * after `timeoutMs` (time, not a call count: a backend whose probe was slow
 * on a loaded machine is back within a health interval).
 */
async function reachAll(router: Router, names: readonly string[], timeoutMs = 5000): Promise<void> {
  const missing = new Set(names);
  const deadline = Date.now() + timeoutMs;
  while (missing.size > 0 && Date.now() < deadline) {
    const r = await hello(router);
    if (r.backend) missing.delete(r.backend);
    else await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect([...missing], "backends never reached through the router").toEqual([]);
}

/** Calls through the router back to back until stopped; collects every failure. */
function keepCalling(router: Router): { stop(): Promise<{ calls: number; failures: string[] }> } {
  let running = true;
  const failures: string[] = [];
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const r = await hello(router);
      calls++;
      if (r.error) failures.push(r.error);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { calls, failures };
    },
  };
}

async function startRegistry(env: Record<string, string>): Promise<ServerProcess> {
  return startServerProcess({
    SERVICE_REGISTRATION_KEY: TEST_KEY,
    HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS),
    HEALTH_CHECK_TTL_MS: String(TTL_MS),
    SHUTDOWN_GRACE_MS: "300",
    ...env,
  });
}

async function restart(registry: ServerProcess, env: Record<string, string>): Promise<ServerProcess> {
  registry.kill("SIGTERM");
  expect(await registry.exited).toBe(0);
  return startRegistry(env);
}

describe("router over registerSelf backends, through the registry:/// resolver (SQLite registry)", () => {
  let env: Record<string, string>;
  let registry: ServerProcess;
  let address: string;
  let routerClient: RegistryClient;
  let router: Router;
  const backends: Backend[] = [];
  const updates = new Log<ResolverUpdate>();
  const addressOf = (b: Backend): string => `127.0.0.1:${b.port}`;
  const lastUpdate = (): ResolverUpdate | undefined => updates.items.at(-1);
  const backend = async (name: string): Promise<Backend> => {
    const b = await startBackend({ name, registry: [address], key: TEST_KEY, checkIntervalMs: INTERVAL_MS, backoff: FAST });
    backends.push(b);
    return b;
  };

  beforeAll(async () => {
    env = { PORT: String(await freePort()), STORE: "sqlite", DATA_DIR: tempDataDir() };
    registry = await startRegistry(env);
    address = `127.0.0.1:${env.PORT}`;
    await Promise.all(["b1", "b2", "b3"].map(backend));
    routerClient = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY }, backoff: FAST });
    router = await startRouter({ registry: routerClient, onUpdate: (u) => updates.push(u) });
  });

  afterAll(async () => {
    await router?.close();
    routerClient?.close();
    await Promise.all(backends.map((b) => b.stop()));
    registry?.kill("SIGKILL");
  });

  it("spreads calls over all 3 backends", async () => {
    await updates.until(() => lastUpdate()?.addresses.length === 3, "the resolver to list 3 backends");
    await reachAll(router, ["b1", "b2", "b3"]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const { backend: name, error } = await hello(router);
      expect(error).toBeUndefined();
      counts.set(name!, (counts.get(name!) ?? 0) + 1);
    }
    // round_robin over three ready backends: an even share each.
    expect([...counts.keys()].sort()).toEqual(["b1", "b2", "b3"]);
    for (const n of counts.values()) expect(n).toBeGreaterThanOrEqual(8);
  });

  it("removes a stopped backend within one health interval plus the probe timeout, and calls keep succeeding", async () => {
    const victim = backends[0]!;
    const load = keepCalling(router);
    const from = updates.items.length;
    const stoppedAt = Date.now();
    await victim.kill(); // no unregister: only the registry's probe can notice
    await updates.find((u) => !u.addresses.includes(addressOf(victim)), "the stopped backend to leave the list", 5000, from);
    const took = Date.now() - stoppedAt;
    expect(took).toBeLessThan(INTERVAL_MS + TTL_MS + PROPAGATION_MS);
    expect(lastUpdate()?.addresses).toHaveLength(2);
    const { calls, failures } = await load.stop();
    expect(calls).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    await reachAll(router, ["b2", "b3"]);
  });

  it("sends calls to a new backend without restarting the channel", async () => {
    const channel = router.greeter;
    const b4 = await backend("b4");
    await updates.find((u) => u.addresses.includes(addressOf(b4)), "the new backend in the list");
    await reachAll(router, ["b2", "b3", "b4"]);
    expect(router.greeter).toBe(channel);
  });

  it("survives a registry restart: calls keep succeeding, services keep their registrations, updates resume", async () => {
    const live = backends.slice(1);
    const ids = live.map((b) => b.registration.id);
    const lost: string[] = [];
    for (const b of live) b.registration.on("lost", () => lost.push(b.name));
    const load = keepCalling(router);

    registry = await restart(registry, env);

    // The router's watch resumes: a backend registered after the restart reaches it.
    const b5 = await backend("b5");
    await updates.find((u) => u.addresses.includes(addressOf(b5)), "a post-restart registration in the list", 10_000);
    await reachAll(router, ["b2", "b3", "b4", "b5"]);
    const { calls, failures } = await load.stop();
    expect(failures, "calls through the router during the restart").toEqual([]);
    expect(calls).toBeGreaterThan(10);

    // Registered services kept their ids and tokens (the SQLite store kept them).
    expect(lost, "services that re-registered").toEqual([]);
    expect(live.map((b) => b.registration.id)).toEqual(ids);
    const observer = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY } });
    try {
      const { instances } = await observer.getByType("greeter", { includeUnhealthy: true });
      const killed = backends[0]!.registration.id; // still registered, unhealthy
      expect(instances.map((i) => i.id).sort()).toEqual([killed, ...ids, b5.registration.id].sort());
      // Each service's own credentials still work.
      for (const b of live) await observer.getInstance(b.registration.id, { auth: b.registration.auth });
    } finally {
      observer.close();
    }
  });
});

describe("a registry that lost its data (memory store restarted)", () => {
  it("gets every registerSelf back within a few seconds, and the router follows", async () => {
    const env = { PORT: String(await freePort()), STORE: "memory" };
    let registry = await startRegistry(env);
    const address = `127.0.0.1:${env.PORT}`;
    const backends = await Promise.all(
      ["m1", "m2", "m3"].map((name) =>
        startBackend({ name, registry: [address], key: TEST_KEY, checkIntervalMs: INTERVAL_MS, backoff: FAST }),
      ),
    );
    const routerClient = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY }, backoff: FAST });
    const updates = new Log<ResolverUpdate>();
    const router = await startRouter({ registry: routerClient, onUpdate: (u) => updates.push(u) });
    const observer = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY } });
    try {
      await reachAll(router, ["m1", "m2", "m3"]);
      const oldIds = backends.map((b) => b.registration.id);
      const reRegistered = new Log<string>();
      for (const b of backends) b.registration.on("registered", () => reRegistered.push(b.name));

      registry = await restart(registry, env);
      const back = Date.now();
      await reRegistered.until((names) => new Set(names).size === 3, "all three services to register again", 5000);
      expect(Date.now() - back).toBeLessThan(4000);

      const { instances } = await observer.getByType("greeter", { includeUnhealthy: true });
      expect(instances).toHaveLength(3); // once each: no duplicates
      expect(instances.map((i) => i.id).sort()).toEqual(backends.map((b) => b.registration.id).sort());
      expect(instances.some((i) => oldIds.includes(i.id))).toBe(false);
      await updates.until((u) => u.at(-1)?.addresses.length === 3, "the router to see the new registrations");
      await reachAll(router, ["m1", "m2", "m3"]);
    } finally {
      observer.close();
      await router.close();
      routerClient.close();
      await Promise.all(backends.map((b) => b.stop()));
      registry.kill("SIGKILL");
    }
  });
});
