import { credentials } from "@grpc/grpc-js";
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startEtcdCluster, type EtcdCluster } from "../support/etcd-cluster.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { healthClient, HealthWatch } from "../support/health-client.js";
import { call, keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
/** Longer than the replica's 3 s liveness window, shorter than its membership TTL (below). */
const FREEZE_MS = 4000;
const MEMBER_TTL_S = "10";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The replica itself frozen (SIGSTOP: a paused VM, a debugger, a long GC)
 * for longer than its liveness window, etcd (3 members) answering all along. At the
 * thaw the window's timer runs before the answers waiting in its sockets
 * are read: the replica used to count etcd lost, log `store unreachable`,
 * end every watch stream on it with UNAVAILABLE and refuse calls until it
 * had caught up. Its silence was its own, not etcd's.
 */
describe.skipIf(!etcdPresent)("a replica on etcd frozen for longer than its liveness window", () => {
  let etcd: EtcdCluster;
  let replica: ServerProcess | undefined;
  const cleanups: (() => void)[] = [];

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
  }, 30_000);
  afterEach(async () => {
    for (const clean of cleanups.splice(0).reverse()) clean();
    for (const m of etcd.members) m.thaw();
    replica?.kill("SIGCONT");
    replica?.kill("SIGKILL");
    await replica?.exited;
    replica = undefined;
  });
  afterAll(async () => {
    await etcd?.close();
  });

  async function frozenReplica() {
    replica = await startEtcdReplica(etcd.endpoints.join(","), KEY, { ETCD_MEMBER_TTL_S: MEMBER_TTL_S });
    const address = `127.0.0.1:${replica.port}`;
    const client = new RegistryServiceClient(address, credentials.createInsecure());
    const health = healthClient(address);
    cleanups.push(() => client.close(), () => health.close());
    const watch = WatchCursor.open(client, { serviceType: "frozen" }, keyAuth(KEY));
    const healthWatch = new HealthWatch(health);
    cleanups.push(() => watch.cancel(), () => healthWatch.cancel());
    while ((await watch.next(5000)).type !== EventType.EVENT_TYPE_SYNCED);
    expect(await healthWatch.next(5000)).toBe("SERVING");
    const register = (port: number) =>
      call(client, client.register, { serviceType: "frozen", host: "127.0.0.1", port, metadata: {} }, keyAuth(KEY));
    return { replica, watch, healthWatch, register };
  }

  it("keeps serving at the thaw: no loss logged, its watch streams go on, its health stays SERVING", async () => {
    const { replica, watch, healthWatch, register } = await frozenReplica();
    const outputBefore = replica.output().length;
    replica.kill("SIGSTOP");
    await sleep(FREEZE_MS);
    replica.kill("SIGCONT");

    // A write made after the thaw reaches the stream that was open through the freeze.
    const { serviceId } = await register(7101);
    const event = await watch.next(5000);
    expect(event).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REGISTERED, instance: { id: serviceId } });
    // Past a whole window after the thaw: nothing was lost meanwhile either.
    await sleep(3500);
    await expect(healthWatch.next(100)).rejects.toThrow(/no health watch message/);
    expect(replica.output().slice(outputBefore)).not.toContain("store unreachable");
  }, 30_000);

  it("still counts etcd lost when etcd went silent during the freeze, soon after the thaw", async () => {
    const { replica, healthWatch } = await frozenReplica();
    replica.kill("SIGSTOP");
    for (const m of etcd.members) m.freeze();
    await sleep(FREEZE_MS);
    replica.kill("SIGCONT");
    const thawedAt = Date.now();
    expect(await healthWatch.next(8000)).toBe("NOT_SERVING");
    // The window ran out about a second before the thaw: extended by that, no more.
    expect(Date.now() - thawedAt).toBeLessThan(3000);
    await waitFor(() => replica.output().includes("store unreachable"), "the loss in the log", 2000);
  }, 30_000);
});
