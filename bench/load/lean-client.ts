import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

/**
 * Load clients are as cheap as grpc-js allows, so that on a 2-core machine
 * the server, not the load, is what saturates: requests are encoded once per
 * call, answers are kept as bytes (the load checks a sample of them), and the
 * receive window is large so big answers (GetByType, a fan-out burst) are not
 * throttled by HTTP/2 flow control's 64 KiB default, as grpc-go and grpc-java
 * avoid with their BDP-sized windows. etcd gets the same client.
 */
export const CHANNEL_OPTIONS = { "grpc-node.flow_control_window": 16 * 1024 * 1024 };

const clients = new Map<string, Client>();

/** One client (one HTTP/2 connection) per address, reused across runs. */
export function leanClient(address: string): Client {
  let client = clients.get(address);
  if (!client) {
    client = new Client(address, credentials.createInsecure(), CHANNEL_OPTIONS);
    clients.set(address, client);
  }
  return client;
}

export function closeLeanClients(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
}

const keepBytes = (b: Buffer): Buffer => b;

/** One unary call; resolves with the answer's bytes. */
export function unaryBytes<Req>(
  client: Client,
  path: string,
  encode: (request: Req) => Buffer,
  request: Req,
  metadata = new Metadata(),
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(path, encode, keepBytes, request, metadata, (err: ServiceError | null, value?: Buffer) =>
      err ? reject(err) : resolve(value as Buffer),
    );
  });
}
