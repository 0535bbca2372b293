import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { RendezvousOwnership } from "../../src/store/etcd/rendezvous-ownership.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { healthStatus } from "../support/health-client.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { call, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { waitFor } from "../support/wait-for.js";

const KEY = "etcd-suite-registration-key-0001";

describe.skipIf(!etcdPresent)("registry replicas on one etcd", () => {
  let etcd: EtcdProcess;
  const replicas: ServerProcess[] = [];
  const clients: RegistryServiceClient[] = [];
  const backends: HealthServer[] = [];

  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const r of replicas.splice(0)) r.kill("SIGKILL");
    for (const b of backends.splice(0)) await b.close();
    await etcd.close();
  });

  async function replica(env: Record<string, string> = {}): Promise<{ proc: ServerProcess; client: RegistryServiceClient }> {
    const proc = await startEtcdReplica(etcd.endpoint, KEY, env);
    replicas.push(proc);
    const client = new RegistryServiceClient(`127.0.0.1:${proc.port}`, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    clients.push(client);
    return { proc, client };
  }

  const registerVia = (c: RegistryServiceClient, port: number) =>
    call(c, c.register, { serviceType: "api", port, host: "127.0.0.1", metadata: {} }, keyAuth(KEY));


  it("shows a Register on one replica on the others and on their watch streams, in the same revision order", async () => {
    const rs = await Promise.all([replica(), replica(), replica()]);
    const watches = rs.map((r) => WatchCursor.open(r.client, {}, keyAuth(KEY)));
    const synced = await Promise.all(watches.map((w) => w.next(10_000)));
    expect(new Set(synced.map((s) => s.epoch)).size).toBe(1);
    expect(synced[0]!.epoch).not.toBe("");

    const registered = await Promise.all(Array.from({ length: 12 }, (_, i) => registerVia(rs[i % 3]!.client, 1000 + i)));
    const seen = await Promise.all(watches.map((w) => w.changes(12)));
    const order = seen.map((events) => events.map((e) => `${e.revision}:${e.instance?.id}`));
    expect(order[1]).toEqual(order[0]);
    expect(order[2]).toEqual(order[0]);
    const revisions = seen[0]!.map((e) => e.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(seen[0]!.map((e) => e.instance?.id))).toEqual(new Set(registered.map((r) => r.serviceId)));

    // Each instance's own credentials work on every replica.
    for (const r of rs) {
      for (const reg of registered) {
        const got = await call(r.client, r.client.getInstance, { instanceId: reg.serviceId }, instanceAuth(reg.serviceId, reg.token));
        expect(got.instance?.revision).toBe(reg.instance?.revision);
      }
    }
    for (const w of watches) w.cancel();
  }, 60_000);

  it("lets a watcher of a killed replica resume on another with no gap and no duplicate", async () => {
    const [a, b, c] = await Promise.all([replica(), replica(), replica()]);
    const onA = WatchCursor.open(a!.client, {}, keyAuth(KEY));
    const synced = await onA.next(10_000);
    for (let i = 0; i < 5; i++) await registerVia(b!.client, 2000 + i);
    const firstFive = await onA.changes(5);
    const last = firstFive.at(-1)!;

    a!.proc.kill("SIGKILL");
    await a!.proc.exited;
    const later = [];
    for (let i = 0; i < 5; i++) later.push(await registerVia(c!.client, 3000 + i));

    const onB = WatchCursor.open(b!.client, { sinceRevision: last.revision, epoch: synced.epoch }, keyAuth(KEY));
    const resumed = await onB.changes(5);
    expect(resumed.map((e) => e.instance?.id)).toEqual(later.map((r) => r.serviceId));
    expect(resumed.every((e) => e.revision > last.revision && !e.snapshot)).toBe(true);
    onB.cancel();
  }, 60_000);

  it("lets a watcher resume on a replica that started after its resume point (history replayed from etcd)", async () => {
    const a = await replica();
    const onA = WatchCursor.open(a.client, {}, keyAuth(KEY));
    const synced = await onA.next(10_000);
    const regs = [];
    for (let i = 0; i < 6; i++) regs.push(await registerVia(a.client, 6000 + i));
    await call(a.client, a.client.unregister, { instanceId: regs[0]!.serviceId }, keyAuth(KEY));
    const seen = await onA.changes(3); // the watcher saw the first three registrations
    onA.cancel();

    const late = await replica(); // starts after all of it
    const resumed = WatchCursor.open(late.client, { sinceRevision: seen.at(-1)!.revision, epoch: synced.epoch }, keyAuth(KEY));
    const rest = await resumed.changes(4);
    expect(rest.map((e) => e.type)).toEqual([
      EventType.EVENT_TYPE_INSTANCE_REGISTERED,
      EventType.EVENT_TYPE_INSTANCE_REGISTERED,
      EventType.EVENT_TYPE_INSTANCE_REGISTERED,
      EventType.EVENT_TYPE_INSTANCE_REMOVED,
    ]);
    expect(rest.map((e) => e.instance?.id)).toEqual([...regs.slice(3).map((r) => r.serviceId), regs[0]!.serviceId]);
    expect(rest.at(-1)!.removalReason).toBe(1); // UNREGISTERED
    // ...then live changes, in order, with nothing in between.
    const next = await registerVia(a.client, 6100);
    const live = await resumed.changes(1);
    expect(live[0]!.instance?.id).toBe(next.serviceId);
    resumed.cancel();
  }, 60_000);

  it("gives a resume point that etcd has compacted away a RESET, not an error", async () => {
    const a = await replica();
    const onA = WatchCursor.open(a.client, {}, keyAuth(KEY));
    const synced = await onA.next(10_000);
    const first = await registerVia(a.client, 7000);
    await onA.changes(1);
    onA.cancel();
    const last = await registerVia(a.client, 7001);
    const { Etcd3 } = await import("etcd3");
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      await raw.kv.compact({ revision: last.instance!.revision, physical: true });
    } finally {
      raw.close();
    }
    // A replica started now cannot replay from before the compaction...
    const late = await replica();
    const resumed = WatchCursor.open(late.client, { sinceRevision: first.instance!.revision, epoch: synced.epoch }, keyAuth(KEY));
    // ...so the resume point is outside its window: RESET, a fresh snapshot, SYNCED.
    expect((await resumed.next(10_000)).type).toBe(EventType.EVENT_TYPE_RESET);
    const snapshot = await resumed.take(2, 10_000);
    expect(snapshot.every((e) => e.snapshot)).toBe(true);
    expect((await resumed.next(10_000)).type).toBe(EventType.EVENT_TYPE_SYNCED);
    resumed.cancel();
  }, 60_000);

  it("loses no acknowledged Register when a replica is killed under load from the SDK, and clients fail over", async () => {
    const rs = await Promise.all([replica(), replica(), replica()]);
    const addresses = rs.map((r) => `127.0.0.1:${r.proc.port}`);
    const sdks = Array.from({ length: 4 }, () => new RegistryClient({ addresses, auth: { key: KEY }, connectTimeoutMs: 500 }));
    const acked: { id: string; revision: number }[] = [];
    let failed = 0;
    let stop = false;
    let killedAt = -1;
    let reached!: () => void;
    const enough = new Promise<void>((resolve) => (reached = resolve));
    const loop = async (sdk: RegistryClient, worker: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        try {
          const { instance } = await sdk.register({ serviceType: "load", port: 1 + ((worker * 997 + i) % 65000), host: "10.1.0.1" });
          acked.push({ id: instance.id, revision: instance.revision });
          if (killedAt < 0 && acked.length >= 150) reached();
          if (killedAt >= 0 && acked.length >= killedAt + 150) stop = true;
        } catch {
          failed++; // a Register in flight on the dying replica may fail; it was not acknowledged
        }
      }
    };
    const workers = sdks.flatMap((sdk, s) => Array.from({ length: 8 }, (_, j) => loop(sdk, s * 8 + j)));
    await enough;
    // Every SDK prefers the first address: kill that replica mid-load.
    rs[0]!.proc.kill("SIGKILL");
    killedAt = acked.length;
    await Promise.all(workers);
    for (const sdk of sdks) sdk.close();

    // The SDKs failed over and kept registering on the surviving replicas...
    expect(acked.length).toBeGreaterThanOrEqual(killedAt + 150);
    expect(failed).toBeLessThan(64);
    // ...and every acknowledged Register is on them, once, in the same order.
    for (const r of rs.slice(1)) {
      const all = await call(r.client, r.client.getByType, { serviceType: "load", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY));
      const byId = new Map(all.instances.map((i) => [i.id, i.revision]));
      for (const a of acked) expect(byId.get(a.id)).toBe(a.revision);
    }
    expect(new Set(acked.map((a) => a.revision)).size).toBe(acked.length);
  }, 60_000);

  it("keeps probing a killed replica's instances: a backend that dies afterwards is marked unhealthy", async () => {
    const env = { HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "200", HEALTH_CHECK_TTL_MS: "500", DEREGISTER_AFTER_MS: "0" };
    const [r1, r2] = await Promise.all([replica({ ...env, REPLICA_ID: "r1" }), replica({ ...env, REPLICA_ID: "r2" }), replica({ ...env, REPLICA_ID: "r3" })]);
    const ownership = new RendezvousOwnership("r1");
    ownership.setMembers(["r1", "r2", "r3"]);

    // Register backends until one is probed by r1.
    let victim: { backend: HealthServer; id: string } | undefined;
    for (let i = 0; i < 40 && !victim; i++) {
      const backend = await startHealthServer();
      backends.push(backend);
      const reg = await registerVia(r2!.client, backend.port);
      if (ownership.ownerOf(reg.serviceId) === "r1") victim = { backend, id: reg.serviceId };
    }
    expect(victim).toBeDefined();
    await victim!.backend.nextRequest(10_000); // r1 probes it

    const watch = WatchCursor.open(r2!.client, { serviceType: "api" }, keyAuth(KEY));
    for (;;) if ((await watch.next(10_000)).type === EventType.EVENT_TYPE_SYNCED) break;
    r1!.proc.kill("SIGKILL");
    await r1!.proc.exited;
    victim!.backend.status = 503;

    for (;;) {
      const e = await watch.next(15_000);
      if (e.type === EventType.EVENT_TYPE_HEALTH_CHECK_FAILED && e.instance?.id === victim!.id) break;
    }
    watch.cancel();
  }, 60_000);

  it("skips a value it cannot decode instead of crashing", async () => {
    const [a] = await Promise.all([replica()]);
    const { Etcd3 } = await import("etcd3");
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      await raw.put("/service-registry/instances/garbage").value("{not json");
      const reg = await registerVia(a!.client, 5000);
      const got = await call(a!.client, a!.client.getInstance, { instanceId: reg.serviceId }, keyAuth(KEY));
      expect(got.instance?.id).toBe(reg.serviceId);
      // A replica started with the bad value already stored starts too.
      const b = await replica();
      const all = await call(b.client, b.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY));
      expect(all.instances.map((i) => i.id)).toEqual([reg.serviceId]);
      expect(a!.proc.child.exitCode).toBeNull();
    } finally {
      raw.close();
    }
  }, 30_000);

  it("refuses reads and writes while etcd is gone and recovers by itself when it returns", async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const reg = await registerVia(a!.client, 4000);
    const watch = WatchCursor.open(b!.client, {}, keyAuth(KEY));
    await watch.take(2, 10_000);

    await etcd.stop();
    // The open watch ends with UNAVAILABLE: this replica's view may be stale.
    expect((await watch.status(10_000)).code).toBe(status.UNAVAILABLE);
    for (const r of [a!, b!]) {
      let err: ServiceError | undefined;
      await waitFor(
        async () => {
          err = await registerVia(r.client, 4001).then(() => undefined, (e: ServiceError) => e);
          return err?.code === status.UNAVAILABLE;
        },
        () => `the replica to refuse writes without etcd (it answered ${err?.code ?? "OK"})`,
        10_000,
        200,
      );
      const read = await call(r.client, r.client.getInstance, { instanceId: reg.serviceId }, keyAuth(KEY)).catch((e: ServiceError) => e);
      expect((read as ServiceError).code).toBe(status.UNAVAILABLE);
      expect(await healthStatus(`127.0.0.1:${r.proc.port}`)).toBe("NOT_SERVING");
      expect(await healthStatus(`127.0.0.1:${r.proc.port}`, "registry.v1.RegistryService")).toBe("NOT_SERVING");
    }

    await etcd.start();
    for (const r of [a!, b!]) {
      await waitFor(
        () => registerVia(r.client, 4002).then(() => true, () => false),
        "the replica to accept writes again once etcd is back",
        15_000,
        200,
      );
      // Polled rather than read once: on a loaded machine a replica that has just come back can miss
      // its 2 s liveness window once more (etcd itself is still starting), and recovers again by itself.
      // Meanwhile it refuses reads (UNAVAILABLE), as it should; it must come back serving the instance.
      let got: string | undefined;
      await waitFor(
        async () => (got = await call(r.client, r.client.getInstance, { instanceId: reg.serviceId }, keyAuth(KEY)).then((res) => res.instance?.id, () => undefined)) !== undefined,
        "the replica to serve reads again",
        10_000,
        200,
      );
      expect(got).toBe(reg.serviceId);
      await waitFor(async () => (await healthStatus(`127.0.0.1:${r.proc.port}`)) === "SERVING", "the replica to report SERVING again", 10_000, 200);
    }
  }, 90_000);
});
