/**
 * A process of lean xDS clients for scenario 7's scale part: many ADS
 * streams (envoy's StreamAggregatedResources, state of the world) through
 * bare grpc-js, `perConnection` of them on each HTTP/2 connection, each
 * subscribed to the ClusterLoadAssignment (EDS) of one service type and
 * ACKing every response with its version and nonce, as a real client does.
 * Told which endpoint a coming Register adds, it reports when each of its
 * streams of that type got a response containing it (CLOCK_MONOTONIC
 * nanoseconds, comparable across processes on one machine).
 */
import { Client, credentials, Metadata, type ClientDuplexStream, type MethodDefinition } from "@grpc/grpc-js";
import { ADS_SERVICE, envoyTypes, TYPE_URL, type DiscoveryRequest, type DiscoveryResponse } from "../../src/xds/envoy-protos.js";
import { emit, serveIpc } from "../lib/ipc.js";
import { BENCH_KEY } from "../lib/workload.js";
import { CHANNEL_OPTIONS } from "./lean-client.js";

/** What `open` takes: stream `i` of this process subscribes to `types[(first + i) % types.length]`. */
export interface AdsOpenArgs {
  readonly target: string;
  readonly streams: number;
  readonly perConnection: number;
  readonly types: readonly string[];
  readonly first: number;
}

type AdsCall = ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;

interface AdsStream {
  readonly call: AdsCall;
  /** The resource names it subscribes to (one service type, or every type for the warm-up stream). */
  readonly names: readonly string[];
  /** The last round whose endpoint it has seen. */
  seenRound: number;
}

/** A coming Register: its endpoint, and this process's streams of its type still waiting for it. */
interface Expected {
  readonly round: number;
  readonly host: string;
  readonly port: number;
  waiting: number;
  readonly arrivals: string[];
}

const method = ADS_SERVICE.streamAggregatedResources as MethodDefinition<DiscoveryRequest, DiscoveryResponse>;
const clients: Client[] = [];
const streams: AdsStream[] = [];
const byType = new Map<string, AdsStream[]>();
const expected = new Map<string, Expected>();
let warm: AdsStream | undefined;
let failure: string | undefined;
let closing = false;

/** The node every stream presents: the registration key in its metadata (protobufjs's Struct uses camelCase). */
const NODE = { id: "bench-ads", cluster: "bench", metadata: { fields: { registry_key: { stringValue: BENCH_KEY } } } };

function newClient(target: string): Client {
  // A local subchannel pool: each client is a connection of its own.
  const client = new Client(target, credentials.createInsecure(), { ...CHANNEL_OPTIONS, "grpc.use_local_subchannel_pool": 1 });
  clients.push(client);
  return client;
}

/** Whether an encoded ClusterLoadAssignment lists host:port. */
function lists(value: Uint8Array, host: string, port: number): boolean {
  const type = envoyTypes().byUrl.get(TYPE_URL.endpoints);
  const cla = type?.decode(value) as unknown as {
    endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[] }[];
  };
  for (const locality of cla?.endpoints ?? []) {
    for (const e of locality.lb_endpoints ?? []) {
      const a = e.endpoint?.address?.socket_address;
      if (a?.address === host && a.port_value === port) return true;
    }
  }
  return false;
}

/** Opens one stream on `client`; resolves with it once its first response came (and was ACKed). */
function openStream(client: Client, names: readonly string[]): Promise<AdsStream> {
  const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, new Metadata(), {}) as AdsCall;
  const stream: AdsStream = { call, names, seenRound: -1 };
  return new Promise((resolve, reject) => {
    let first = true;
    call.on("data", (response: DiscoveryResponse) => {
      const at = process.hrtime.bigint();
      call.write({ version_info: response.version_info, resource_names: names, type_url: TYPE_URL.endpoints, response_nonce: response.nonce });
      if (first) {
        first = false;
        resolve(stream);
      }
      const exp = names.length === 1 ? expected.get(names[0] as string) : undefined;
      if (!exp || stream.seenRound === exp.round) return;
      if (!response.resources.some((r) => lists(r.value, exp.host, exp.port))) return;
      stream.seenRound = exp.round;
      exp.arrivals.push(at.toString());
      if (--exp.waiting === 0) {
        expected.delete(names[0] as string);
        emit("arrived", { round: exp.round, arrivals: exp.arrivals });
      }
    });
    call.on("error", (err: Error) => {
      if (closing) return;
      failure ??= err.message;
      reject(err);
    });
    call.write({ version_info: "", node: NODE, resource_names: names, type_url: TYPE_URL.endpoints, response_nonce: "" });
  });
}

serveIpc({
  /** One stream subscribed to every type (unmeasured): loads the server's envoy protos and builds every type's resources. */
  async warm({ target, types }: { target: string; types: string[] }) {
    warm = await openStream(newClient(target), types);
  },
  /** Opens the streams, one connection's worth at a time; resolves once every stream has its first response. */
  async open(o: AdsOpenArgs) {
    const t0 = performance.now();
    let connections = 0;
    for (let i = 0; i < o.streams; i += o.perConnection) {
      connections++;
      const client = newClient(o.target);
      const batch: Promise<AdsStream>[] = [];
      for (let j = i; j < Math.min(o.streams, i + o.perConnection); j++) {
        const type = o.types[(o.first + j) % o.types.length] as string;
        batch.push(
          openStream(client, [type]).then((s) => {
            const list = byType.get(type) ?? [];
            list.push(s);
            byType.set(type, list);
            return s;
          }),
        );
      }
      streams.push(...(await Promise.all(batch)));
    }
    return { openMs: performance.now() - t0, streams: streams.length, connections };
  },
  /** The next Register adds host:port to `type`: answers how many of this process's streams will report it. */
  expect({ round, type, host, port }: { round: number; type: string; host: string; port: number }) {
    const waiting = byType.get(type)?.length ?? 0;
    if (waiting > 0) expected.set(type, { round, host, port, waiting, arrivals: [] });
    return { waiting };
  },
  close() {
    closing = true;
    const unfinished = expected.size;
    for (const s of streams) s.call.cancel();
    warm?.call.cancel();
    for (const c of clients) c.close();
    return { failure: failure ?? null, unfinished };
  },
  stop() {
    closing = true;
    for (const c of clients) c.close();
    setImmediate(() => process.exit(0));
  },
});
emit("ready");
