import { credentials as grpcCredentials, makeGenericClientConstructor, type ChannelCredentials, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { StreamCursor } from "./stream-cursor.js";

/** A grpc.health.v1 client built from grpc-health-check's own service definition. */
type HealthClient = Client & {
  check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
  watch(req: { service: string }): ClientReadableStream<{ status: string }>;
};

const HealthClientCtor = makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  creds: ChannelCredentials,
) => HealthClient;

/** Opens a health client; close it when done. */
export function healthClient(address: string, creds: ChannelCredentials = grpcCredentials.createInsecure()): HealthClient {
  return new HealthClientCtor(address, creds);
}

/** grpc.health.v1 Check: resolves with "SERVING", "NOT_SERVING", ...; rejects with the status error. */
export function check(client: HealthClient, service = ""): Promise<string> {
  return new Promise((resolve, reject) => client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))));
}

/** grpc.health.v1 Watch as a cursor: `next()` waits (bounded) for the next status. */
export class HealthWatch extends StreamCursor<{ status: string }, string> {
  constructor(client: HealthClient, service = "") {
    super(client.watch({ service }), "health watch", (m) => m.status);
  }
}

/** One-shot grpc.health.v1 Check against `address` (plaintext). */
export async function healthStatus(address: string, service = ""): Promise<string> {
  const client = healthClient(address);
  try {
    return await check(client, service);
  } finally {
    client.close();
  }
}
