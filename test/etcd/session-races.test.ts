import { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { RemovalReason } from "../../src/registry/types.js";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import { RendezvousOwnership } from "../../src/store/etcd/rendezvous-ownership.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { Waiter } from "../support/waiter.js";
import { etcdPresent } from "./etcd-suite.js";

/**
 * Sessions that open and close faster than etcd's round trip, on registries
 * sharing etcd (in this process, each with its own store): the health the
 * instance ends up with, its expiry and its announcement are those of the
 * last session event (review findings of issue #26).
 */

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe.skipIf(!etcdPresent)("session races on etcd", () => {
  let etcd: EtcdProcess;
  const registries: ServiceRegistry[] = [];
  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.close();
    await etcd.close();
  });

  async function replica(replicaId: string) {
    const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: "/races/", replicaId, logger: silent as never });
    const registry = new ServiceRegistry({ logger: silent, store, healthChecks: false, healthCheckInterval: 200, deregisterAfter: 1000 });
    registries.push(registry);
    await registry.start();
    const waiter = new Waiter();
    const removed = new Map<string, RemovalReason>();
    registry.on("instanceRemoved", (i, reason) => {
      removed.set(i.id, reason);
      waiter.notify();
    });
    registry.on("change", () => waiter.notify());
    return { registry, waiter, removed };
  }

  const session = { serviceType: "s", host: "127.0.0.1", healthCheck: { kind: "session" as const } };

  it("a session opened and closed within etcd's round trip leaves its instance failing and expiring, not held healthy by its own announcement", async () => {
    const { registry, waiter, removed } = await replica("A");
    // An unhealthy instance (its first session came and went)...
    const { instance: unhealthy } = await registry.register({ ...session, port: 1 });
    registry.openSession(unhealthy.id, () => undefined).close("session lost: test");
    await waiter.until(() => registry.getInstance(unhealthy.id).health === "unhealthy", "the instance to fail", 3000);
    // ...and a new one: each gets a session that ends at once.
    const { instance: fresh } = await registry.register({ ...session, port: 2 });
    registry.openSession(unhealthy.id, () => undefined).close("session lost: again");
    registry.openSession(fresh.id, () => undefined).close("session lost: at once");
    await waiter.until(() => removed.has(unhealthy.id) && removed.has(fresh.id), "both instances to expire", 6000);
    expect(removed.get(unhealthy.id)).toBe("health_check_expired");
    expect(removed.get(fresh.id)).toBe("health_check_expired");
  }, 30_000);

  it("a client that reconnects at once to the same replica keeps its session announced, so the replica keeping the clock never fails it", async () => {
    const a = await replica("A");
    const b = await replica("B");
    // An instance whose clock B keeps, with its session on A.
    const ownership = new RendezvousOwnership("x");
    ownership.setMembers(["A", "B"]);
    let id = "";
    for (let port = 10; id === ""; port++) {
      const { instance } = await a.registry.register({ ...session, port });
      if (ownership.ownerOf(instance.id) === "B") id = instance.id;
    }
    const first = a.registry.openSession(id, () => undefined);
    first.close("session lost: reset");
    a.registry.openSession(id, () => undefined);
    // Past deregisterAfter: B must still see a session for it, healthy and registered.
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      // Nothing to await: what is checked is that nothing happens for longer than deregisterAfter.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(await client.getAll().prefix("/races/sessions/").keys()).toEqual([`/races/sessions/${id}/A`]);
    } finally {
      client.close();
    }
    expect(b.removed.has(id)).toBe(false);
    expect(b.registry.getInstance(id).health).toBe("healthy");
  }, 30_000);

  it("refuses a session that opens after the server released them at shutdown, so its cut fails nothing", async () => {
    const { registry } = await replica("A");
    const { instance } = await registry.register({ ...session, port: 1 });
    registry.releaseSessions();
    expect(() => registry.openSession(instance.id, () => undefined)).toThrow(/shutting down/);
    expect(registry.getInstance(instance.id).health).toBe("healthy");
  }, 30_000);
});
