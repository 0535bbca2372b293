/**
 * A watch client process for the fan-out scenario: opens N watch streams (on
 * one connection) to the registry, the bare push ceiling, or etcd, and
 * reports, for each event, when the first and the last of its streams got it
 * (CLOCK_MONOTONIC nanoseconds, comparable across processes on one machine).
 */
import { Client, credentials, type ClientReadableStream } from "@grpc/grpc-js";
import * as pb from "../../gen/registry/v1/registry.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { etcdWatchStream, prefixEnd, type WatchResponse } from "./etcd-raw.js";
import { keyMetadata } from "./grpc-ops.js";
import { CHANNEL_OPTIONS } from "./lean-client.js";

interface OpenArgs {
  readonly system: "registry" | "ceiling" | "etcd";
  readonly target: string;
  readonly streams: number;
  /** Service type (gRPC) or key prefix (etcd) of this run's events. */
  readonly channel: string;
}

const arrivals = new Map<number, { count: number; first: bigint }>();
let streamCount = 0;
let failure: string | undefined;
let cleanup: (() => void) | undefined;

function arrived(seq: number): void {
  const now = process.hrtime.bigint();
  let a = arrivals.get(seq);
  if (!a) arrivals.set(seq, (a = { count: 0, first: now }));
  if (++a.count === streamCount) {
    arrivals.delete(seq);
    emit("delivered", { seq, first: a.first.toString(), all: now.toString() });
  }
}

async function openGrpc(o: OpenArgs): Promise<void> {
  const client = new pb.RegistryServiceClient(o.target, credentials.createInsecure(), CHANNEL_OPTIONS);
  const calls: ClientReadableStream<pb.WatchInstancesResponse>[] = [];
  let synced = 0;
  let onSynced: () => void = () => {};
  const allSynced = new Promise<void>((resolve) => (onSynced = resolve));
  for (let i = 0; i < o.streams; i++) {
    const call = client.watchInstances({ serviceType: o.channel, sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} }, keyMetadata());
    call.on("data", (m: pb.WatchInstancesResponse) => {
      if (m.type === pb.EventType.EVENT_TYPE_SYNCED) {
        if (++synced === o.streams) onSynced();
      } else if (m.type === pb.EventType.EVENT_TYPE_INSTANCE_REGISTERED && !m.snapshot) {
        arrived(Number(m.instance?.metadata.seq));
      }
    });
    call.on("error", (err: Error) => {
      if (!cleanup) return;
      failure ??= err.message;
    });
    calls.push(call);
  }
  await allSynced;
  cleanup = () => {
    cleanup = undefined;
    for (const c of calls) c.cancel();
    client.close();
  };
}

/** etcd watchers as etcd clients make them: many watchers multiplexed on one Watch stream. */
async function openEtcd(o: OpenArgs): Promise<void> {
  const client = new Client(o.target, credentials.createInsecure(), CHANNEL_OPTIONS);
  const stream = etcdWatchStream(client);
  let created = 0;
  let onCreated: () => void = () => {};
  const allCreated = new Promise<void>((resolve) => (onCreated = resolve));
  stream.on("data", (res: WatchResponse) => {
    if (res.created) {
      if (++created === o.streams) onCreated();
      return;
    }
    if (res.canceled) failure ??= `watch canceled: ${res.cancel_reason ?? ""}`;
    for (const event of res.events ?? []) {
      if ((event.type ?? "PUT") === "PUT") arrived(Number(event.kv?.key?.toString().slice(o.channel.length)));
    }
  });
  stream.on("error", (err: Error) => {
    if (cleanup) failure ??= err.message;
  });
  for (let i = 0; i < o.streams; i++) {
    stream.write({ create_request: { key: Buffer.from(o.channel), range_end: prefixEnd(o.channel) } });
  }
  await allCreated;
  cleanup = () => {
    cleanup = undefined;
    stream.cancel();
    client.close();
  };
}

serveIpc({
  async open(o: OpenArgs) {
    const t0 = performance.now();
    streamCount = o.streams;
    arrivals.clear();
    failure = undefined;
    await (o.system === "etcd" ? openEtcd(o) : openGrpc(o));
    return { openMs: performance.now() - t0 };
  },
  close() {
    cleanup?.();
    return { failure: failure ?? null, incomplete: arrivals.size };
  },
  stop() {
    cleanup?.();
    setImmediate(() => process.exit(0));
  },
});
emit("ready");
