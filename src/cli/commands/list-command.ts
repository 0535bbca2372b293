import type { RegistryClient } from "../../client/registry-client.js";
import { addressText, age, instanceJson, metadataText, table, type Output } from "./output.js";

/**
 * `list`: every service type with its healthy and total counts.
 * `list <type>`: that type's instances, unhealthy ones included.
 */
export async function listCommand(client: RegistryClient, serviceType: string | undefined, json: boolean, io: Output): Promise<number> {
  if (serviceType === undefined) {
    const { services, revision } = await client.listServices();
    if (json) {
      io.out(`${JSON.stringify({ services, revision })}\n`);
    } else if (services.length === 0) {
      io.out("no services registered\n");
    } else {
      io.out(table(["SERVICE", "HEALTHY", "TOTAL"], services.map((s) => [s.serviceType, String(s.healthyCount), String(s.totalCount)])));
    }
    return 0;
  }
  const { instances, revision } = await client.getByType(serviceType, { includeUnhealthy: true });
  if (json) {
    io.out(`${JSON.stringify({ instances: instances.map(instanceJson), revision })}\n`);
  } else if (instances.length === 0) {
    io.out(`no instances of ${serviceType}\n`);
  } else {
    const now = Date.now();
    io.out(
      table(
        ["ID", "ADDRESS", "HEALTH", "AGE", "METADATA"],
        instances.map((i) => [i.id, addressText(i), i.health, age(i.registeredAt, now), metadataText(i.metadata)]),
      ),
    );
  }
  return 0;
}
