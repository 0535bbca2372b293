/**
 * The ceilings of the gRPC scenarios, in one bare grpc-js process (no
 * registry code at all), on 127.0.0.1:0:
 * - Register: a no-op unary handler answering a canned response of the
 *   registry's size, through the same generated codec;
 * - GetByType: a handler answering a pre-encoded payload (set by the
 *   orchestrator to the registry's real answer), written as is, from a copy
 *   of its own per type: the registry answers 1,000 types from 1,000
 *   buffers (14 MB), and one buffer for every type stayed in the CPU's
 *   cache where the registry's could not (the ceiling read 100-109 µs per
 *   call against 121-130 µs with a copy per type, on a 2-vCPU EPYC guest);
 * - WatchInstances: a bare server stream; each Register pushes one encoded
 *   event, the same bytes, to every open stream before answering;
 * - Register with SQLite ("no-op + SQLite"), on request, on a port of its
 *   own: the no-op answer once bare better-sqlite3 has written the call's rows
 *   (instance, history, prune, revision), every call that arrived in the same
 *   event-loop turn in one transaction, as the store groups its commits.
 *
 * With `--keep-requests` (a process of its own, so the bare ceilings' heap
 * stays empty) every Register keeps its decoded request, by a fresh id, for
 * the rest of the run: the least a registry holds for what it registered.
 * Its no-op and its "no-op + SQLite" are the floors of the registry's
 * Register: V8 has to copy, promote and keep marking every kept object, a
 * cost that grows with the heap and that no handler which forgets its
 * requests pays.
 */
import { Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from "@grpc/grpc-js";
import * as pb from "../../gen/registry/v1/registry.js";
import { heapSamplingCommands } from "../lib/heap-sampling.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { BareSqliteWriter } from "../load/sqlite-writes.js";
import { instanceFor, registerRequest, registerResponseFor } from "../lib/workload.js";

const passThrough = (value: Buffer): Buffer => value;
const service = {
  register: pb.RegistryServiceService.register,
  getByType: { ...pb.RegistryServiceService.getByType, responseSerialize: passThrough },
  watchInstances: { ...pb.RegistryServiceService.watchInstances, responseSerialize: passThrough },
};

const canned = registerResponseFor(registerRequest("bench-svc", 1), 1);
const kept = process.argv.includes("--keep-requests") ? new Map<string, pb.RegisterRequest>() : undefined;
const keep = (request: pb.RegisterRequest): void => {
  kept?.set(`i-${kept.size}`, request);
};
let getByTypePayload = Buffer.from(pb.GetByTypeResponse.encode({ instances: [], revision: 0, panic: false }).finish());
/** The payload once per type, each copy in memory of its own (see `setGetByTypePayload`). */
let payloadByType = new Map<string, Buffer>();
const streams = new Set<ServerWritableStream<pb.WatchInstancesRequest, Buffer>>();
let revision = 1;

const server = new Server();
server.addService(service, {
  register(call: ServerUnaryCall<pb.RegisterRequest, pb.RegisterResponse>, callback: sendUnaryData<pb.RegisterResponse>) {
    keep(call.request);
    if (streams.size > 0) {
      const event = pb.WatchInstancesResponse.encode({
        type: pb.EventType.EVENT_TYPE_INSTANCE_REGISTERED,
        instance: instanceFor(call.request, ++revision),
        revision,
        epoch: "00000000-0000-4000-8000-000000000000",
        removalReason: pb.RemovalReason.REMOVAL_REASON_UNSPECIFIED,
        snapshot: false,
        failureReason: "",
        panic: false,
      }).finish();
      const bytes = Buffer.from(event);
      for (const stream of streams) stream.write(bytes);
    }
    callback(null, canned);
  },
  getByType(call: ServerUnaryCall<pb.GetByTypeRequest, Buffer>, callback: sendUnaryData<Buffer>) {
    callback(null, payloadByType.get(call.request.serviceType) ?? getByTypePayload);
  },
  watchInstances(call: ServerWritableStream<pb.WatchInstancesRequest, Buffer>) {
    streams.add(call);
    call.on("cancelled", () => streams.delete(call));
    const synced = pb.WatchInstancesResponse.encode({
      type: pb.EventType.EVENT_TYPE_SYNCED,
      revision,
      epoch: "00000000-0000-4000-8000-000000000000",
      removalReason: pb.RemovalReason.REMOVAL_REASON_UNSPECIFIED,
      snapshot: false,
      failureReason: "",
      panic: false,
    }).finish();
    call.write(Buffer.from(synced));
  },
});

/** Binds a server to a free loopback port. */
function listenOnLoopback(s: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    s.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
}

const port = await listenOnLoopback(server);

/** The "no-op + SQLite" servers started so far. */
const sqliteNoops: { server: Server; writer: BareSqliteWriter }[] = [];

async function startSqliteNoop({ path, sync }: { path: string; sync: "normal" | "full" }): Promise<{ port: number }> {
  const writer = new BareSqliteWriter(path, sync);
  let pending: sendUnaryData<pb.RegisterResponse>[] = [];
  const flush = (): void => {
    const batch = pending;
    pending = [];
    writer.writeGroup(batch.length);
    for (const callback of batch) callback(null, canned);
  };
  const sqliteServer = new Server();
  sqliteServer.addService(
    { register: pb.RegistryServiceService.register },
    {
      register(call: ServerUnaryCall<pb.RegisterRequest, pb.RegisterResponse>, callback: sendUnaryData<pb.RegisterResponse>) {
        keep(call.request);
        if (pending.push(callback) === 1) setImmediate(flush);
      },
    },
  );
  sqliteNoops.push({ server: sqliteServer, writer });
  return { port: await listenOnLoopback(sqliteServer) };
}

serveIpc({
  ...heapSamplingCommands,
  startSqliteNoop,
  stopSqliteNoops() {
    for (const { server: s, writer } of sqliteNoops.splice(0)) {
      s.forceShutdown();
      writer.close();
    }
  },
  setGetByTypePayload({ base64, types = [] }: { base64: string; types?: string[] }) {
    getByTypePayload = Buffer.from(base64, "base64");
    payloadByType = new Map(types.map((t) => [t, Buffer.from(getByTypePayload)]));
    return { bytes: getByTypePayload.length };
  },
  endStreams() {
    for (const s of streams) s.end();
    streams.clear();
  },
  stop() {
    for (const s of streams) s.end();
    server.forceShutdown();
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { port });
