import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startStack } from "../support/stack.js";
import { call, keyAuth, startHarness, type Harness } from "../support/registry-harness.js";
import { tempDataDir } from "../support/server-process.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { InstanceIndex } from "../../src/registry/instance-index.js";
import { InstanceQuotas, UNLIMITED, type QuotaName } from "../../src/registry/instance-quotas.js";
import type { Change, StoredInstance } from "../../src/registry/types.js";

const KEY_A = "quota-test-key-aaaaaaaaaaaaaaaaaaaa";
const KEY_B = "quota-test-key-bbbbbbbbbbbbbbbbbbbb";

describe("instance quotas", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function harness(quotas: Record<string, number>, extra: { dataDir?: string } = {}) {
    const refused: QuotaName[] = [];
    const h = await startHarness({
      keys: [KEY_A, KEY_B],
      registry: {
        quotas,
        onQuotaRefused: (q) => refused.push(q),
        ...(extra.dataDir ? { store: new SqliteStore({ dataDir: extra.dataDir }) } : {}),
      },
    });
    cleanups.push(() => h.close());
    return { h, refused };
  }

  const register = (h: Harness, serviceType: string, port: number, key = KEY_A) =>
    call(h.client, h.client.register, { serviceType, port, host: "10.0.0.1", metadata: {} }, keyAuth(key));
  const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: ServiceError) => e);
  const count = async (h: Harness, serviceType: string) =>
    (await call(h.client, h.client.getByType, { serviceType, includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY_A))).instances.length;

  it("MAX_INSTANCES: the next Register gets RESOURCE_EXHAUSTED naming the quota, writes nothing, and room comes back", async () => {
    const { h, refused } = await harness({ MAX_INSTANCES: 3 });
    const first = await register(h, "api", 1);
    await register(h, "api", 2);
    await register(h, "web", 3);
    const err = await refusal(register(h, "api", 4));
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toBe("MAX_INSTANCES reached: 3 instances, the most allowed is 3");
    expect(await count(h, "api")).toBe(2);
    expect(h.registry.revision).toBe(3); // nothing half-written: no revision was spent
    expect(refused).toEqual(["MAX_INSTANCES"]);
    await call(h.client, h.client.unregister, { instanceId: first.serviceId }, keyAuth(KEY_A));
    await register(h, "api", 4);
  });

  it("MAX_INSTANCES_PER_TYPE holds under concurrent Registers: exactly the quota is admitted", async () => {
    const { h, refused } = await harness({ MAX_INSTANCES_PER_TYPE: 5 });
    const clients = Array.from({ length: 4 }, () => h.newClient());
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const c = clients[i % clients.length]!;
        return refusal(call(c, c.register, { serviceType: "api", port: 100 + i, host: "10.0.0.1", metadata: {} }, keyAuth(KEY_A)));
      }),
    );
    const errors = results.filter((r) => r !== undefined);
    expect(errors.map((e) => `${e.code} ${e.details}`).filter((d) => !d.includes("MAX_INSTANCES_PER_TYPE"))).toEqual([]);
    expect(errors).toHaveLength(35);
    expect(new Set(errors.map((e) => `${e.code} ${e.details.split(":")[0]}`))).toEqual(new Set([`${status.RESOURCE_EXHAUSTED} MAX_INSTANCES_PER_TYPE reached`]));
    expect(errors[0]!.details).toContain("instances of type api");
    expect(await count(h, "api")).toBe(5);
    expect(refused).toHaveLength(35);
    await register(h, "web", 1); // other types are not affected
  });

  it("MAX_SERVICE_TYPES refuses a new type, not more instances of an existing one", async () => {
    const { h } = await harness({ MAX_SERVICE_TYPES: 2 });
    await register(h, "a", 1);
    await register(h, "b", 2);
    const err = await refusal(register(h, "c", 3));
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/^MAX_SERVICE_TYPES reached: 2 service types/);
    await register(h, "a", 4);
  });

  it("MAX_INSTANCES_PER_KEY counts each key's instances apart, across a restart, without storing the key", async () => {
    const dataDir = tempDataDir();
    {
      const { h } = await harness({ MAX_INSTANCES_PER_KEY: 2 }, { dataDir });
      await register(h, "api", 1, KEY_A);
      await register(h, "api", 2, KEY_A);
      const err = await refusal(register(h, "api", 3, KEY_A));
      expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err?.details).toMatch(/^MAX_INSTANCES_PER_KEY reached: 2 instances registered with this key/);
      expect(err?.details).not.toContain(KEY_A);
      await register(h, "api", 3, KEY_B);
      await cleanups.pop()!();
    }
    // The key's count is kept with the instances: a restart does not reset it.
    const { h } = await harness({ MAX_INSTANCES_PER_KEY: 2 }, { dataDir });
    expect((await refusal(register(h, "api", 4, KEY_A)))?.code).toBe(status.RESOURCE_EXHAUSTED);
    await register(h, "api", 4, KEY_B);
    for (const file of readdirSync(dataDir)) {
      const bytes = readFileSync(join(dataDir, file)).toString("latin1");
      expect(bytes.includes(KEY_A) || bytes.includes(KEY_B), file).toBe(false);
    }
  });

  it("counts a refusal in registry_quota_refusals_total on a server configured by its settings", async () => {
    const server = await startStack({ MAX_INSTANCES_PER_TYPE: "1", SERVICE_REGISTRATION_KEY: KEY_A });
    cleanups.push(() => server.close());
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    cleanups.push(() => client.close());
    await call(client, client.register, { serviceType: "api", port: 1, host: "10.0.0.1", metadata: {} }, keyAuth(KEY_A));
    const err = await refusal(call(client, client.register, { serviceType: "api", port: 2, host: "10.0.0.1", metadata: {} }, keyAuth(KEY_A)));
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(text).toContain('registry_quota_refusals_total{quota="MAX_INSTANCES_PER_TYPE"} 1');
  });
});

