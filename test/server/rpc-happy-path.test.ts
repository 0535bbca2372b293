import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, HealthCheck, HealthStatus, RemovalReason } from "../../gen/registry/v1/registry.js";
import { call, instanceAuth, register, startHarness, WatchCursor, type Harness } from "../support/registry-harness.js";

describe("every RPC, happy path", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("registers with the key and answers with an id, a token and the instance", async () => {
    const res = await call(h.client, h.client.register, {
      serviceType: "billing",
      port: 8080,
      host: "10.0.0.7",
      metadata: { zone: "eu-1", version: "1.2.3" },
      healthCheck: HealthCheck.fromPartial({ path: "/ready" }),
    });
    expect(res.serviceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Buffer.from(res.token, "base64url")).toHaveLength(32);
    expect(res.instance).toMatchObject({
      id: res.serviceId,
      serviceType: "billing",
      host: "10.0.0.7",
      port: 8080,
      metadata: { zone: "eu-1", version: "1.2.3" },
      health: HealthStatus.HEALTH_STATUS_HEALTHY,
      healthCheckPath: "/ready",
      revision: 1,
    });
    expect(res.instance?.registeredAt).toBeInstanceOf(Date);
  });

  it("defaults host to the caller's address and the health path to /health", async () => {
    const res = await call(h.client, h.client.register, { serviceType: "api", port: 9000, metadata: {} });
    expect(res.instance?.host).toBe("127.0.0.1");
    expect(res.instance?.healthCheckPath).toBe("/health");
  });

  it("follows the seed's flow: register, read with instance credentials, unregister itself", async () => {
    const a = await register(h, "api", 9001);
    const b = await register(h, "api", 9002);
    await register(h, "db", 5432);
    const md = instanceAuth(a.id, a.token);

    const byType = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, md);
    expect(byType.instances.map((i) => i.port).sort()).toEqual([9001, 9002]);
    expect(byType.revision).toBe(3);

    const one = await call(h.client, h.client.getInstance, { instanceId: b.id }, md);
    expect(one.instance?.port).toBe(9002);

    const services = await call(h.client, h.client.listServices, {}, md);
    expect(services.services).toEqual([
      { serviceType: "api", healthyCount: 2, totalCount: 2, drainingCount: 0, panic: false },
      { serviceType: "db", healthyCount: 1, totalCount: 1, drainingCount: 0, panic: false },
    ]);
    expect(services.revision).toBe(3);

    const gone = await call(h.client, h.client.unregister, { instanceId: a.id }, md);
    expect(gone.instance?.id).toBe(a.id);
    expect(gone.revision).toBe(4);
    const after = await call(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} });
    expect(after.instances.map((i) => i.id)).toEqual([b.id]);
  });

  it("GetByType with a selector answers only instances whose metadata has every key with its value", async () => {
    const eu = await register(h, "billing", 8080, { metadata: { zone: "eu-1", tier: "web" } });
    const euDb = await register(h, "billing", 8081, { metadata: { zone: "eu-1", tier: "db" } });
    await register(h, "billing", 8082, { metadata: { zone: "us-1", tier: "web" } });
    await register(h, "billing", 8083);
    const byType = (selector: Record<string, string>) =>
      call(h.client, h.client.getByType, { serviceType: "billing", includeUnhealthy: false, includeDraining: false, selector });
    // A plain answer first (it is cached): selector answers must not come from it, nor go into it.
    expect((await byType({})).instances).toHaveLength(4);
    const zone = await byType({ zone: "eu-1" });
    expect(zone.instances.map((i) => i.id).sort()).toEqual([eu.id, euDb.id].sort());
    expect(zone.revision).toBe(4);
    expect((await byType({ zone: "eu-1", tier: "web" })).instances.map((i) => i.id)).toEqual([eu.id]);
    expect((await byType({ zone: "eu-2" })).instances).toEqual([]);
    expect((await byType({ tier: "" })).instances).toEqual([]); // a key the metadata lacks never matches, not even ""
    expect((await byType({})).instances).toHaveLength(4);
    const euLate = await register(h, "billing", 8084, { metadata: { zone: "eu-1" } });
    expect((await byType({ zone: "eu-1" })).instances.map((i) => i.id).sort()).toEqual([eu.id, euDb.id, euLate.id].sort());
  });

  it("lets the key holder unregister any instance", async () => {
    const a = await register(h, "api", 9001);
    const res = await call(h.client, h.client.unregister, { instanceId: a.id });
    expect(res.instance?.id).toBe(a.id);
  });

  it("streams a snapshot, SYNCED, then live changes", async () => {
    const a = await register(h, "api", 9001);
    const watch = WatchCursor.open(h.client, {});
    const [snap, synced] = await watch.take(2);
    expect(snap).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REGISTERED, snapshot: true, revision: 1 });
    expect(snap?.instance?.id).toBe(a.id);
    expect(synced).toMatchObject({ type: EventType.EVENT_TYPE_SYNCED, revision: 1, epoch: h.registry.epoch });

    const b = await register(h, "api", 9002);
    await call(h.client, h.client.unregister, { instanceId: a.id });
    const [added, removed] = await watch.take(2);
    expect(added).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REGISTERED, snapshot: false, revision: 2 });
    expect(added?.instance?.id).toBe(b.id);
    expect(removed).toMatchObject({
      type: EventType.EVENT_TYPE_INSTANCE_REMOVED,
      revision: 3,
      removalReason: RemovalReason.REMOVAL_REASON_UNREGISTERED,
    });
    watch.cancel();
  });
});
