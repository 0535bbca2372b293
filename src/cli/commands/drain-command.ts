import type { RegistryClient } from "../../client/registry-client.js";
import { addressText, instanceJson, type Output } from "./output.js";

/**
 * `drain <id>`: marks an instance draining with the registration key and
 * prints it (`--json`: `{instance, revision}`, the Drain answer).
 */
export async function drainCommand(client: RegistryClient, id: string, json: boolean, io: Output): Promise<number> {
  const { instance, revision } = await client.drain(id);
  if (json) {
    io.out(`${JSON.stringify({ instance: instanceJson(instance), revision })}\n`);
    return 0;
  }
  io.out(`draining ${instance.serviceType} ${instance.id} at ${addressText(instance)} (revision ${revision})\n`);
  return 0;
}
