import { credentials } from "@grpc/grpc-js";
import { register as registerXds } from "@grpc/grpc-js-xds";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { etcdPresent } from "./etcd-suite.js";
import { startEtcd } from "../support/etcd-process.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { call, keyAuth } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { startWhoBackend, whoClient, xdsBootstrap, XDS_BOOTSTRAP_OPTION } from "../support/xds-backend.js";

const KEY = "xds-replica-suite-key-0123456789";

describe.skipIf(!etcdPresent)("xDS on replicas sharing one etcd", () => {
  const cleanup: (() => unknown)[] = [];
  beforeAll(() => registerXds());
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /**
   * Two replicas on one etcd; an xDS client reaching replica a through a
   * fault proxy (one address, as a DNS name or a load balancer gives
   * clients); registrations made through replica b, two of the three "who"
   * backends registered and seen by the client's round robin.
   */
  async function clientOnReplicaA() {
    const etcd = await startEtcd();
    cleanup.push(() => etcd.close());
    const replica = async (): Promise<ServerProcess> => {
      const p = await startEtcdReplica(etcd.endpoint, KEY);
      cleanup.push(() => p.kill("SIGKILL"));
      return p;
    };
    const [a, b] = await Promise.all([replica(), replica()]);
    cleanup.push(() => a.kill("SIGCONT"));
    const front = await startFaultProxy("127.0.0.1", a.port);
    cleanup.push(() => front.close());
    const viaB = new RegistryServiceClient(`127.0.0.1:${b.port}`, credentials.createInsecure());
    cleanup.push(() => viaB.close());
    const backends = await Promise.all(["x", "y", "z"].map((n) => startWhoBackend(n)));
    for (const w of backends) cleanup.push(() => w.close());
    const register = async (port: number) =>
      (await call(viaB, viaB.register, { serviceType: "billing", host: "127.0.0.1", port, metadata: {} }, keyAuth(KEY))).serviceId;
    const unregister = (id: string) => call(viaB, viaB.unregister, { instanceId: id }, keyAuth(KEY));
    const ids = [await register(backends[0]!.port), await register(backends[1]!.port)];
    const channel = whoClient("xds:///billing", { [XDS_BOOTSTRAP_OPTION]: JSON.stringify(xdsBootstrap(`127.0.0.1:${front.port}`, { registry_key: KEY })) });
    cleanup.push(() => channel.close());
    /** Calls until the last six answers are exactly `names` (every one of them among the six). */
    const settlesOn = async (names: string[], what: string) => {
      const until = Date.now() + 20_000;
      let recent: (string | number)[] = [];
      while (Date.now() < until) {
        recent = [...recent.slice(-5), await channel.call()];
        if (recent.length === 6 && recent.every((r) => names.includes(r as string)) && names.every((n) => recent.includes(n))) return;
      }
      throw new Error(`${what}: the last calls went to ${JSON.stringify(recent)}`);
    };
    /** Six calls, each to one of `names`: the client keeps the endpoints it has. */
    const staysOn = async (names: string[]) => {
      for (let i = 0; i < 6; i++) expect(names).toContain(await channel.call());
    };
    await settlesOn(["x", "y"], "before the faults");
    return { a, b, front, backends, ids, register, unregister, settlesOn, staysOn };
  }

  it("a client whose replica dies reconnects to another (through the same address) and keeps working, with that replica's state", async () => {
    const { a, b, front, backends, ids, register, unregister, settlesOn, staysOn } = await clientOnReplicaA();
    // Replica a dies; the address now leads to b.
    front.retarget("127.0.0.1", b.port);
    a.kill("SIGKILL");
    await a.exited;
    await staysOn(["x", "y"]);
    // Changes made now reach the client through b's stream: z joins, x leaves.
    await register(backends[2]!.port);
    await unregister(ids[0]!);
    await settlesOn(["y", "z"], "after the replica died");
  }, 60_000);

  it("a client whose replica freezes (SIGSTOP), or whose link to it is blackholed, keeps calling the endpoints it has, and follows the changes made meanwhile once it thaws or heals", async () => {
    const { a, front, backends, ids, register, unregister, settlesOn, staysOn } = await clientOnReplicaA();
    // Frozen: no FIN, no RST, the control plane just stops answering.
    a.kill("SIGSTOP");
    await staysOn(["x", "y"]);
    await register(backends[2]!.port);
    await staysOn(["x", "y"]);
    a.kill("SIGCONT");
    await settlesOn(["x", "y", "z"], "after the replica thawed");

    // Blackholed: bytes held both ways, the connection left open.
    front.blackhole();
    await unregister(ids[0]!);
    await staysOn(["x", "y", "z"]);
    front.heal();
    await settlesOn(["y", "z"], "after the link healed");
  }, 90_000);
});
