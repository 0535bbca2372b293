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

  it("a client whose replica dies reconnects to another (through the same address) and keeps working, with that replica's state", async () => {
    const etcd = await startEtcd();
    cleanup.push(() => etcd.close());
    const replica = async (): Promise<ServerProcess> => {
      const p = await startEtcdReplica(etcd.endpoint, KEY);
      cleanup.push(() => p.kill("SIGKILL"));
      return p;
    };
    const [a, b] = await Promise.all([replica(), replica()]);
    // One address for the control plane, as a DNS name or a load balancer gives clients: first replica a.
    const front = await startFaultProxy("127.0.0.1", a.port);
    cleanup.push(() => front.close());
    const viaB = new RegistryServiceClient(`127.0.0.1:${b.port}`, credentials.createInsecure());
    cleanup.push(() => viaB.close());
    const backends = await Promise.all(["x", "y", "z"].map((n) => startWhoBackend(n)));
    for (const w of backends) cleanup.push(() => w.close());
    const register = async (port: number) =>
      (await call(viaB, viaB.register, { serviceType: "billing", host: "127.0.0.1", port, metadata: {} }, keyAuth(KEY))).serviceId;
    const ids = [await register(backends[0]!.port), await register(backends[1]!.port)];

    const channel = whoClient("xds:///billing", { [XDS_BOOTSTRAP_OPTION]: JSON.stringify(xdsBootstrap(`127.0.0.1:${front.port}`, { registry_key: KEY })) });
    cleanup.push(() => channel.close());
    const seen = new Set<string>();
    while (seen.size < 2) {
      const answer = await channel.call();
      if (typeof answer === "string") seen.add(answer);
    }
    expect(seen).toEqual(new Set(["x", "y"]));

    // Replica a dies; the address now leads to b.
    front.retarget("127.0.0.1", b.port);
    a.kill("SIGKILL");
    await a.exited;
    // Calls go on through the endpoints the client has.
    for (let i = 0; i < 6; i++) expect(["x", "y"]).toContain(await channel.call());

    // Changes made now reach the client through b's stream: z joins, x leaves.
    await register(backends[2]!.port);
    await call(viaB, viaB.unregister, { instanceId: ids[0]! }, keyAuth(KEY));
    const until = Date.now() + 15_000;
    let recent: (string | number)[] = [];
    while (Date.now() < until) {
      recent = [...recent.slice(-5), await channel.call()];
      if (recent.length === 6 && recent.every((r) => r === "y" || r === "z") && recent.includes("z")) break;
    }
    expect(new Set(recent)).toEqual(new Set(["y", "z"]));
  }, 60_000);

  it("a client whose replica freezes (SIGSTOP), or whose link to it is blackholed, keeps calling the endpoints it has, and follows the changes made meanwhile once it thaws or heals", async () => {
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
    await settlesOn(["x", "y"], "before the faults");

    // Frozen: no FIN, no RST, the control plane just stops answering.
    a.kill("SIGSTOP");
    for (let i = 0; i < 6; i++) expect(["x", "y"]).toContain(await channel.call());
    await register(backends[2]!.port);
    for (let i = 0; i < 6; i++) expect(["x", "y"]).toContain(await channel.call());
    a.kill("SIGCONT");
    await settlesOn(["x", "y", "z"], "after the replica thawed");

    // Blackholed: bytes held both ways, the connection left open.
    front.blackhole();
    await call(viaB, viaB.unregister, { instanceId: ids[0]! }, keyAuth(KEY));
    for (let i = 0; i < 6; i++) expect(["x", "y", "z"]).toContain(await channel.call());
    front.heal();
    await settlesOn(["y", "z"], "after the link healed");
  }, 90_000);
});
