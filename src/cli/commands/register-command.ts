import type { RegisterOptions, RegistryClient } from "../../client/registry-client.js";
import { listFlag, stringFlag, UsageError, type CliArgs } from "./cli-args.js";
import { addressText, instanceJson, type Output } from "./output.js";

/**
 * What `register SERVICE_TYPE --port P [--host H] [--metadata k=v ...]
 * [--health-path /x]` asks for. Throws UsageError for a command line that
 * cannot be a registration (no type, no port, `--metadata` without `=`);
 * whether the values are acceptable is the registry's to say.
 */
export function registerOptions(args: CliArgs): RegisterOptions {
  const serviceType = args.positional[0];
  if (serviceType === undefined) throw new UsageError("register needs a SERVICE_TYPE");
  const portText = stringFlag(args, "--port");
  if (portText === undefined) throw new UsageError("register needs --port");
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw new UsageError("--port must be a number from 1 to 65535");
  const metadata: Record<string, string> = {};
  for (const pair of listFlag(args, "--metadata")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--metadata ${JSON.stringify(pair)}: expected KEY=VALUE`);
    const key = pair.slice(0, eq);
    if (Object.hasOwn(metadata, key)) throw new UsageError(`--metadata ${JSON.stringify(key)} given twice`);
    metadata[key] = pair.slice(eq + 1);
  }
  const host = stringFlag(args, "--host");
  const healthCheckPath = stringFlag(args, "--health-path");
  return {
    serviceType,
    port,
    metadata,
    ...(host !== undefined ? { host } : {}),
    ...(healthCheckPath !== undefined ? { healthCheckPath } : {}),
  };
}

/**
 * `register`: adds an instance with the registration key and prints its id
 * and its token, which the registry never shows again (`--json`: the Register
 * answer, `{serviceId, token, instance}`).
 */
export async function registerCommand(client: RegistryClient, options: RegisterOptions, json: boolean, io: Output): Promise<number> {
  const { id, token, instance } = await client.register(options);
  if (json) {
    io.out(`${JSON.stringify({ serviceId: id, token, instance: instanceJson(instance) })}\n`);
    return 0;
  }
  io.out(
    `registered ${instance.serviceType} at ${addressText(instance)} (health check ${instance.healthCheckPath})\n` +
      `id:     ${id}\n` +
      `token:  ${token}\n` +
      "The token is shown only this once: the instance sends it with its id (x-service-id,\n" +
      "x-service-token) to unregister itself. `service-registry unregister ID` needs only the key.\n",
  );
  return 0;
}
