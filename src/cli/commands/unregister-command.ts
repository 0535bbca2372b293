import type { RegistryClient } from "../../client/registry-client.js";
import { addressText, instanceJson, type Output } from "./output.js";

/**
 * `unregister <id>`: removes an instance with the registration key and prints
 * what was removed (`--json`: `{instance, revision}`, the Unregister answer).
 * NOT_FOUND surfaces as an error (exit 1).
 */
export async function unregisterCommand(client: RegistryClient, id: string, json: boolean, io: Output): Promise<number> {
  const { instance, revision } = await client.unregister(id);
  if (json) {
    io.out(`${JSON.stringify({ instance: instanceJson(instance), revision })}\n`);
    return 0;
  }
  io.out(`removed ${instance.serviceType} ${instance.id} at ${addressText(instance)} (revision ${revision})\n`);
  return 0;
}
