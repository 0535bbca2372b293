import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeInstance } from "../../src/store/etcd/instance-codec.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { startEtcdReplica } from "../support/etcd-replica.js";
import { servingLine, type ServerProcess } from "../support/server-process.js";
import { etcdPresent } from "./etcd-suite.js";

const KEY = "etcd-suite-registration-key-0001";
const INSTANCES = 12_000;

/**
 * gRPC clients refuse messages over 4 MiB unless told otherwise, and a
 * replica reads every instance in one range at start-up (and replays recent
 * history through its watch): a fleet of ~10,000 instances with a little
 * metadata is past that.
 */
describe.skipIf(!etcdPresent)("a replica starting on an etcd holding more than 4 MiB of instances", () => {
  let etcd: EtcdProcess;
  let replica: ServerProcess | undefined;

  beforeAll(async () => {
    etcd = await startEtcd();
    const client = new Etcd3({ hosts: etcd.endpoint, grpcOptions: { "grpc.max_receive_message_length": -1 } });
    try {
      const now = Date.now();
      const metadata = { team: "payments", region: "eu-west-1", version: "2026.12.07-build-1234567", notes: "x".repeat(200) };
      for (let from = 0; from < INSTANCES; from += 100) {
        const ops = [];
        for (let i = from; i < Math.min(from + 100, INSTANCES); i++) {
          const id = `01a24fb0-0000-7000-8000-${String(i).padStart(12, "0")}`;
          const value = encodeInstance({
            id, serviceType: `svc-${i % 50}`, host: `10.1.${(i >> 8) & 255}.${i & 255}`, port: 8080, metadata,
            healthCheckPath: "/health", healthCheck: undefined, health: "healthy", draining: false, drainingSince: 0,
            registeredAt: now, updatedAt: now, tokenHash: "t".repeat(32), keyId: undefined,
          });
          ops.push(client.put(`/service-registry/instances/${id}`).value(value));
        }
        await client.if("/service-registry/none", "Create", "==", 0).then(...ops).commit();
      }
      const size = (await client.getAll().prefix("/service-registry/instances/").strings()) as Record<string, string>;
      expect(Object.values(size).reduce((n, v) => n + v.length, 0)).toBeGreaterThan(4 * 1024 * 1024);
    } finally {
      client.close();
    }
  }, 60_000);
  afterAll(async () => {
    if (replica) {
      replica.kill("SIGKILL");
      await replica.exited;
    }
    await etcd?.close();
  });

  it("starts and serves every instance", async () => {
    replica = await startEtcdReplica(etcd.endpoint, KEY);
    expect(servingLine(replica.output())?.instances).toBe(INSTANCES);
  }, 60_000);
});
