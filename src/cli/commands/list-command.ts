import type { RegistryClient } from "../../client/registry-client.js";
import { addressText, age, healthText, instanceJson, metadataText, table, type Output } from "./output.js";

/**
 * `services` (and `list` without a type): every service type with its
 * healthy and total counts.
 */
export async function servicesCommand(client: RegistryClient, json: boolean, io: Output): Promise<number> {
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

/**
 * `list <type>`: that type's instances, unhealthy ones included; with a
 * selector (`--selector zone=eu-1`), only those whose metadata matches.
 * `list`: the service types, as `services` shows them.
 */
export async function listCommand(
  client: RegistryClient,
  serviceType: string | undefined,
  json: boolean,
  io: Output,
  selector?: Readonly<Record<string, string>>,
): Promise<number> {
  if (serviceType === undefined) return servicesCommand(client, json, io);
  const { instances, revision } = await client.getByType(serviceType, { includeUnhealthy: true, ...(selector ? { selector } : {}) });
  if (json) {
    io.out(`${JSON.stringify({ instances: instances.map(instanceJson), revision })}\n`);
  } else if (instances.length === 0) {
    io.out(`no instances of ${serviceType}${selector ? ` matching ${metadataText(selector)}` : ""}\n`);
  } else {
    const now = Date.now();
    io.out(
      table(
        ["ID", "ADDRESS", "HEALTH", "AGE", "METADATA"],
        instances.map((i) => [i.id, addressText(i), healthText(i), age(i.registeredAt, now), metadataText(i.metadata)]),
      ),
    );
  }
  return 0;
}
