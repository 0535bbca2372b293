import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Client, ClientDuplexStream } from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { unaryBytes } from "./lean-client.js";
import type { RawGrpcClient } from "./raw-grpc-client.js";

/**
 * etcd's v3 API from the etcd3 package's own protos, called through the same
 * lean grpc-js client as the registry (answers kept as bytes), so the peer
 * and our server are loaded by identical client code.
 */
const require = createRequire(import.meta.url);
const protoDir = join(dirname(require.resolve("etcd3/package.json")), "proto");
const definition = protoLoader.loadSync(join(protoDir, "rpc.proto"), {
  includeDirs: [protoDir],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});

type Method = protoLoader.MethodDefinition<object, object>;
function method(service: string, name: string): Method {
  const svc = definition[`etcdserverpb.${service}`] as protoLoader.ServiceDefinition;
  return svc[name] as Method;
}

const RANGE = method("KV", "Range");
const PUT = method("KV", "Put");
const TXN = method("KV", "Txn");
const LEASE_GRANT = method("Lease", "LeaseGrant");
const WATCH = method("Watch", "Watch");

function call(client: Client, m: Method, request: object): Promise<Buffer> {
  return unaryBytes(client, m.path, m.requestSerialize as (r: object) => Buffer, request);
}

/** The key just past every key starting with `prefix` (etcd's prefix range end). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  return end;
}

/** A prefix range through the raw HTTP/2 client, as the registry's GetByType is read (see raw-grpc-client.ts). */
export const etcdRangeBytes = (client: RawGrpcClient, prefix: string): Promise<Buffer> =>
  client.unary(RANGE.path, (RANGE.requestSerialize as (r: object) => Buffer)({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }));

/** Decodes a Range answer (for the load's sample checks). */
export function rangeCount(bytes: Buffer): number {
  const res = RANGE.responseDeserialize(bytes) as { kvs?: unknown[] };
  return res.kvs?.length ?? 0;
}

export async function etcdLeaseGrant(client: Client, ttlSeconds: number): Promise<string> {
  const res = LEASE_GRANT.responseDeserialize(await call(client, LEASE_GRANT, { TTL: ttlSeconds })) as { ID: string };
  return res.ID;
}

export const etcdPutBytes = (client: Client, key: string, value: string, lease?: string): Promise<Buffer> =>
  call(client, PUT, { key: Buffer.from(key), value: Buffer.from(value), ...(lease ? { lease } : {}) });

export const etcdTxnPuts = (client: Client, puts: readonly { key: string; value: string }[]): Promise<Buffer> =>
  call(client, TXN, { success: puts.map((p) => ({ request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value) } })) });

/** A raw etcd watch stream (many watchers multiplex on it, as etcd clients do). */
export interface EtcdWatchStream {
  readonly stream: ClientDuplexStream<object, WatchResponse>;
}

export interface WatchResponse {
  watch_id?: string;
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  events?: { type?: string; kv?: { key?: Buffer } }[];
}

export function etcdWatchStream(client: Client): ClientDuplexStream<object, WatchResponse> {
  return client.makeBidiStreamRequest(
    WATCH.path,
    WATCH.requestSerialize as (r: object) => Buffer,
    WATCH.responseDeserialize as (b: Buffer) => WatchResponse,
  );
}
