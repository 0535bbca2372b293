import { randomUUID } from "node:crypto";
import type { Client } from "@grpc/grpc-js";
import { etcdValue, registerRequest } from "../lib/workload.js";
import { etcdLeaseGrant, etcdPutBytes, etcdRangeBytes, etcdTxnPuts } from "./etcd-raw.js";
import type { RawGrpcClient } from "./raw-grpc-client.js";

/** Lease TTL of a registration: longer than any run, so no lease expires (and deletes keys) mid-measurement. */
const LEASE_TTL_SECONDS = 3600;
let seq = 0;

/**
 * What registering an instance costs in etcd: grant the instance its own lease
 * (its liveness), then put its record under that lease. Two round trips, both
 * committed through raft and fsynced.
 */
export async function etcdRegister(client: Client, serviceType: string): Promise<void> {
  const request = registerRequest(serviceType, ++seq);
  const id = randomUUID();
  const lease = await etcdLeaseGrant(client, LEASE_TTL_SECONDS);
  await etcdPutBytes(client, `/registry/${serviceType}/${id}`, etcdValue(request, id), lease);
}

/**
 * Registering with no lease: one put of the instance's record, one round
 * trip. Not how an etcd-based registry registers (it needs the lease for
 * liveness); the bench prints it beside the lease peer as etcd's floor.
 */
export async function etcdBarePut(client: Client, serviceType: string): Promise<void> {
  const request = registerRequest(serviceType, ++seq);
  const id = randomUUID();
  await etcdPutBytes(client, `/registry/${serviceType}/${id}`, etcdValue(request, id));
}

/** A plain put of one instance record (the watch fan-out trigger); `n` is the key's last segment. */
export async function etcdPut(client: Client, prefix: string, n: number): Promise<void> {
  await etcdPutBytes(client, `${prefix}${n}`, etcdValue(registerRequest("fanout", n), randomUUID()));
}

/** Every record under `/registry/<type>/`, as the encoded Range answer: the peer of GetByType. */
export function etcdRange(client: RawGrpcClient, serviceType: string): Promise<Buffer> {
  return etcdRangeBytes(client, `/registry/${serviceType}/`);
}

/** Writes `perType` records for each type, 100 puts per transaction, a few transactions in flight. */
export async function etcdSeed(client: Client, types: readonly string[], perType: number): Promise<{ keys: number; ms: number }> {
  const t0 = performance.now();
  const puts: { key: string; value: string }[] = [];
  for (const type of types) {
    for (let i = 0; i < perType; i++) {
      const request = registerRequest(type, ++seq);
      const id = randomUUID();
      puts.push({ key: `/registry/${type}/${id}`, value: etcdValue(request, id) });
    }
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < puts.length) {
      const batch = puts.slice(next, next + 100);
      next += 100;
      await etcdTxnPuts(client, batch);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { keys: puts.length, ms: performance.now() - t0 };
}
