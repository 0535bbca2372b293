import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from "../support/etcd-cluster.js";
import { replicaWriter, startEtcdReplica } from "../support/etcd-replica.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { healthStatus } from "../support/health-client.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
const DEADLINE_MS = 2000;

/**
 * One `ETCD_ENDPOINTS` address in front of several members (a Kubernetes
 * Service, a TCP load balancer, a DNS name): the replica has one connection,
 * to whichever member the balancer chose. When that member freezes
 * (SIGSTOP, a paused VM) its connection stays open and silent; the balancer
 * sends new connections elsewhere, but a replica that never opens one stays
 * on the frozen member until it thaws. gRPC keepalive pings on the etcd
 * connection end it, and the replica reconnects through the balancer.
 */
describe.skipIf(!etcdPresent)("a replica on one load-balanced etcd address whose member freezes", () => {
  let etcd: EtcdCluster;
  let balancer: FaultProxy;
  let replica: ServerProcess;
  let writer: ReturnType<typeof replicaWriter>;
  /** Registers an instance and resolves with whether this replica then lists it (its watch delivered it). */
  const registerAndList = (): Promise<boolean> => writer.registerAndList().then(() => true);
  /** The member behind the balancer at first; frozen by the test. */
  let first: EtcdMember;
  let frozen = false;

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    // Behind the balancer first: a follower, so that etcd keeps its leader and quorum throughout.
    const leader = await etcd.leader();
    first = etcd.members.find((m) => m !== leader)!;
    balancer = await startFaultProxy("127.0.0.1", Number(new URL(first.endpoint).port));
    replica = await startEtcdReplica(balancer.url, KEY);
    writer = replicaWriter(replica.port, KEY, "balanced", 21_000, DEADLINE_MS);
  }, 30_000);
  afterAll(async () => {
    writer?.close();
    if (replica) {
      replica.kill("SIGKILL");
      await replica.exited;
    }
    if (frozen) first.thaw();
    await balancer?.close();
    await etcd?.close();
  });

  it("reconnects through the balancer to a member that answers, while the first stays frozen", async () => {
    await waitFor(() => registerAndList().catch(() => false), "the replica to take writes before the freeze", 10_000);
    first.freeze();
    frozen = true;
    // The balancer's own health check takes the frozen member out: new connections go to another.
    const next = etcd.members.find((m) => m !== first)!;
    balancer.retarget("127.0.0.1", Number(new URL(next.endpoint).port));

    // It notices that etcd does not answer (its liveness window), then must come back on its own.
    await waitFor(async () => (await healthStatus(`127.0.0.1:${replica.port}`).catch(() => "gone")) === "NOT_SERVING", "the replica to notice", 10_000, 100);
    await waitFor(
      async () => (await healthStatus(`127.0.0.1:${replica.port}`).catch(() => "gone")) === "SERVING",
      () => `the replica to serve again through another member while ${first.name} is frozen:\n${replica.output().slice(-3000)}`,
      25_000,
      200,
    );
    const results: boolean[] = [];
    for (let i = 0; i < 5; i++) results.push(await registerAndList().catch(() => false));
    expect(results).toEqual([true, true, true, true, true]);
  }, 60_000);
});
