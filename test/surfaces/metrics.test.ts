import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { tempDataDir } from "../support/server-process.js";
import { call, callError, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { parseExposition, type Exposition } from "../support/prometheus-text.js";
import { startStack } from "../support/stack.js";

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Scrapes /metrics over real HTTP and parses it. */
async function scrape(server: Stack): Promise<Exposition> {
  const res = await fetch(`${server.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** Scrapes until `check` holds (bounded), for values that follow an asynchronous event. */
async function scrapeUntil(server: Stack, what: string, check: (m: Exposition) => boolean, timeoutMs = 5000): Promise<Exposition> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(server);
    if (check(m)) return m;
    if (Date.now() > deadline) throw new Error(`metrics never showed ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("Prometheus /metrics on HTTP_PORT", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function start(env: Record<string, string> = {}) {
    const server = await startStack(env);
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    cleanup.push(() => server.close(), () => client.close());
    return { server, client };
  }

  async function healthServer(): Promise<HealthServer> {
    const h = await startHealthServer();
    cleanup.push(() => h.close());
    return h;
  }

  it("counts RPCs by method and code, with latency histograms, and commits by operation", async () => {
    const { server, client } = await start();
    const before = await scrape(server);
    expect(before.types.get("grpc_server_handled_total")).toBe("counter");
    expect(before.types.get("grpc_server_handling_seconds")).toBe("histogram");
    expect(before.value("grpc_server_handled_total", { grpc_method: "Register" })).toBeUndefined();

    for (const port of [8001, 8002]) {
      await call(client, client.register, { serviceType: "api", port, host: "10.0.0.1", metadata: {} });
    }
    await callError(client, client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, keyAuth("wrong-key-0123456789"));
    await callError(client, client.unregister, { instanceId: "00000000-0000-0000-0000-000000000000" }, keyAuth());

    const m = await scrape(server);
    const register = { grpc_service: "registry.v1.RegistryService", grpc_method: "Register", grpc_type: "unary" };
    expect(m.value("grpc_server_started_total", register)).toBe(2);
    expect(m.value("grpc_server_handled_total", { ...register, grpc_code: "OK" })).toBe(2);
    expect(m.value("grpc_server_handling_seconds_count", { ...register, grpc_code: "OK" })).toBe(2);
    expect(m.value("grpc_server_handling_seconds_bucket", { ...register, grpc_code: "OK", le: "+Inf" })).toBe(2);
    expect(m.value("grpc_server_handled_total", { grpc_method: "GetByType", grpc_code: "Unauthenticated" })).toBe(1);
    expect(m.value("grpc_server_handled_total", { grpc_method: "Unregister", grpc_code: "NotFound" })).toBe(1);
    expect(m.value("registry_store_commit_duration_seconds_count", { op: "register", outcome: "ok" })).toBe(2);
    expect(m.value("registry_store_commit_duration_seconds_count", { op: "remove", outcome: "rejected" })).toBe(1);
    expect(m.value("registry_revision")).toBe(2);
  });

  it("shows instances by type and health, probes by outcome with latency, and the probe lag", async () => {
    const { server, client } = await start({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100" });
    const up = await healthServer();
    const down = await healthServer();
    down.status = 503;
    const failed = new Promise<void>((resolve) => server.registry.once("healthCheckFailed", () => resolve()));
    await call(client, client.register, { serviceType: "api", port: up.port, host: "127.0.0.1", metadata: {} });
    await call(client, client.register, { serviceType: "api", port: down.port, host: "127.0.0.1", metadata: {} });
    await call(client, client.register, { serviceType: "db", port: up.port, host: "127.0.0.1", metadata: {} });
    await failed;

    const m = await scrapeUntil(server, "the failing instance as unhealthy and passing probes", (s) =>
      s.value("registry_instances", { service_type: "api", health: "unhealthy" }) === 1 &&
      (s.value("registry_health_probes_total", { outcome: "pass" }) ?? 0) >= 2,
    );
    expect(m.value("registry_instances", { service_type: "api", health: "healthy" })).toBe(1);
    expect(m.value("registry_instances", { service_type: "db", health: "healthy" })).toBe(1);
    expect(m.value("registry_instances", { service_type: "db", health: "unhealthy" })).toBe(0);
    expect(m.value("registry_health_probes_total", { outcome: "http_status" })).toBeGreaterThanOrEqual(1);
    const probes = m.value("registry_health_probes_total") ?? 0;
    expect(m.value("registry_health_probe_duration_seconds_count")).toBe(probes);
    expect(m.types.get("registry_health_probe_duration_seconds")).toBe("histogram");
    for (const quantile of ["0.5", "0.99", "1"]) {
      expect(m.value("registry_health_probe_lag_seconds", { quantile })).toBeGreaterThanOrEqual(0);
    }
    expect(m.value("registry_store_commit_duration_seconds_count", { op: "setHealth", outcome: "ok" })).toBeGreaterThanOrEqual(1);
  });

  it("tracks open watch streams, events sent by type, parked watchers and resets", async () => {
    const { server, client } = await start({ WATCH_QUEUE_LIMIT: "1" });
    const a = await call(client, client.register, { serviceType: "api", port: 8001, host: "10.0.0.1", metadata: {} });
    await call(client, client.register, { serviceType: "api", port: 8002, host: "10.0.0.2", metadata: {} });

    const watch = WatchCursor.open(client, { serviceType: "api" });
    cleanup.push(() => watch.cancel());
    const [, , synced] = await watch.take(3);
    expect(synced?.type).toBe(EventType.EVENT_TYPE_SYNCED);
    let m = await scrape(server);
    expect(m.value("registry_watch_streams")).toBe(1);
    expect(m.value("registry_watch_events_sent_total", { type: "snapshot" })).toBe(2);
    expect(m.value("registry_watch_events_sent_total", { type: "synced" })).toBe(1);

    await call(client, client.unregister, { instanceId: a.serviceId });
    expect((await watch.next()).type).toBe(EventType.EVENT_TYPE_INSTANCE_REMOVED);
    m = await scrape(server);
    expect(m.value("registry_watch_events_sent_total", { type: "removed" })).toBe(1);

    // A resume point from another data set gets RESET.
    const reset = WatchCursor.open(client, { serviceType: "api", sinceRevision: 1, epoch: "another-epoch" });
    cleanup.push(() => reset.cancel());
    expect((await reset.next()).type).toBe(EventType.EVENT_TYPE_RESET);
    m = await scrape(server);
    expect(m.value("registry_watcher_resets_total")).toBe(1);
    expect(m.value("registry_watch_events_sent_total", { type: "reset" })).toBe(1);
    expect(m.value("registry_watch_streams")).toBe(2);

    // An in-process watcher nobody reads fills its queue (limit 1) and is parked.
    const idle = server.registry.watch({ serviceType: "db", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} });
    cleanup.push(() => idle.end());
    for (const port of [5432, 5433, 5434]) {
      await call(client, client.register, { serviceType: "db", port, host: "10.0.0.3", metadata: {} });
    }
    m = await scrape(server);
    expect(m.value("registry_watchers", { state: "parked" })).toBe(1);

    watch.cancel();
    reset.cancel();
    await scrapeUntil(server, "no open watch streams", (s) => s.value("registry_watch_streams") === 0);
  });

  it("carries no instance id, token, host or port in any label", async () => {
    const { server, client } = await start();
    const reg = await call(client, client.register, { serviceType: "api", port: 8765, host: "10.9.8.7", metadata: { zone: "eu-1" } });
    await call(client, client.getInstance, { instanceId: reg.serviceId });
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    for (const secretOrUnbounded of [reg.serviceId, reg.token, "10.9.8.7", "eu-1"]) {
      expect(text).not.toContain(secretOrUnbounded);
    }
    const samples = parseExposition(text).samples;
    // The port in label values only: a sample's value (a byte count, a time) may hold those digits by chance.
    expect(samples.flatMap((s) => Object.values(s.labels)).filter((v) => v.includes("8765"))).toEqual([]);
    const labels = new Set(samples.flatMap((s) => Object.keys(s.labels)));
    expect([...labels].sort()).toEqual(
      expect.arrayContaining(["grpc_code", "grpc_method", "grpc_service", "grpc_type", "health", "service_type"]),
    );
    for (const label of labels) expect(label).not.toMatch(/id|host|token|peer|address/i);
  });

  it("gives each server its own metrics registry", async () => {
    const one = await start();
    const two = await start();
    await call(one.client, one.client.register, { serviceType: "api", port: 8001, host: "10.0.0.1", metadata: {} });
    expect((await scrape(one.server)).value("grpc_server_handled_total", { grpc_method: "Register" })).toBe(1);
    expect((await scrape(two.server)).value("grpc_server_handled_total", { grpc_method: "Register" })).toBeUndefined();
    expect((await scrape(two.server)).value("registry_instances")).toBeUndefined();
  });

  it("keeps registry_instances to the largest service types however many a key holder registers; the rest are summed", async () => {
    const { server } = await start({ METRICS_SERVICE_TYPES: "3" });
    // 2,000 types of one instance each, and three larger ones.
    for (let i = 0; i < 2000; i++) await server.registry.register({ serviceType: `flood-${i}`, host: "10.0.0.1", port: 1 });
    for (const [type, n] of [["big", 4], ["bigger", 5], ["biggest", 6]] as const) {
      for (let p = 0; p < n; p++) await server.registry.register({ serviceType: type, host: "10.0.0.1", port: 1 + p });
    }
    const m = await scrape(server);
    const series = m.samples.filter((s) => s.name === "registry_instances");
    expect(series.map((s) => `${s.labels.service_type}/${s.labels.health}=${s.value}`).sort()).toEqual(
      ["_other/healthy=2000", "_other/unhealthy=0", "big/healthy=4", "big/unhealthy=0", "bigger/healthy=5", "bigger/unhealthy=0", "biggest/healthy=6", "biggest/unhealthy=0"].sort(),
    );
    // Every type is still covered by an alert on the type counts.
    expect(m.value("registry_service_types", { state: "total" })).toBe(2003);
    expect(m.value("registry_service_types", { state: "without_healthy" })).toBe(0);
  });

  it("reads the service counts once for both service gauges, and again only after a change", async () => {
    const { server } = await start();
    await server.registry.register({ serviceType: "api", host: "10.0.0.1", port: 1 });
    const reads = vi.spyOn(server.registry, "listServices");
    let m = await scrape(server);
    expect(reads).toHaveBeenCalledTimes(1);
    expect(m.value("registry_instances", { service_type: "api", health: "healthy" })).toBe(1);
    expect(m.value("registry_service_types", { state: "total" })).toBe(1);
    await scrape(server);
    expect(reads).toHaveBeenCalledTimes(1); // nothing changed: the same counts
    await server.registry.register({ serviceType: "web", host: "10.0.0.1", port: 2 });
    m = await scrape(server);
    expect(reads).toHaveBeenCalledTimes(2);
    expect(m.value("registry_instances", { service_type: "web", health: "healthy" })).toBe(1);
    expect(m.value("registry_service_types", { state: "total" })).toBe(2);
  });

  it("counts HTTP requests by route template, and answers unknown paths with a JSON 404", async () => {
    const { server } = await start();
    const missing = await fetch(`${server.httpUrl}/no/such/path`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: "NOT_FOUND", message: "no such route" } });
    const wrongMethod = await fetch(`${server.httpUrl}/metrics`, { method: "DELETE" });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("GET");
    await scrape(server);
    const m = await scrape(server);
    expect(m.value("registry_http_requests_total", { route: "/metrics", method: "GET", code: "200" })).toBe(1);
    expect(m.value("registry_http_requests_total", { route: "unmatched", code: "404" })).toBe(1);
    expect(m.value("registry_http_requests_total", { route: "/metrics", method: "DELETE", code: "405" })).toBe(1);
  });
});

describe("/healthz", () => {
  it("answers 200 SERVING while serving; the port is closed once the server has shut down", async () => {
    const server = await startStack();
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await res.json()).toEqual({ status: "SERVING" });
    expect((await scrape(server)).value("registry_serving")).toBe(1);
    await server.close();
    await expect(fetch(`${server.httpUrl}/healthz`)).rejects.toThrow();
  });

  it("reports NOT_SERVING (503) while the store is failing", async () => {
    const { FlakyStore } = await import("./flaky-store.js");
    const store = new FlakyStore();
    const server = await startStack({}, { store });
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    try {
      store.failing = true;
      const err = await callError(client, client.register, { serviceType: "api", port: 1, host: "10.0.0.1", metadata: {} }, keyAuth());
      expect(err.code).toBe(status.INTERNAL);
      const res = await fetch(`${server.httpUrl}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: "NOT_SERVING", reasons: ["store_failing"] });
      const m = await scrape(server);
      expect(m.value("registry_serving")).toBe(0);
      expect(m.value("registry_not_serving", { reason: "store_failing" })).toBe(1);
      expect(m.value("registry_store_commit_duration_seconds_count", { op: "register", outcome: "error" })).toBe(1);
    } finally {
      client.close();
      await server.close();
    }
  });
});
