import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { RESUME_REVISION_TRAILER } from "../../src/server/watch-handler.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { healthClient, HealthWatch } from "../support/health-client.js";
import { call, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";
import { startEtcdReplica } from "../support/etcd-replica.js";

const KEY = "etcd-suite-registration-key-0001";

/** Reads a watch stream until it ends; returns what it sent and how it ended. */
async function untilEnd(w: WatchCursor, timeoutMs: number): Promise<{ seen: WatchInstancesResponse[]; error: ServiceError }> {
  const seen: WatchInstancesResponse[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      seen.push(await w.next(Math.max(1, deadline - Date.now())));
    } catch (err) {
      if (w.error) return { seen, error: w.error };
      throw err;
    }
  }
}

describe.skipIf(!etcdPresent)("a replica blackholed from etcd", () => {
  let etcd: EtcdProcess;
  let proxy: FaultProxy;
  const replicas: ServerProcess[] = [];
  const closers: (() => void)[] = [];

  beforeEach(async () => {
    etcd = await startEtcd();
    const { hostname, port } = new URL(etcd.endpoint);
    proxy = await startFaultProxy(hostname, Number(port));
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) close();
    const stopping = replicas.splice(0);
    for (const r of stopping) r.kill("SIGKILL");
    await Promise.all(stopping.map((r) => r.exited));
    await proxy.close();
    await etcd.close();
  });

  async function replica(endpoint: string, env: Record<string, string> = {}): Promise<{ proc: ServerProcess; client: RegistryServiceClient; address: string }> {
    const proc = await startEtcdReplica(endpoint, KEY, env);
    replicas.push(proc);
    const address = `127.0.0.1:${proc.port}`;
    const client = new RegistryServiceClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    closers.push(() => client.close());
    return { proc, client, address };
  }

  /** A grpc.health.v1 watch of the server at `address`, once it has said SERVING. */
  async function servingHealth(address: string): Promise<HealthWatch> {
    const conn = healthClient(address);
    closers.push(() => conn.close());
    const health = new HealthWatch(conn);
    expect(await health.next(5000)).toBe("SERVING");
    return health;
  }

  const registerVia = (c: RegistryServiceClient, port: number) =>
    call(c, c.register, { serviceType: "api", port, host: "127.0.0.1", metadata: {} }, keyAuth(KEY));
  const getApi = (c: RegistryServiceClient) => call(c, c.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY));

  it("notices by itself within 4 s, refuses to serve, and serves again only once caught up", async () => {
    const cut = await replica(proxy.url); // its etcd connection goes through the proxy
    const direct = await replica(etcd.endpoint);
    const first = await registerVia(cut.client, 8000); // acknowledged once `cut` has applied it

    const health = await servingHealth(cut.address);
    const watch = WatchCursor.open(cut.client, {}, keyAuth(KEY));
    let synced: WatchInstancesResponse;
    do synced = await watch.next(5000);
    while (synced.type !== EventType.EVENT_TYPE_SYNCED);
    expect(synced.revision).toBeGreaterThanOrEqual(first.instance!.revision);

    // No client traffic from here on: only the replica's own checks can notice.
    proxy.blackhole();
    const cutAt = Date.now();
    // The liveness window is 3 s from the last answered check, sent up to 0.5 s before the cut.
    expect(await health.next(4000)).toBe("NOT_SERVING");
    expect(Date.now() - cutAt).toBeLessThan(4000);

    // The open watch ends with UNAVAILABLE and names where to resume.
    const ended = await untilEnd(watch, 1000);
    expect(ended.error.code).toBe(status.UNAVAILABLE);
    const resumeFrom = Number(ended.error.metadata.get(RESUME_REVISION_TRAILER)[0]);
    expect(resumeFrom).toBe(ended.seen.at(-1)?.revision ?? synced.revision);
    // Reads are refused rather than answered from a view that may be stale.
    const refused = await getApi(cut.client).then(() => undefined, (e: ServiceError) => e);
    expect(refused?.code).toBe(status.UNAVAILABLE);

    // Meanwhile another replica, still on etcd, takes registrations: enough
    // that catching up takes several etcd watch responses.
    const during = [];
    for (let batch = 0; batch < 10; batch++) {
      during.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => registerVia(direct.client, 8001 + batch * 20 + i)))));
    }
    const allIds = [first.serviceId, ...during.map((r) => r.serviceId)].sort();

    // After healing, every read the replica answers has that registration.
    proxy.heal();
    let served = false;
    const sampling = (async () => {
      let answered = 0;
      while (!served) {
        const got = await getApi(cut.client).catch((e: ServiceError) => e);
        if (got instanceof Error) expect(got.code).toBe(status.UNAVAILABLE);
        else {
          expect(got.instances.map((i) => i.id).sort()).toEqual(allIds);
          answered++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return answered;
    })();
    const healed = await health.next(20_000).finally(() => (served = true));
    expect(healed).toBe("SERVING");
    await sampling;
    const after = await getApi(cut.client);
    expect(after.instances.map((i) => i.id).sort()).toEqual(allIds);

    // A watcher resuming from where its stream ended gets exactly what it missed: no RESET, no gap.
    const resumed = WatchCursor.open(cut.client, { sinceRevision: resumeFrom, epoch: synced.epoch }, keyAuth(KEY));
    closers.push(() => resumed.cancel());
    const missed: WatchInstancesResponse[] = [];
    while (missed.length < during.length) {
      const next = await resumed.next(5000);
      if (next.type !== EventType.EVENT_TYPE_BOOKMARK) missed.push(next);
    }
    expect(missed.every((e) => e.type === EventType.EVENT_TYPE_INSTANCE_REGISTERED && !e.snapshot)).toBe(true);
    const byRevision = [...during].sort((a, b) => a.instance!.revision - b.instance!.revision);
    expect(missed.map((e) => `${e.revision}:${e.instance?.id}`)).toEqual(byRevision.map((r) => `${r.instance!.revision}:${r.serviceId}`));
  }, 60_000);

  it("with a longer ETCD_LIVENESS_WINDOW_MS, rides out a partition shorter than it with its watch streams open, and counts etcd lost only once it has passed", async () => {
    // Two paths to etcd, as with several members: with one, a connection its
    // keepalive ping finds dead counts as etcd lost at once, window or not.
    const { hostname, port } = new URL(etcd.endpoint);
    const second = await startFaultProxy(hostname, Number(port));
    closers.push(() => void second.close());
    const cut = await replica(`${proxy.url},${second.url}`, { ETCD_LIVENESS_WINDOW_MS: "8000" });
    await registerVia(cut.client, 8500);
    const health = await servingHealth(cut.address);
    const watch = WatchCursor.open(cut.client, {}, keyAuth(KEY));
    closers.push(() => watch.cancel());
    let event: WatchInstancesResponse;
    do event = await watch.next(5000);
    while (event.type !== EventType.EVENT_TYPE_SYNCED);

    // Longer than the default window (the tests above see NOT_SERVING within 4 s of the cut), shorter than this one.
    proxy.blackhole();
    second.blackhole();
    await expect(health.next(4500)).rejects.toThrow("no health watch message within 4500 ms");
    proxy.heal();
    second.heal();
    const after = await registerVia(cut.client, 8501);
    // The same stream, never ended, carries the next change.
    do event = await watch.next(5000);
    while (event.type === EventType.EVENT_TYPE_BOOKMARK);
    expect(event).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REGISTERED, instance: { id: after.serviceId } });

    // Cut again, for good: etcd is counted lost at this window, not the default one.
    proxy.blackhole();
    second.blackhole();
    const cutAt = Date.now();
    // Its last answered check came at most one check interval (0.5 s) before the cut; timers only run late.
    expect(await health.next(15_000)).toBe("NOT_SERVING");
    expect(Date.now() - cutAt).toBeGreaterThan(7000);
  }, 60_000);

  it("after a partition that ends in a reset, serves again only once it has replayed everything it missed", async () => {
    const cut = await replica(proxy.url);
    const direct = await replica(etcd.endpoint);
    const first = await registerVia(cut.client, 9000);
    const health = await servingHealth(cut.address);

    proxy.blackhole();
    expect(await health.next(4000)).toBe("NOT_SERVING");
    // More than etcd sends a re-created watch in one batch (1000 revisions):
    // the replay after the reset takes several etcd sync rounds.
    const during = [];
    for (let batch = 0; batch < 22; batch++) {
      during.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => registerVia(direct.client, 10_000 + batch * 50 + i)))));
    }
    const total = during.length + 1;

    // The connection is reset: etcd answers the replica's reads at once on a
    // new one, while its watch re-creates itself from the old revision and replays.
    proxy.reset();
    let served = false;
    const sampling = (async () => {
      while (!served) {
        const got = await getApi(cut.client).catch((e: ServiceError) => e);
        if (got instanceof Error) expect(got.code).toBe(status.UNAVAILABLE);
        else expect(got.instances.length, "a read answered before the replica caught up").toBe(total);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const healed = await health.next(20_000).finally(() => (served = true));
    expect(healed).toBe("SERVING");
    await sampling;
    const after = await getApi(cut.client);
    expect(after.instances.map((i) => i.id).sort()).toEqual([first.serviceId, ...during.map((r) => r.serviceId)].sort());
  }, 90_000);

  it("still stops on SIGTERM, with exit code 0, while cut off (it does not wait for etcd to answer its goodbyes)", async () => {
    const cut = await replica(proxy.url);
    const health = await servingHealth(cut.address);
    proxy.blackhole();
    expect(await health.next(4000)).toBe("NOT_SERVING");
    cut.proc.kill("SIGTERM");
    // Within the call timeout twice over (the watch's cancel, the lease's revoke) plus the shutdown's own steps.
    const code = await Promise.race([cut.proc.exited, new Promise((resolve) => setTimeout(() => resolve("still running"), 15_000))]);
    expect(code).toBe(0);
    expect(cut.proc.output()).toContain('"msg":"stopped"');
  }, 60_000);
});
