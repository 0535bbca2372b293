import { credentials, status } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, RemovalReason, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call, callError, instanceAuth, keyAuth, TEST_KEY, WatchCursor } from "../support/registry-harness.js";
import { tempDataDir } from "../support/server-process.js";
import { startStack } from "../support/stack.js";

const KEY = { authorization: `Bearer ${TEST_KEY}` };
const ALL = { includeUnhealthy: true, includeDraining: true, selector: {} };
const DEFAULT = { includeUnhealthy: false, includeDraining: false, selector: {} };

/** Drain (issue #25) through the server users run: gRPC, HTTP, the watch stream, the deadline, a restart. */
describe("Drain", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function stack(env: Record<string, string> = {}) {
    const server = await startStack(env);
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    cleanups.push(() => server.close());
    cleanups.push(() => client.close());
    const http = (path: string, init: RequestInit = {}) => fetch(`${server.httpUrl}${path}`, init);
    return { server, client, http };
  }

  async function backend(): Promise<HealthServer> {
    const b = await startHealthServer();
    cleanups.push(() => b.close());
    return b;
  }

  const register = (c: RegistryServiceClient, port: number) =>
    call(c, c.register, { serviceType: "api", port, host: "127.0.0.1", metadata: {} }, keyAuth());

  async function nextChange(w: WatchCursor): Promise<WatchInstancesResponse> {
    for (;;) {
      const m = await w.next(10_000);
      if (m.type !== EventType.EVENT_TYPE_BOOKMARK) return m;
    }
  }

  it("leaves a draining instance out of GetByType unless asked, streams DRAINING, counts it in ListServices, and is one way", async () => {
    const { client } = await stack();
    const kept = await register(client, 9001);
    const drained = await register(client, 9002);
    const watch = WatchCursor.open(client, { serviceType: "api" }, keyAuth());
    cleanups.push(() => watch.cancel());
    while ((await watch.next(10_000)).type !== EventType.EVENT_TYPE_SYNCED);

    const answer = await call(client, client.drain, { instanceId: drained.serviceId }, instanceAuth(drained.serviceId, drained.token));
    expect(answer.instance).toMatchObject({ id: drained.serviceId, draining: true, drainingSince: expect.any(Date) });
    expect(await nextChange(watch)).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_DRAINING, revision: answer.revision, instance: { draining: true } });

    expect((await call(client, client.getByType, { serviceType: "api", ...DEFAULT }, keyAuth())).instances.map((i) => i.id)).toEqual([kept.serviceId]);
    const withDraining = await call(client, client.getByType, { serviceType: "api", ...DEFAULT, includeDraining: true }, keyAuth());
    expect(withDraining.instances.map((i) => i.id)).toEqual([kept.serviceId, drained.serviceId]);
    const services = await call(client, client.listServices, {}, keyAuth());
    expect(services.services).toEqual([expect.objectContaining({ serviceType: "api", healthyCount: 2, totalCount: 2, drainingCount: 1 })]);

    // Again, by the key: nothing changes, the same revision answers.
    const again = await call(client, client.drain, { instanceId: drained.serviceId }, keyAuth());
    expect(again.revision).toBe(answer.revision);
    // Still reachable by its own credentials until it goes.
    expect((await call(client, client.getInstance, { instanceId: drained.serviceId }, instanceAuth(drained.serviceId, drained.token))).instance?.draining).toBe(true);
  });

  it("refuses a Drain by another instance, of an unknown id, and of no id, each with a status naming the problem", async () => {
    const { client } = await stack();
    const a = await register(client, 9011);
    const b = await register(client, 9012);
    const byOther = await callError(client, client.drain, { instanceId: a.serviceId }, instanceAuth(b.serviceId, b.token));
    expect(byOther.code).toBe(status.PERMISSION_DENIED);
    const unknown = await callError(client, client.drain, { instanceId: "00000000-0000-4000-8000-000000000000" }, keyAuth());
    expect(unknown.code).toBe(status.NOT_FOUND);
    const empty = await callError(client, client.drain, { instanceId: "" }, keyAuth());
    expect(empty.code).toBe(status.INVALID_ARGUMENT);
    expect(empty.details).toMatch(/instance_id/);
    const noCredentials = await callError(client, client.drain, { instanceId: a.serviceId }, new (await import("@grpc/grpc-js")).Metadata());
    expect(noCredentials.code).toBe(status.UNAUTHENTICATED);
  });

  it("keeps probing a draining instance, and removes it at the drain deadline with DRAIN_EXPIRED", async () => {
    const { client } = await stack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", HEALTH_CHECK_TTL_MS: "300", DRAIN_TIMEOUT_MS: "1500" });
    const b = await backend();
    const reg = await register(client, b.port);
    const watch = WatchCursor.open(client, { serviceType: "api" }, keyAuth());
    cleanups.push(() => watch.cancel());
    while ((await watch.next(10_000)).type !== EventType.EVENT_TYPE_SYNCED);
    await call(client, client.drain, { instanceId: reg.serviceId }, keyAuth());
    expect((await nextChange(watch)).type).toBe(EventType.EVENT_TYPE_INSTANCE_DRAINING);

    const probesBefore = b.requests.length;
    b.status = 503;
    const failed = await nextChange(watch);
    expect(failed).toMatchObject({ type: EventType.EVENT_TYPE_HEALTH_CHECK_FAILED, instance: { id: reg.serviceId, draining: true } });
    expect(b.requests.length).toBeGreaterThan(probesBefore);

    const removed = await nextChange(watch);
    expect(removed).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REMOVED, removalReason: RemovalReason.REMOVAL_REASON_DRAIN_EXPIRED });
  });

  it("counts draining instances and removals by reason in the metrics: replaced, drain_expired, unregistered", async () => {
    const { server, client } = await stack({ DRAIN_TIMEOUT_MS: "300" });
    const metrics = async () => parseExposition(await server.metrics.exposition());
    const first = await register(client, 9051);
    const second = await register(client, 9051); // the same address: replaces the first
    expect(second.serviceId).not.toBe(first.serviceId);
    const removed = new Promise((resolve) => server.registry.once("instanceRemoved", (_i, reason) => resolve(reason)));
    await call(client, client.drain, { instanceId: second.serviceId }, keyAuth());
    const draining = await metrics();
    expect(draining.value("registry_instances_draining")).toBe(1);
    expect(draining.value("registry_instances_removed_total", { reason: "replaced" })).toBe(1);

    expect(await removed).toBe("drain_expired");
    const third = await register(client, 9052);
    await call(client, client.unregister, { instanceId: third.serviceId }, keyAuth());
    const after = await metrics();
    expect(after.value("registry_instances_draining")).toBe(0);
    expect(after.value("registry_instances_removed_total", { reason: "drain_expired" })).toBe(1);
    expect(after.value("registry_instances_removed_total", { reason: "unregistered" })).toBe(1);
    expect(after.value("registry_instances_removed_total", { reason: "replaced" })).toBe(1);
  });

  it("drains over HTTP: POST /service/:id/drain with the key or the instance's own credentials; 404 for an unknown id", async () => {
    const { client, http } = await stack();
    const reg = await register(client, 9021);
    const res = await http(`/service/${reg.serviceId}/drain`, { method: "POST", headers: { "x-service-id": reg.serviceId, "x-service-token": reg.token } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { instance: { draining: boolean; drainingSince: string }; revision: number };
    expect(body.instance).toMatchObject({ draining: true, drainingSince: expect.stringMatching(/^\d{4}-/) });
    expect(((await (await http("/services/api", { headers: KEY })).json()) as { instances: unknown[] }).instances).toEqual([]);
    const shown = (await (await http("/services/api?includeDraining=true", { headers: KEY })).json()) as { instances: { id: string }[] };
    expect(shown.instances.map((i) => i.id)).toEqual([reg.serviceId]);
    expect((await http(`/service/00000000-0000-4000-8000-000000000000/drain`, { method: "POST", headers: KEY })).status).toBe(404);
    expect((await http(`/service/${reg.serviceId}/drain`, { method: "POST" })).status).toBe(401);
  });

  it("keeps a drain across a restart on SQLite, and the deadline still removes the instance", async () => {
    const dataDir = tempDataDir();
    const open = async (): Promise<ServiceRegistry> => {
      const r = new ServiceRegistry({ healthChecks: false, logger: { info() {}, warn() {}, error() {}, debug() {} }, store: new SqliteStore({ dataDir }), drainTimeout: 1500 });
      await r.start();
      return r;
    };
    const first = await open();
    const { instance } = await first.register({ serviceType: "api", host: "127.0.0.1", port: 9031 });
    const drained = await first.drain(instance.id);
    await first.close();

    const second = await open();
    cleanups.push(() => second.close());
    expect(second.getInstance(instance.id)).toMatchObject({ draining: true, drainingSince: drained.instance.drainingSince });
    const removal = await new Promise((resolve) => second.on("instanceRemoved", (i, reason) => resolve([i.id, reason])));
    expect(removal).toEqual([instance.id, "drain_expired"]);
  });

  it("keeps a drain timeout longer than a timer can hold (a timer that long fires at once): the instance stays draining", async () => {
    const registry = new ServiceRegistry({ healthChecks: false, logger: pino({ level: "silent" }), drainTimeout: 2 ** 31 + 60_000 });
    await registry.start();
    cleanups.push(() => registry.close());
    const { instance } = await registry.register({ serviceType: "api", host: "127.0.0.1", port: 9041 });
    const removed: string[] = [];
    registry.on("instanceRemoved", (i, reason) => removed.push(`${i.id} ${reason}`));
    await registry.drain(instance.id);
    // An overflowing timer fires after 1 ms: several times that later, nothing may have been removed.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(removed).toEqual([]);
    expect(registry.getInstance(instance.id).draining).toBe(true);
  });
});