describe("InstanceQuotas counts", () => {
  let revision = 0;
  const instance = (id: string, serviceType: string, keyId?: string): StoredInstance => ({
    id, serviceType, host: "10.0.0.1", port: 80, metadata: {}, healthCheckPath: "/health", health: "healthy",
    draining: false, drainingSince: 0, registeredAt: 0, updatedAt: 0, revision: 0, tokenHash: "", keyId,
  });
  /** Applies a change to the index and tells the quotas, as the registry's one path for state changes does. */
  const apply = (index: InstanceIndex, quotas: InstanceQuotas, change: Change): void => {
    index.apply(change);
    quotas.applied(change);
  };
  const registered = (i: StoredInstance): Change => ({ kind: "registered", revision: ++revision, instance: i });
  const removed = (i: StoredInstance): Change => ({ kind: "removed", revision: ++revision, instance: i, reason: "unregistered" });
  const refusal = (f: () => unknown): string | undefined => {
    try {
      f();
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };

  it("counts an admitted registration once: in flight, applied while its commit returns, and after release", () => {
    const index = new InstanceIndex();
    const quotas = new InstanceQuotas({ ...UNLIMITED, MAX_INSTANCES: 2, MAX_INSTANCES_PER_KEY: 1 }, index);
    const a = quotas.reserve("a", "api", "k1");
    expect(refusal(() => quotas.reserve("x", "api", "k1"))).toMatch(/^MAX_INSTANCES_PER_KEY reached: 1 /);
    apply(index, quotas, registered(instance("a", "api", "k1")));
    expect(refusal(() => quotas.reserve("x", "api", "k1"))).toMatch(/^MAX_INSTANCES_PER_KEY reached: 1 /); // not 2
    const b = quotas.reserve("b", "api", "k2");
    a.release();
    a.release(); // a second release changes nothing
    expect(refusal(() => quotas.reserve("c", "web", "k3"))).toBe("MAX_INSTANCES reached: 2 instances, the most allowed is 2");
    b.release(); // its commit failed: never applied
    quotas.reserve("c", "web", "k3").release();
  });

  it("counts a type brought only by registrations in flight, once, whoever applies an instance of it", () => {
    const index = new InstanceIndex();
    const quotas = new InstanceQuotas({ ...UNLIMITED, MAX_SERVICE_TYPES: 2 }, index);
    const api = instance("api-1", "api");
    apply(index, quotas, registered(api));
    quotas.reserve("db-1", "db", undefined);
    quotas.reserve("db-2", "db", undefined); // an existing (pending) type: no new type
    expect(refusal(() => quotas.reserve("web-1", "web", undefined))).toMatch(/^MAX_SERVICE_TYPES reached: 2 service types/);
    // Another replica's instance of db is applied: db is the index's now, and still counted once.
    apply(index, quotas, registered(instance("db-9", "db")));
    expect(refusal(() => quotas.reserve("web-1", "web", undefined))).toMatch(/^MAX_SERVICE_TYPES reached: 2 service types/);
    // api goes: room for one new type.
    apply(index, quotas, removed(api));
    quotas.reserve("web-1", "web", undefined);
    expect(refusal(() => quotas.reserve("ops-1", "ops", undefined))).toMatch(/^MAX_SERVICE_TYPES reached: 2 service types/);
  });

  it("counts a pending type as new again when the index's last instance of it goes", () => {
    const index = new InstanceIndex();
    const quotas = new InstanceQuotas({ ...UNLIMITED, MAX_SERVICE_TYPES: 1 }, index);
    const db = instance("db-9", "db");
    apply(index, quotas, registered(db));
    quotas.reserve("db-1", "db", undefined);
    apply(index, quotas, removed(db));
    expect(refusal(() => quotas.reserve("web-1", "web", undefined))).toMatch(/^MAX_SERVICE_TYPES reached: 1 service types/);
  });
});
