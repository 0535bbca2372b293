import type { RegistryClient } from "../../client/registry-client.js";
import { addressText, age, checkKindText, healthText, instanceJson, metadataText, type Output } from "./output.js";

/** `get <id>`: one instance in detail. NOT_FOUND surfaces as an error (exit 1). */
export async function getCommand(client: RegistryClient, id: string, json: boolean, io: Output): Promise<number> {
  const instance = await client.getInstance(id);
  if (json) {
    io.out(`${JSON.stringify(instanceJson(instance))}\n`);
    return 0;
  }
  const rows: [string, string][] = [
    ["id", instance.id],
    ["service type", instance.serviceType],
    ["address", addressText(instance)],
    ["health", healthText(instance)],
    ["check", checkKindText(instance)],
    // The path means something only to an HTTP check.
    ...(checkKindText(instance) === "HTTP" ? [["health check", instance.healthCheckPath] as [string, string]] : []),
    ["registered", `${new Date(instance.registeredAt).toISOString()} (${age(instance.registeredAt)} ago)`],
    ["updated", `${new Date(instance.updatedAt).toISOString()} (${age(instance.updatedAt)} ago)`],
    ["revision", String(instance.revision)],
    ["metadata", metadataText(instance.metadata)],
  ];
  io.out(rows.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}\n`).join(""));
  return 0;
}
