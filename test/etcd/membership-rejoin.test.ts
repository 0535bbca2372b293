import { ExponentialBackoff } from "cockatiel";
import { Etcd3, type IWatchResponse } from "etcd3";
import { afterEach, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import type { MembershipEvent } from "../../src/store/etcd/rejoin-loop.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const PREFIX = "/rejoin-test/";
const MEMBER_KEY = `${PREFIX}members/replica-a`;
const SENTINEL_KEY = `${PREFIX}zz-sentinel`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** Every Put of the member key etcd committed after `after`: read from etcd's own history. */
async function memberPutsSince(observer: Etcd3, after: number): Promise<number> {
  const sentinel = await observer.put(SENTINEL_KEY).value(String(Date.now())).exec();
  const end = Number(sentinel.header.revision);
  let puts = 0;
  const watcher = await observer.watch().prefix(PREFIX).startRevision(String(after + 1)).create();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("etcd history of the member key did not arrive within 10 s")), 10_000);
      watcher.on("data", (res: IWatchResponse) => {
        for (const e of res.events) {
          if (e.type === "Put" && e.kv.key.toString() === MEMBER_KEY) puts++;
          if (Number(e.kv.mod_revision) >= end) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
    });
  } finally {
    await watcher.cancel();
  }
  return puts;
}

describe.skipIf(!etcdPresent)("membership after an etcd outage longer than 2×TTL", () => {
  let etcd: EtcdProcess | undefined;
  let store: EtcdStore | undefined;
  let observer: Etcd3 | undefined;
  let etcdDown = false;
  let sampler: NodeJS.Timeout | undefined;
  afterEach(async () => {
    clearInterval(sampler);
    if (etcdDown) await etcd?.start(); // stop() on a killed etcd would wait forever
    etcdDown = false;
    await store?.close();
    observer?.close();
    await etcd?.close();
  });

  it("rejoins once, from one loop with jittered backoff: bounded attempts during the outage, one put after it", async () => {
    etcd = await startEtcd();
    observer = new Etcd3({ hosts: etcd.endpoint });
    const initialDelay = 100;
    const maxDelay = 2000;
    const outageMs = 8000;
    const events: (MembershipEvent & { at: number })[] = [];
    store = new EtcdStore({
      endpoints: [etcd.endpoint],
      prefix: PREFIX,
      replicaId: "replica-a",
      memberTtlSeconds: 1,
      callTimeoutMs: 500,
      rejoinBackoff: new ExponentialBackoff({ initialDelay, maxDelay }),
      onMembership: (event) => events.push({ ...event, at: Date.now() }),
    });
    await store.open(() => {});
    const joined = await observer.get(MEMBER_KEY).exec();
    const joinedAt = Number(joined.kvs[0]?.mod_revision ?? Number.NaN);
    expect(joinedAt).toBeGreaterThan(0);

    // etcd gone for 8 s: the client-side lease is lost after 2×TTL = 2 s, and
    // etcd3's circuit breaker then fails every call at once, so each retry
    // that is not spaced by a backoff comes back immediately.
    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 200);
    const killedAt = Date.now();
    await etcd.stop();
    etcdDown = true;
    await sleep(outageMs);
    const restartedAt = Date.now();
    await etcd.start();
    etcdDown = false;

    // Back as a member, by etcd's account (the put of a new lease after the restart).
    const rejoined = async () => {
      const res = await observer!.get(MEMBER_KEY).exec().catch(() => undefined);
      return Number(res?.kvs[0]?.mod_revision ?? 0) > joinedAt;
    };
    const rejoinedInTime = await waitFor(rejoined, "the member key put again", 10_000, 100).then(
      () => true,
      () => false,
    );
    // Memory flat through the outage and the recovery: doubling retries
    // held thousands of leases and their promises (0.5 to 1.6 GB here).
    expect((heapPeak - heapBefore) / 2 ** 20, "heap growth, MB").toBeLessThan(64);
    expect(rejoinedInTime, "the replica put its member key again within 10 s of etcd's return").toBe(true);
    // Settle for more than 2×TTL: no late burst of queued joins, and the new
    // lease is kept alive (an abandoned one would expire the key).
    await sleep(2500);
    clearInterval(sampler);

    const putsAfterRecovery = await memberPutsSince(observer, joinedAt);
    const attemptsDuringOutage = events.filter((e) => e.kind === "attempt" && e.at >= killedAt && e.at < restartedAt).length;
    const joinsAfterOutage = events.filter((e) => e.kind === "joined" && e.at >= killedAt).length;
    const losses = events.filter((e) => e.kind === "lost").length;
    const heapGrowthMb = (heapPeak - heapBefore) / 2 ** 20;
    console.log({ rejoinedInTime, putsAfterRecovery, attemptsDuringOutage, joinsAfterOutage, losses, heapGrowthMb });

    // etcd's own history: at most 3 puts of the member key after recovery
    // (doubling retries put once per queued join), and at least the rejoin.
    expect(putsAfterRecovery).toBeLessThanOrEqual(3);
    expect(putsAfterRecovery).toBeGreaterThanOrEqual(1);
    expect(heapGrowthMb).toBeLessThan(64);
    expect(losses).toBe(1);
    expect(joinsAfterOutage).toBe(1);
    // The bound: attempts spaced by exponential backoff from `initialDelay`
    // capped at `maxDelay` number at most log2(outage / initialDelay) to reach
    // the cap, one per `maxDelay` after it, plus the first attempt and slack
    // for jitter: ceil(log2(80)) + 8000 / 2000 + 2 = 13 for this outage.
    const bound = Math.ceil(Math.log2(outageMs / initialDelay)) + Math.ceil(outageMs / maxDelay) + 2;
    expect(attemptsDuringOutage).toBeLessThanOrEqual(bound);
    expect(attemptsDuringOutage).toBeGreaterThanOrEqual(1);

    // A member again: the key is still there after 2×TTL, under a live lease, and the replica counts itself.
    const now = await observer.get(MEMBER_KEY).exec();
    expect(now.kvs[0]?.lease).not.toBe("0");
    expect(store.probeOwnership.memberList()).toContain("replica-a");
  }, 45_000);

  it("stops the rejoin loop on close(): no attempt after it, even with etcd still down", async () => {
    etcd = await startEtcd();
    const events: (MembershipEvent & { at: number })[] = [];
    store = new EtcdStore({
      endpoints: [etcd.endpoint],
      prefix: PREFIX,
      replicaId: "replica-a",
      memberTtlSeconds: 1,
      callTimeoutMs: 500,
      rejoinBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 400 }),
      onMembership: (event) => events.push({ ...event, at: Date.now() }),
    });
    await store.open(() => {});
    await etcd.stop();
    etcdDown = true;
    await waitFor(() => events.some((e) => e.kind === "failed"), "a failed rejoin attempt", 10_000, 100);
    await store.close();
    store = undefined;
    const closedAt = Date.now();
    await sleep(1500);
    expect(events.filter((e) => e.kind === "attempt" && e.at > closedAt)).toEqual([]);
  }, 30_000);
});
