/**
 * The load generator process: runs closed-loop gRPC loads against the
 * registry, the ceilings and etcd, the bare HTTP GET loop, and single fan-out
 * triggers, on the orchestrator's command. It reads the server's CPU time
 * from /proc itself, at the exact edges of each measured window.
 */
import * as pb from "../../gen/registry/v1/registry.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { closedLoop, type LoopOptions } from "./closed-loop.js";
import { etcdBarePut, etcdPut, etcdRange, etcdRegister, etcdSeed } from "./etcd-ops.js";
import { rangeCount } from "./etcd-raw.js";
import { getByType, getByTypeRaw, register } from "./grpc-ops.js";
import { httpGetLoop } from "./http-get-loop.js";
import { closeLeanClients, leanClient } from "./lean-client.js";
import { probeQueueCost } from "./probe-queue-cost.js";
import { closeRawGrpcClients, rawGrpcClient } from "./raw-grpc-client.js";

/** One answer in this many is decoded and checked; the rest stay bytes. */
const CHECK_EVERY = 64;
let pick = 0;
const nextType = (types: readonly string[]): string => types[pick++ % types.length] as string;

function check(n: number, expect: number, what: string): void {
  if (n !== expect) throw new Error(`${what} returned ${n} records, not ${expect}`);
}

serveIpc({
  grpcRegister: (o: LoopOptions & { address: string; serviceType: string }) => {
    const client = leanClient(o.address);
    return closedLoop(() => register(client, o.serviceType), o);
  },
  /**
   * Reads every type once, 16 at a time, before the GetByType loops start:
   * they then measure the steady state a router sees (the same types read
   * again and again), not first reads, however fast the machine gets through
   * the warm-up. Every system gets the same priming.
   */
  readEveryType: async (o: { system: "registry" | "etcd"; address: string; types: string[] }) => {
    const client = await rawGrpcClient(o.address);
    const read = o.system === "etcd" ? etcdRange : getByTypeRaw;
    for (let i = 0; i < o.types.length; i += 16) await Promise.all(o.types.slice(i, i + 16).map((t) => read(client, t)));
  },
  grpcGetByType: async (o: LoopOptions & { address: string; types: string[]; expect: number }) => {
    const client = await rawGrpcClient(o.address);
    let calls = 0;
    return closedLoop(async () => {
      const bytes = await getByTypeRaw(client, nextType(o.types));
      if (calls++ % CHECK_EVERY === 0) check(pb.GetByTypeResponse.decode(bytes).instances.length, o.expect, "GetByType");
    }, o);
  },
  etcdRegister: (o: LoopOptions & { endpoint: string; serviceType: string }) => {
    const client = leanClient(o.endpoint);
    return closedLoop(() => etcdRegister(client, o.serviceType), o);
  },
  etcdBarePut: (o: LoopOptions & { endpoint: string; serviceType: string }) => {
    const client = leanClient(o.endpoint);
    return closedLoop(() => etcdBarePut(client, o.serviceType), o);
  },
  etcdRange: async (o: LoopOptions & { endpoint: string; types: string[]; expect: number }) => {
    const client = await rawGrpcClient(o.endpoint);
    let calls = 0;
    return closedLoop(async () => {
      const bytes = await etcdRange(client, nextType(o.types));
      if (calls++ % CHECK_EVERY === 0) check(rangeCount(bytes), o.expect, "etcd range");
    }, o);
  },
  etcdSeed: (o: { endpoint: string; types: string[]; perType: number }) => etcdSeed(leanClient(o.endpoint), o.types, o.perType),
  httpGetLoop,
  probeQueueCost,
  /** The registry's GetByType answer for one type, as sent: the ceiling's pre-encoded payload. */
  async getByTypeBytes(o: { address: string; serviceType: string }) {
    return (await getByType(leanClient(o.address), o.serviceType)).toString("base64");
  },
  /** One registration (or etcd put) for the fan-out scenario; resolves with the acknowledgement time. */
  async fanoutTrigger(o: { system: "registry" | "ceiling" | "etcd"; target: string; channel: string; seq: number }) {
    if (o.system === "etcd") await etcdPut(leanClient(o.target), o.channel, o.seq);
    else await register(leanClient(o.target), o.channel, o.seq);
    return process.hrtime.bigint().toString();
  },
  async stop() {
    closeLeanClients();
    await closeRawGrpcClients();
    setImmediate(() => process.exit(0));
  },
});
emit("ready");
