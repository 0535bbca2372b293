import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RegistryServiceClient, type RegisterResponse } from "../../gen/registry/v1/registry.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.js";
import { healthClient, HealthWatch } from "../support/health-client.js";
import { keyAuth } from "../support/registry-harness.js";
import type { ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";
import { startEtcdReplica } from "../support/etcd-replica.js";

const KEY = "etcd-suite-registration-key-0001";

/** Ports of the "api" instances etcd itself holds (a linearizable read, not any replica's view). */
async function portsInEtcd(etcd: Etcd3): Promise<number[]> {
  const values = await etcd.getAll().prefix("/service-registry/instances/").strings();
  return Object.values(values)
    .map((v) => JSON.parse(v) as { port: number })
    .map((i) => i.port)
    .sort((a, b) => a - b);
}

describe.skipIf(!etcdPresent)("a Register whose caller gave up", () => {
  let etcd: EtcdProcess;
  let proxy: FaultProxy;
  let replica: ServerProcess | undefined;
  let client: RegistryServiceClient | undefined;
  let direct: Etcd3 | undefined;

  beforeEach(async () => {
    etcd = await startEtcd();
    const { hostname, port } = new URL(etcd.endpoint);
    proxy = await startFaultProxy(hostname, Number(port));
  });
  afterEach(async () => {
    client?.close();
    direct?.close();
    replica?.kill("SIGKILL");
    await replica?.exited;
    await proxy.close();
    await etcd.close();
  });

  it("is not committed when the partition that held it heals after the caller's deadline", async () => {
    replica = await startEtcdReplica(proxy.url, KEY);
    client = new RegistryServiceClient(`127.0.0.1:${replica.port}`, credentials.createInsecure());
    direct = new Etcd3({ hosts: etcd.endpoint });
    const register = (port: number, deadlineMs?: number) =>
      new Promise<RegisterResponse>((resolve, reject) => {
        const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
        client!.register({ serviceType: "api", port, host: "127.0.0.1", metadata: {} }, keyAuth(KEY), options, (err, res) =>
          err ? reject(err) : resolve(res!),
        );
      });
    await register(7000);

    // The replica's writes to etcd are held in the network; its caller gives up.
    proxy.blackhole();
    const cutAt = Date.now();
    const abandoned = await register(7001, 500).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(abandoned?.code).toBe(status.DEADLINE_EXCEEDED);

    // The partition heals well after that deadline, before the replica itself
    // would notice the loss of etcd: the held bytes reach etcd now.
    await new Promise((r) => setTimeout(r, cutAt + 1500 - Date.now()));
    proxy.heal();
    // The failed Register is not a verdict on etcd: the replica serves with no
    // further writes (only a successful commit used to clear a failed one).
    const health = healthClient(`127.0.0.1:${replica.port}`);
    try {
      const statuses = new HealthWatch(health);
      let status;
      do status = await statuses.next(10_000);
      while (status !== "SERVING");
    } finally {
      health.close();
    }
    // A Register sent after the heal travels behind the held bytes.
    await register(7002);
    expect(await portsInEtcd(direct)).toEqual([7000, 7002]);
  }, 30_000);
});
