import { credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startEtcdCluster, type EtcdCluster } from "../support/etcd-cluster.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { keyAuth } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
/** What a client gives each call: less than the store's etcd call timeout, as the SDK's default is. */
const DEADLINE_MS = 2000;
/** The replica's membership lease TTL (the default), s: each freeze outlasts it. */
const MEMBER_TTL_S = 5;

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
  let client: RegistryServiceClient;
  let port = 20_000;

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    replica = await startEtcdReplica(etcd.endpoints.join(","), KEY, { ETCD_MEMBER_TTL_S: String(MEMBER_TTL_S) });
    client = new RegistryServiceClient(`127.0.0.1:${replica.port}`, credentials.createInsecure());
  }, 30_000);
  afterAll(async () => {
    client?.close();
    if (replica) {
      replica.kill("SIGKILL");
      await replica.exited;
    }
    for (const m of etcd?.members ?? []) m.thaw();
    await etcd?.close();
  });

  function unary<Req, Res>(
    method: (req: Req, md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
    request: Req,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, keyAuth(KEY), { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /** Registers an instance and resolves with whether this replica then lists it (its watch delivered it). */
  async function registerAndList(): Promise<string> {
    const { serviceId } = await unary(client.register, { serviceType: "frozen-member", host: "127.0.0.1", port: port++, metadata: {} });
    const listed = await unary(client.getByType, { serviceType: "frozen-member", includeUnhealthy: true, includeDraining: true, selector: {} });
    if (!listed.instances.some((i) => i.id === serviceId)) throw new Error(`${serviceId} was acknowledged but is not listed`);
    return serviceId;
  }

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
      // is not on it. One may still miss its deadline behind a call sent before (a Register's fence
      // lease is shared for a second); before members were checked, most of them failed.
      const failures: string[] = [];
      for (let i = 0; i < 10; i++) await registerAndList().catch((err: Error) => failures.push(err.message));
      expect(failures.length, failures.join("\n")).toBeLessThanOrEqual(1);
      // Held past the membership TTL: a lease keep-alive stream on the frozen member must not cost the lease.
      await new Promise((r) => setTimeout(r, MEMBER_TTL_S * 1000 + 1000 - (Date.now() - frozenAt)));
      expect(replica.output()).not.toContain("membership lease lost");
      // A frozen follower leaves etcd answering: the replica must not have refused reads and writes
      // meanwhile (a frozen leader leaves etcd without one until the others elect another).
      if (member !== leader) expect(replica.output().slice(outputBefore)).not.toContain("store unreachable");
    } finally {
      member.thaw();
    }
  }, 40_000);
});
