import { Etcd3 } from "etcd3";
// etcd3's switch for tests: try members in a fixed order (last endpoint first) instead of at random.
import { ConnectionPool } from "etcd3/lib/connection-pool.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import type { MembershipEvent } from "../../src/store/etcd/rejoin-loop.js";
import { startEtcdCluster, type EtcdCluster } from "../support/etcd-cluster.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const PREFIX = "/renewal-test/";
const TTL_S = 3;

describe.skipIf(!etcdPresent)("the membership lease when one member is killed and another goes silent", () => {
  let cluster: EtcdCluster;
  let proxy: FaultProxy;
  let observer: Etcd3;
  let store: EtcdStore | undefined;
  const deterministicBefore = ConnectionPool.deterministicOrder;

  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
  }, 60_000);
  afterAll(async () => {
    ConnectionPool.deterministicOrder = deterministicBefore;
    await store?.close();
    observer?.close();
    await proxy?.close();
    await cluster?.close();
  }, 60_000);

  it("is renewed through the member that still answers, before it expires", async () => {
    // Both faults hit followers: the cluster keeps its leader and quorum, so
    // every renewal sent to the leader is answered.
    const leader = await cluster.leader();
    const [killed, silenced] = cluster.members.filter((m) => m !== leader);
    proxy = await startFaultProxy("127.0.0.1", Number(new URL(silenced!.endpoint).port));
    observer = new Etcd3({ hosts: leader.endpoint });

    // Calls and the lease's keep-alive go to the last endpoint first, then
    // the one before: when `killed` is taken out, the next renewal goes to the
    // silenced member, which is taken out only when its check's deadline has
    // passed. Before the fix that renewal held the only renewal slot for the
    // whole call timeout, longer than the lease had left.
    ConnectionPool.deterministicOrder = true;
    const events: (MembershipEvent & { at: number })[] = [];
    store = new EtcdStore({
      endpoints: [leader.endpoint, proxy.url, killed!.endpoint],
      prefix: PREFIX,
      replicaId: "replica-r",
      memberTtlSeconds: TTL_S,
      // Members checked often, so the silenced one is taken out well before the lease has run out:
      // the renewal sent again then has time to land; the renewal held for the call timeout had not.
      liveness: { intervalMs: 200, deadlineMs: 400 },
      onMembership: (event) => events.push({ ...event, at: Date.now() }),
    });
    await store.open(() => {});
    const memberKey = `${PREFIX}members/replica-r`;
    const leaseBefore = (await observer.get(memberKey).exec()).kvs[0]?.lease;
    expect(leaseBefore).toBeDefined();
    expect(leaseBefore).not.toBe("0");

    const faultAt = Date.now();
    await killed!.kill();
    proxy.blackhole();

    // Past the latest moment the lease could have expired (a whole TTL after
    // the fault, plus etcd's half-second sweep), the same lease still holds
    // the member key, with time left: it was renewed meanwhile.
    const until = faultAt + TTL_S * 1000 + 1000;
    let lease: { id: string | undefined; ttl: number } | undefined;
    await waitFor(
      async () => {
        if (events.some((e) => e.kind === "lost")) return true;
        if (Date.now() < until) return false;
        const id = (await observer.get(memberKey).exec()).kvs[0]?.lease;
        const ttl = id && id !== "0" ? Number((await observer.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL) : -1;
        lease = { id, ttl };
        return true;
      },
      "the lease's fate a TTL after the fault",
      TTL_S * 1000 + 5000,
      100,
    );
    expect(events.filter((e) => e.kind === "lost").map((e) => `lost ${e.at - faultAt} ms after the fault`)).toEqual([]);
    expect(lease?.id).toBe(leaseBefore);
    expect(lease?.ttl).toBeGreaterThan(0);
  }, 60_000);
});
