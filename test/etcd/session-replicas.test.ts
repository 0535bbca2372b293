import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, HealthCheck, HealthCheckKind, HealthStatus, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { RendezvousOwnership } from "../../src/store/etcd/rendezvous-ownership.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { healthClient, HealthWatch } from "../support/health-client.js";
import { call, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";

/**
 * Reported liveness across replicas on one etcd: a session lives on the
 * replica its stream reached and ends with it; heartbeats reach the replica
 * that keeps the instance's clock from whichever replica heard them.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;
const KEY = "etcd-suite-registration-key-0001";

describe.skipIf(!etcdPresent)("session and TTL checks on replicas", () => {
  let etcd: EtcdProcess;
  const replicas: ServerProcess[] = [];
  const clients: RegistryServiceClient[] = [];
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const r of replicas.splice(0)) r.kill("SIGKILL");
    await etcd.close();
  });

  async function replica(endpoint = etcd.endpoint): Promise<{ proc: ServerProcess; client: RegistryServiceClient; address: string; replicaId: string }> {
    const replicaId = `replica-${replicas.length}`;
    // A long probe interval: a failure within the test can only come from a session's end or a missed ttl.
    const proc = await startEtcdReplica(endpoint, KEY, { REPLICA_ID: replicaId, HEALTH_CHECK_INTERVAL_MS: "60000" });
    replicas.push(proc);
    const address = `127.0.0.1:${proc.port}`;
    const client = new RegistryServiceClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(client);
    return { proc, client, address, replicaId };
  }

  const registerVia = async (c: RegistryServiceClient, port: number, healthCheck: HealthCheck) => {
    const res = await call(c, c.register, { serviceType: "api", port, host: "127.0.0.1", metadata: {}, healthCheck }, keyAuth(KEY));
    return { id: res.serviceId, token: res.token };
  };

  function holdSession(address: string, id: string, token: string): Promise<void> {
    const child = spawn(process.execPath, ["--import", TSX, join(ROOT, "test/support/session-holder.ts"), address, id, token], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    return new Promise((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("open ")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`session holder exited (${code}) before the session opened: ${out}`)));
    });
  }

  async function nextFailure(watch: WatchCursor, id: string, timeoutMs: number): Promise<WatchInstancesResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await watch.next(Math.max(1, deadline - Date.now()));
      if (m.instance?.id === id && (m.type === EventType.EVENT_TYPE_HEALTH_CHECK_FAILED || m.type === EventType.EVENT_TYPE_HEALTH_CHECK_PASSED)) return m;
    }
  }

  it("takes a session's instance to UNHEALTHY within the membership TTL when the replica holding it is SIGKILLed", async () => {
    const a = await replica();
    const b = await replica();
    // The hard case: the replica that dies also kept the instance's clock, so b must act on a session it did not own.
    const ownership = new RendezvousOwnership("x");
    ownership.setMembers([a.replicaId, b.replicaId]);
    let registered: { id: string; token: string } | undefined;
    for (let port = 7001; registered === undefined; port++) {
      const r = await registerVia(b.client, port, HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
      if (ownership.ownerOf(r.id) === a.replicaId) registered = r;
    }
    const { id, token } = registered;
    const watch = WatchCursor.open(b.client, { serviceType: "api" }, keyAuth(KEY));
    for (;;) if ((await watch.next(10_000)).type === EventType.EVENT_TYPE_SYNCED) break;
    await holdSession(a.address, id, token);
    // The session is known on b (through etcd) before a dies: the instance stays healthy meanwhile.
    const killedAt = Date.now();
    a.proc.kill("SIGKILL");
    await a.proc.exited;
    const failed = await nextFailure(watch, id, 10_000);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toBe("session lost: the registry replica holding it went away");
    // ETCD_MEMBER_TTL_S=2 (etcd expires a lease within about twice its TTL): far below the 60 s probe interval.
    expect(Date.now() - killedAt).toBeLessThan(8000);
    // The instance's own session reopens on the surviving replica: healthy again.
    await holdSession(b.address, id, token);
    expect((await nextFailure(watch, id, 5000)).type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
    watch.cancel();
  }, 60_000);

  it("makes a session's instance HEALTHY again when the replica holding it comes back from a freeze longer than its membership TTL", async () => {
    const a = await replica();
    const b = await replica();
    const { id, token } = await registerVia(b.client, 7101, HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const watch = WatchCursor.open(b.client, { serviceType: "api" }, keyAuth(KEY));
    for (;;) if ((await watch.next(10_000)).type === EventType.EVENT_TYPE_SYNCED) break;
    await holdSession(a.address, id, token);
    a.proc.kill("SIGSTOP");
    try {
      // Its lease expires: b fails the instance, as for a replica that died.
      const failed = await nextFailure(watch, id, 10_000);
      expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    } finally {
      a.proc.kill("SIGCONT");
    }
    // a rejoins with the session still open: it announces it again and the instance is healthy.
    const passed = await nextFailure(watch, id, 15_000);
    expect(passed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
    watch.cancel();
  }, 60_000);

  it("ends the sessions of a replica whose link to etcd is blackholed, so their clients move: healthy again on another replica before the link heals", async () => {
    const { hostname, port } = new URL(etcd.endpoint);
    const proxy = await startFaultProxy(hostname, Number(port));
    try {
      const a = await replica(proxy.url); // a's etcd connection goes through the proxy
      const b = await replica();
      const { id, token } = await registerVia(b.client, 7103, HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
      const watch = WatchCursor.open(b.client, { serviceType: "api" }, keyAuth(KEY));
      for (;;) if ((await watch.next(10_000)).type === EventType.EVENT_TYPE_SYNCED) break;
      await holdSession(a.address, id, token);
      const holder = children.at(-1) as ChildProcess;
      let said = "";
      holder.stderr?.on("data", (chunk: Buffer) => (said += chunk.toString()));
      const ended = new Promise<number | null>((resolve) => holder.once("exit", (code) => resolve(code)));
      const aHealthConn = healthClient(a.address);
      const aHealth = new HealthWatch(aHealthConn);
      expect(await aHealth.next(5000)).toBe("SERVING");
      // Packets dropped, no reset: a notices it lost etcd and ends its sessions, naming why.
      proxy.blackhole();
      expect(await aHealth.next(5000)).toBe("NOT_SERVING");
      expect(await ended).toBe(2);
      expect(said).toMatch(/UNAVAILABLE|lost its store/);
      expect(said).toContain("open the session on another replica");
      // a's lease expires in etcd: b fails the instance, as for a replica that died.
      const failed = await nextFailure(watch, id, 15_000);
      expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
      expect(failed.failureReason).toBe("session lost: the registry replica holding it went away");
      // The client opens its session on b (registerSelf does at once): healthy while a is still cut off.
      await holdSession(b.address, id, token);
      expect((await nextFailure(watch, id, 5000)).type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
      proxy.heal();
      // a serves again once caught up, and agrees.
      expect(await aHealth.next(20_000)).toBe("SERVING");
      expect((await call(a.client, a.client.getInstance, { instanceId: id }, keyAuth(KEY))).instance?.health).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
      watch.cancel();
      aHealth.cancel();
      aHealthConn.close();
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("passes on at most a few heartbeats per ttl to etcd, however fast a client beats", async () => {
    const a = await replica();
    const b = await replica();
    const { id, token } = await registerVia(a.client, 7102, HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 60_000 }));
    const owner = new RendezvousOwnership("x");
    owner.setMembers([a.replicaId, b.replicaId]);
    const other = owner.ownerOf(id) === a.replicaId ? b : a;
    const revisionOf = async () => (await call(other.client, other.client.listServices, {}, keyAuth(KEY))).revision;
    const before = await revisionOf();
    await Promise.all(Array.from({ length: 200 }, () => call(other.client, other.client.heartbeat, { instanceId: id }, instanceAuth(id, token))));
    // Every put under the prefix moves the revision: 200 heartbeats within a quarter ttl are one put.
    expect((await revisionOf()) - before).toBeLessThanOrEqual(2);
  }, 60_000);

  it("keeps a TTL instance healthy on heartbeats sent to either replica, and fails it one ttl after they stop", async () => {
    const a = await replica();
    const b = await replica();
    const { id, token } = await registerVia(a.client, 7002, HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 600 }));
    // Heartbeats only to the replica that does not keep its clock: they must be relayed.
    const owner = new RendezvousOwnership("x");
    owner.setMembers([a.replicaId, b.replicaId]);
    const clockKeeper = owner.ownerOf(id);
    const other = clockKeeper === a.replicaId ? b : a;
    const watch = WatchCursor.open(a.client, { serviceType: "api" }, keyAuth(KEY));
    for (;;) if ((await watch.next(10_000)).type === EventType.EVENT_TYPE_SYNCED) break;
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      await call(other.client, other.client.heartbeat, { instanceId: id }, instanceAuth(id, token));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const now = await call(a.client, a.client.getInstance, { instanceId: id }, keyAuth(KEY));
    expect(now.instance?.health).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    const failed = await nextFailure(watch, id, 5000);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toBe("ttl expired");
    watch.cancel();
  }, 60_000);
});
