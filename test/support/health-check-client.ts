import { credentials, loadPackageDefinition, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

type HealthClient = Client & {
  check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
};

const HealthService = (
  loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient } } };
  }
).grpc.health.v1.Health;

/** grpc.health.v1 Check against `address`: "SERVING", "NOT_SERVING", ... */
export async function healthStatus(address: string, service = ""): Promise<string> {
  const client = new HealthService(address, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
    );
  } finally {
    client.close();
  }
}
