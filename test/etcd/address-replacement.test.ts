import { credentials, status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, RemovalReason, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { Etcd3 } from "etcd3";
import { encodeInstance } from "../../src/store/etcd/instance-codec.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { call, callError, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";

/** One instance per address and drain, across replicas of one etcd (issue #25). */
describe.skipIf(!etcdPresent)("addresses and drain on replicas of one etcd", () => {
  let etcd: EtcdProcess;
  const replicas: ServerProcess[] = [];
  const clients: RegistryServiceClient[] = [];

  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const r of replicas.splice(0)) r.kill("SIGKILL");
    await etcd.close();
  });

  async function replica(): Promise<RegistryServiceClient> {
    // No probing: the addresses here serve nothing, and health is not what is tested.
    const proc = await startEtcdReplica(etcd.endpoint, KEY, { HEALTH_CHECKS: "false" });
    replicas.push(proc);
    const client = new RegistryServiceClient(`127.0.0.1:${proc.port}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(client);
    return client;
  }

  const registerAt = (c: RegistryServiceClient, port: number, zone = "a") =>
    call(c, c.register, { serviceType: "api", port, host: "127.0.0.1", metadata: { zone } }, keyAuth(KEY));


  it("replaces the instance at an address registered again on another replica: its removal, then the registration, each at its own revision", async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const watch = WatchCursor.open(a, {}, keyAuth(KEY));
    await watch.next(10_000); // SYNCED
    const first = await registerAt(a, 7001);
    const second = await registerAt(b, 7001, "b");
    const seen = await watch.changes(3);
    expect(seen.map((e) => [e.type, e.instance?.id, e.removalReason])).toEqual([
      [EventType.EVENT_TYPE_INSTANCE_REGISTERED, first.serviceId, RemovalReason.REMOVAL_REASON_UNSPECIFIED],
      [EventType.EVENT_TYPE_INSTANCE_REMOVED, first.serviceId, RemovalReason.REMOVAL_REASON_REPLACED],
      [EventType.EVENT_TYPE_INSTANCE_REGISTERED, second.serviceId, RemovalReason.REMOVAL_REASON_UNSPECIFIED],
    ]);
    expect(seen[1]!.revision).toBeLessThan(seen[2]!.revision);
    for (const c of [a, b]) {
      const { instances } = await call(c, c.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: true, selector: {} }, keyAuth(KEY));
      expect(instances.map((i) => i.id)).toEqual([second.serviceId]);
      const refused = await callError(c, c.getInstance, { instanceId: first.serviceId }, instanceAuth(first.serviceId, first.token));
      expect(refused.code).toBe(status.UNAUTHENTICATED);
    }
    watch.cancel();
  }, 60_000);

  it("leaves exactly one instance at an address that Registers on two replicas race for", async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => registerAt(i % 2 === 0 ? a : b, 7002)));
    expect(results.some((r) => r.status === "fulfilled")).toBe(true);
    // Once both replicas have applied everything: one instance, and it is one that was answered.
    const marker = await registerAt(a, 7999);
    const answered = new Set(results.flatMap((r) => (r.status === "fulfilled" ? [r.value.serviceId] : [])));
    for (const c of [a, b]) {
      await call(c, c.getInstance, { instanceId: marker.serviceId }, keyAuth(KEY)).catch(async () => {
        // b may be a moment behind: the read waits for it (readCaughtUp) or the next one sees it.
        await call(c, c.getInstance, { instanceId: marker.serviceId }, keyAuth(KEY));
      });
      const { instances } = await call(c, c.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: true, selector: {} }, keyAuth(KEY));
      const at7002 = instances.filter((i) => i.port === 7002);
      expect(at7002).toHaveLength(1);
      expect(answered.has(at7002[0]!.id)).toBe(true);
    }
  }, 60_000);

  it("drains on one replica and every replica leaves the instance out, streams DRAINING, and still lists it when asked", async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const kept = await registerAt(a, 7003);
    const drained = await registerAt(a, 7004);
    const watch = WatchCursor.open(a, { serviceType: "api" }, keyAuth(KEY));
    while ((await watch.next(10_000)).type !== EventType.EVENT_TYPE_SYNCED);
    const answer = await call(b, b.drain, { instanceId: drained.serviceId }, instanceAuth(drained.serviceId, drained.token));
    expect(answer.instance).toMatchObject({ id: drained.serviceId, draining: true });
    const [event] = await watch.changes(1);
    expect(event).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_DRAINING, revision: answer.revision, instance: { draining: true } });
    for (const c of [a, b]) {
      const plain = await call(c, c.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, keyAuth(KEY));
      expect(plain.instances.map((i) => i.id)).toEqual([kept.serviceId]);
      const all = await call(c, c.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: true, selector: {} }, keyAuth(KEY));
      expect(all.instances.map((i) => i.id).sort()).toEqual([kept.serviceId, drained.serviceId].sort());
    }
    // Draining again changes nothing.
    const again = await call(a, a.drain, { instanceId: drained.serviceId }, keyAuth(KEY));
    expect(again.revision).toBe(answer.revision);
    watch.cancel();
  }, 60_000);

  it("replaces an instance written before address records existed (none holds its address) when its address registers again", async () => {
    // As a build before this one left it: the instance key, no address record.
    const direct = new Etcd3({ hosts: etcd.endpoint });
    const legacyId = "00000000-0000-4000-8000-00000000beef";
    await direct
      .put(`/service-registry/instances/${legacyId}`)
      .value(encodeInstance({
        id: legacyId, serviceType: "api", host: "127.0.0.1", port: 7005, metadata: {}, healthCheckPath: "/health", health: "healthy",
        draining: false, drainingSince: 0, registeredAt: 1, updatedAt: 1, tokenHash: "\0".repeat(32),
      }));
    direct.close();
    const a = await replica();
    const watch = WatchCursor.open(a, { serviceType: "api" }, keyAuth(KEY));
    const first = await watch.next(10_000);
    expect(first.instance?.id).toBe(legacyId);
    while ((await watch.next(10_000)).type !== EventType.EVENT_TYPE_SYNCED);
    const fresh = await registerAt(a, 7005);
    const seen = await watch.changes(2);
    expect(seen.map((e) => [e.type, e.instance?.id, e.removalReason])).toEqual([
      [EventType.EVENT_TYPE_INSTANCE_REMOVED, legacyId, RemovalReason.REMOVAL_REASON_REPLACED],
      [EventType.EVENT_TYPE_INSTANCE_REGISTERED, fresh.serviceId, RemovalReason.REMOVAL_REASON_UNSPECIFIED],
    ]);
    watch.cancel();
  }, 60_000);
});
