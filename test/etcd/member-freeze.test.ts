import { noop } from "cockatiel";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from "../support/etcd-cluster.js";
import { replicaWriter, startEtcdReplica } from "../support/etcd-replica.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
/** What a client gives each call: less than the store's etcd call timeout, as the SDK's default is. */
const DEADLINE_MS = 2000;
/** The replica's membership lease TTL (the default), s: each freeze outlasts it. */
const MEMBER_TTL_S = 5;
/** Where the replica announces its membership (the default prefix). */
const MEMBERS_PREFIX = "/service-registry/members/";

/**
 * A frozen etcd member (SIGSTOP) keeps its connections open: a call sent to
 * it, and a watch stream on it, wait instead of failing. With the other two
 * members keeping quorum, a replica must keep taking writes: its calls and
 * its watch go to the members that answer. Each member is frozen in turn, so
 * one of them is the member the replica's watch is on, one is the raft leader.
 */
describe.skipIf(!etcdPresent)("a replica on a 3-member etcd while one member is frozen", () => {
  let etcd: EtcdCluster;
  let replica: ServerProcess;
  let writer: ReturnType<typeof replicaWriter>;
  const registerAndList = (): Promise<string> => writer.registerAndList();

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    replica = await startEtcdReplica(etcd.endpoints.join(","), KEY, { ETCD_MEMBER_TTL_S: String(MEMBER_TTL_S) });
    writer = replicaWriter(replica.port, KEY, "frozen-member", 20_000, DEADLINE_MS);
  }, 30_000);
  afterAll(async () => {
    writer?.close();
    if (replica) {
      replica.kill("SIGKILL");
      await replica.exited;
    }
    for (const m of etcd?.members ?? []) m.thaw();
    await etcd?.close();
  });

  it.each([0, 1, 2])("keeps acknowledging and listing Registers, and its membership, while member m%i is frozen", async (index) => {
    const member = etcd.members[index]!;
    await waitFor(() => registerAndList().then(() => true, () => false), "the replica to take writes before the freeze", 10_000);
    const leader = await etcd.leader();
    const outputBefore = replica.output().length;
    const frozenAt = Date.now();
    member.freeze();
    try {
      // Calls sent before the replica noticed may wait on the member; a frozen leader also leaves
      // etcd without one until the others elect another, and the replica catches up after that.
      await waitFor(
        () => replica.output().includes(`"endpoint":"${member.endpoint}","msg":"etcd member stopped answering`),
        () => `the replica to notice that ${member.name} stopped answering:\n${replica.output().slice(-2000)}`,
        8000,
      );
      await waitFor(() => registerAndList().then(() => true, () => false), `a Register acknowledged and listed while ${member.name} is frozen`, 8000);
      // From then on the writes go through: the frozen member is out of the choice, and the watch
      // is not on it (one miss is allowed for the load CI runs under); before members were checked,
      // most of them failed.
      const failures: string[] = [];
      for (let i = 0; i < 10; i++) await registerAndList().catch((err: Error) => failures.push(err.message));
      expect(failures.length, failures.join("\n")).toBeLessThanOrEqual(1);
      // Held past the membership TTL: a lease keep-alive stream on the frozen member must not cost the lease.
      await new Promise((r) => setTimeout(r, MEMBER_TTL_S * 1000 + 1000 - (Date.now() - frozenAt)));
      expect(replica.output().slice(outputBefore)).not.toContain("membership lease lost");
      // A frozen follower leaves etcd answering: the replica must not have refused reads and writes
      // meanwhile (a frozen leader leaves etcd without one until the others elect another).
      if (member !== leader) expect(replica.output().slice(outputBefore)).not.toContain("store unreachable");
    } finally {
      member.thaw();
    }
    await settledAfterThaw(member);
  }, 60_000);

  it("completes Registers already waiting on a member when it freezes: their etcd calls go again, to the members that answer", async () => {
    // A deadline past the replica's own etcd budget (3 s): a Register waiting on the frozen member fails only at that budget.
    const writer4s = replicaWriter(replica.port, KEY, "in-flight-freeze", 30_000, 4000);
    try {
      const failures = await whileFollowerFrozen(writer4s, async () => {
        // Sent at once, right after the freeze: each Register makes a few etcd calls, each to a member
        // picked at random, so some wait on the frozen one until the replica takes it out of the choice.
        const results = await Promise.allSettled(Array.from({ length: 12 }, () => writer4s.registerAndList()));
        return results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
      });
      expect(failures, failures.join("\n")).toEqual([]);
    } finally {
      writer4s.close();
    }
  }, 60_000);

  it("lets no Register attempt left waiting on a frozen member commit after another attempt did: not even once the instance is removed", async () => {
    const writer4s = replicaWriter(replica.port, KEY, "resent-claim", 40_000, 4000);
    const direct = new Etcd3({ hosts: [...etcd.endpoints] });
    try {
      const ids = await whileFollowerFrozen(writer4s, async () => {
        // Some of these attempts wait on the frozen member and are sent again at the take-out.
        const registered = await Promise.all(Array.from({ length: 12 }, () => writer4s.registerAndList()));
        // Removed while the attempts left behind still wait, and while their fence lease still
        // lives: on the thaw, they find no instance and no address record, as before they were sent.
        for (const id of registered) await writer4s.unregister(id);
        return registered;
      });
      // Once every fence lease is gone (the membership lease is the only one of 5 s), nothing left can commit.
      await waitFor(async () => {
        const { leases } = await direct.leaseClient.leaseLeases({});
        const ttls = await Promise.all(leases.map((l) => direct.leaseClient.leaseTimeToLive({ ID: l.ID, keys: false })));
        return ttls.every((t) => Number(t.grantedTTL) >= MEMBER_TTL_S || Number(t.TTL) < 0);
      }, "every fence lease to expire", 15_000);
      const left = await direct.getAll().prefix("/service-registry/instances/").keys();
      expect(left.filter((k) => ids.some((id) => k.endsWith(id)))).toEqual([]);
    } finally {
      writer4s.close();
      direct.close();
    }
  }, 60_000);

  /**
   * Once `writer` has a write taken, freezes a follower (the other two keep
   * quorum) for as long as `during` runs, then thaws it and lets etcd settle.
   */
  async function whileFollowerFrozen<T>(writer: ReturnType<typeof replicaWriter>, during: () => Promise<T>): Promise<T> {
    await waitFor(() => writer.registerAndList().then(() => true, () => false), "the replica to take writes before the freeze", 10_000);
    const leader = await etcd.leader();
    const follower = etcd.members.find((m) => m !== leader)!;
    follower.freeze();
    let result: T;
    try {
      result = await during();
    } finally {
      follower.thaw();
    }
    await settledAfterThaw(follower);
    return result;
  }

  /** The lease of the replica's membership key and its seconds left, as etcd holds them; undefined when it has none. */
  async function membershipLease(client: Etcd3, options: { deadline: number }): Promise<{ lease: string; ttl: number } | undefined> {
    const { kvs } = await client.getAll().prefix(MEMBERS_PREFIX).options(options).exec();
    const lease = kvs[0]?.lease;
    if (lease === undefined || lease === "0") return undefined;
    const { TTL } = await client.leaseClient.leaseTimeToLive({ ID: lease, keys: false }, options);
    return Number(TTL) > 0 ? { lease, ttl: Number(TTL) } : undefined;
  }

  /**
   * A leader thawed after the lease TTL may still act as leader for a moment
   * and revoke every lease that ran out in its stale view (etcd issue 15247;
   * Debian's 3.4.23 has no fix). The replica then loses its membership and
   * rejoins. That is etcd's doing and comes after the freeze a test is
   * about: wait until the thawed member answers as part of the current term
   * (its stale revokes were sent by then) and the replica's membership lease
   * (rejoined under a new one if it was revoked) has been renewed since, so
   * that none lands in the next test's freeze. Any member, not only the
   * leader when the freeze began: the leader may change just before it.
   */
  async function settledAfterThaw(member: EtcdMember): Promise<void> {
    // No circuit breaker or retry of etcd3's: each read is one attempt, repeated by waitFor.
    const thawed = new Etcd3({ hosts: member.endpoint, faultHandling: { host: () => noop, global: noop } });
    const any = new Etcd3({ hosts: [...etcd.endpoints] });
    const deadline = (): { deadline: number } => ({ deadline: Date.now() + 1000 });
    try {
      await waitFor(
        () => thawed.get("settled").options(deadline()).exec().then(() => true, () => false),
        `${member.name} to answer again after the thaw`,
        10_000,
      );
      // A stale revoke lands before the replica's next renewal goes through, and then the replica
      // rejoins under a new lease: wait until the membership lease etcd holds has been renewed.
      let seen: { lease: string; ttl: number } | undefined;
      await waitFor(
        async () => {
          const now = await membershipLease(any, deadline()).catch(() => undefined);
          if (now === undefined) return false;
          const renewed = seen !== undefined && now.lease === seen.lease && now.ttl > seen.ttl;
          if (seen === undefined || now.lease !== seen.lease || now.ttl < seen.ttl) seen = now;
          return renewed;
        },
        "the replica's membership lease to be renewed after the thaw",
        15_000,
        100,
      );
    } finally {
      thawed.close();
      any.close();
    }
  }
});
