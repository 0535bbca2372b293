import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from "../support/etcd-cluster.js";
import { replicaWriter, startEtcdReplica } from "../support/etcd-replica.js";
import { healthClient } from "../support/health-client.js";
import { keyAuth, WatchCursor } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
const TYPE = "killed-member";
/** What a client gives each call: less than the store's etcd call timeout, as the SDK's default is. */
const DEADLINE_MS = 2000;

/**
 * A killed etcd member (SIGKILL, as in a crash or a rolling restart) breaks
 * every stream on it at once, the replica's own watch included when it is
 * there. With the other two members keeping quorum, etcd still answers: the
 * replica must not refuse calls, end its watch streams or report
 * NOT_SERVING for it. Each member is killed in turn, so one of them is the
 * member the replica's watch is on and one is the raft leader (whose death
 * costs an election, during which writes wait); then the member the watch
 * is on, found from etcd's metrics, and the leader twice more.
 */
describe.skipIf(!etcdPresent)("a replica on a 3-member etcd while one member is killed", () => {
  let etcd: EtcdCluster;
  let replica: ServerProcess;
  let writer: ReturnType<typeof replicaWriter>;
  let client: RegistryServiceClient;
  let health: ReturnType<typeof healthClient>;

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    replica = await startEtcdReplica(etcd.endpoints.join(","), KEY, { ETCD_MEMBER_TTL_S: "5" });
    writer = replicaWriter(replica.port, KEY, TYPE, 20_000, DEADLINE_MS);
    client = new RegistryServiceClient(`127.0.0.1:${replica.port}`, credentials.createInsecure());
    health = healthClient(`127.0.0.1:${replica.port}`);
  }, 30_000);
  afterAll(async () => {
    writer?.close();
    client?.close();
    health?.close();
    if (replica) {
      replica.kill("SIGKILL");
      await replica.exited;
    }
    await etcd?.close();
  });

  // Each member in turn, then the raft leader twice more: an election that outlasts the liveness
  // window (etcd's default timing allows up to about 2 s) would take the replica out.
  const victims: { name: string; pick: () => EtcdMember | Promise<EtcdMember>; holdsWatch?: true }[] = [
    ...[0, 1, 2].map((i) => ({ name: `member m${i}`, pick: () => etcd.members[i]! })),
    { name: "the member holding the replica's etcd watch", pick: () => watchHolder(), holdsWatch: true },
    { name: "the raft leader", pick: () => etcd.leader() },
    { name: "the new raft leader", pick: () => etcd.leader() },
  ];

  it.each(victims)("keeps serving, with its watch streams open and its health SERVING, when $name is killed", async ({ pick, holdsWatch }) => {
    const member = await pick();
    await waitFor(() => writer.registerAndList().then(() => true, () => false), "the replica to take writes before the kill", 10_000);
    const healthStatuses: string[] = [];
    const healthStream = health.watch({ service: "" });
    healthStream.on("data", (m: { status: string }) => healthStatuses.push(m.status));
    healthStream.on("error", () => undefined); // cancelled at the end of the case
    const watch = WatchCursor.open(client, { serviceType: TYPE }, keyAuth(KEY));
    try {
      while ((await watch.next(5000)).type !== EventType.EVENT_TYPE_SYNCED);
      await waitFor(() => healthStatuses.length > 0, "the health watch's first status", 5000);
      expect(healthStatuses).toEqual(["SERVING"]);
      const outputBefore = replica.output().length;

      await member.kill();
      try {
        await waitFor(
          () => replica.output().slice(outputBefore).includes(`"endpoint":"${member.endpoint}","msg":"etcd member stopped answering`),
          () => `the replica to notice that ${member.name} (${member.endpoint}) is gone:\n${logSince(outputBefore)}`,
          10_000,
        );
        // The first Register acknowledged after that: its acknowledgement waited for the
        // replica's watch to deliver it, so the watch lives on another member. Writes sent while
        // etcd elects a new leader (the leader's kill) may fail (deadline, or etcd's own error, to
        // retry), but the replica never refuses one for having lost its store.
        const failures: string[] = [];
        let id: string | undefined;
        const until = Date.now() + 10_000;
        while (id === undefined && Date.now() < until) id = await writer.registerAndList().catch((err: Error) => void failures.push(err.message));
        expect(id, `no Register acknowledged within 10 s of the kill:\n${failures.join("\n")}`).toBeDefined();
        expect(failures.filter((f) => f.includes("lost its store")), failures.join("\n")).toEqual([]);

        // The open watch stream was not ended and missed nothing: it delivers that instance.
        let event;
        do event = await watch.next(5000);
        while (event.instance?.id !== id);
        expect(event.type).toBe(EventType.EVENT_TYPE_INSTANCE_REGISTERED);
        expect(healthStatuses).toEqual(["SERVING"]);
        expect(replica.output().slice(outputBefore)).not.toContain("store unreachable");
      } finally {
        await member.start();
      }
      // The others may have been taken out meanwhile too (etcd answers "leader changed" during an
      // election): the next kill starts with every member answering.
      await waitFor(
        () => etcd.endpoints.every(answeringInLog),
        () => `the replica to see every member answer again:\n${logSince(outputBefore)}`,
        10_000,
      );
      // Nor did it turn unavailable later, once its liveness window had passed.
      expect(healthStatuses).toEqual(["SERVING"]);
      expect(replica.output().slice(outputBefore)).not.toContain("store unreachable");
      if (holdsWatch) expect(logSince(outputBefore)).toContain(`"from":"${member.endpoint}","to":`);
    } finally {
      watch.cancel();
      healthStream.cancel();
    }
  }, 60_000);

  /**
   * The member the replica's one etcd watch is on: the only one counting a
   * watcher (etcd's own gauge; nothing else here watches). Waits while a
   * moved-away watch is still being cancelled.
   */
  async function watchHolder(): Promise<EtcdMember> {
    const watchers = async (m: EtcdMember): Promise<number> => {
      const text = await (await fetch(`${m.endpoint}/metrics`)).text();
      return Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    let holders: EtcdMember[] = [];
    await waitFor(
      async () => {
        const counts = await Promise.all(etcd.members.map(watchers));
        holders = etcd.members.filter((_, i) => counts[i]! > 0);
        return holders.length === 1;
      },
      () => `one member to hold the replica's watch (now: ${holders.map((m) => m.name).join(", ") || "none"})`,
      10_000,
      100,
    );
    return holders[0]!;
  }

  /** What the replica last logged of `endpoint`: it answers unless it stopped answering since. */
  function answeringInLog(endpoint: string): boolean {
    const log = replica.output();
    return log.lastIndexOf(`"endpoint":"${endpoint}","msg":"etcd member stopped answering`) <= log.lastIndexOf(`"endpoint":"${endpoint}","msg":"etcd member answers again`);
  }

  /** The replica's log from `offset` on, without its per-instance lines. */
  function logSince(offset: number): string {
    return replica.output().slice(offset).split("\n").filter((l) => !l.includes('"msg":"instance registered"')).join("\n");
  }
});
