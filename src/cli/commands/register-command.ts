import type { RegisterOptions, RegistryClient } from "../../client/registry-client.js";
import type { HealthCheckKind } from "../../registry/types.js";
import type { HealthCheckInput } from "../../registry/validation.js";
import { listFlag, stringFlag, UsageError, type CliArgs } from "./cli-args.js";
import { addressText, checkKindText, instanceJson, type Output } from "./output.js";

const KINDS: readonly HealthCheckKind[] = ["http", "grpc", "tcp", "ttl", "session"];

/**
 * What `register SERVICE_TYPE --port P [--host H] [--metadata k=v ...]
 * [--health-path /x] [--check KIND] [--ttl-ms N] [--grpc-service NAME]
 * [--check-timeout-ms N] [--tls]` asks for. Throws UsageError for a command
 * line that cannot be a registration (no type, no port, `--metadata` without
 * `=`, an unknown check kind, a number that is not one); whether the values
 * fit together (a ttl for a TTL check only...) is the registry's to say.
 */
export function registerOptions(args: CliArgs): RegisterOptions {
  const serviceType = args.positional[0];
  if (serviceType === undefined) throw new UsageError("register needs a SERVICE_TYPE");
  return instanceFlags(args, serviceType, "register");
}

/**
 * The instance of type `serviceType` that `--port`, `--host`, `--metadata`,
 * `--health-path` and the check flags describe, for `command` (`register`,
 * `exec`: named in the UsageError for a missing or bad flag).
 */
export function instanceFlags(args: CliArgs, serviceType: string, command: string): RegisterOptions {
  const portText = stringFlag(args, "--port");
  if (portText === undefined) throw new UsageError(`${command} needs --port`);
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
  const healthCheck = healthCheckFlags(args);
  return {
    serviceType,
    port,
    metadata,
    ...(host !== undefined ? { host } : {}),
    ...(healthCheckPath !== undefined ? { healthCheckPath } : {}),
    ...(healthCheck !== undefined ? { healthCheck } : {}),
  };
}

/** The check `--check`, `--ttl-ms`, `--grpc-service`, `--check-timeout-ms` and `--tls` ask for; undefined when none is given. */
function healthCheckFlags(args: CliArgs): HealthCheckInput | undefined {
  const kindText = stringFlag(args, "--check");
  const kind = kindText?.toLowerCase() as HealthCheckKind | undefined;
  if (kind !== undefined && !KINDS.includes(kind)) throw new UsageError(`--check must be one of ${KINDS.join(", ")}`);
  const ttlMs = wholeNumberFlag(args, "--ttl-ms");
  const timeoutMs = wholeNumberFlag(args, "--check-timeout-ms");
  const grpcService = stringFlag(args, "--grpc-service");
  const tls = args.flags["--tls"] === true;
  if (kind === undefined && ttlMs === undefined && timeoutMs === undefined && grpcService === undefined && !tls) return undefined;
  return {
    ...(kind !== undefined ? { kind } : {}),
    ...(ttlMs !== undefined ? { ttlMs } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(grpcService !== undefined ? { grpcService } : {}),
    ...(tls ? { tls } : {}),
  };
}

/** A flag's value as a whole number of milliseconds, if given; UsageError for anything else. */
export function wholeNumberFlag(args: CliArgs, name: "--ttl-ms" | "--check-timeout-ms" | "--grace-ms" | "--wait-timeout-ms"): number | undefined {
  const text = stringFlag(args, name);
  if (text === undefined) return undefined;
  if (!/^\d{1,10}$/.test(text)) throw new UsageError(`${name} must be a whole number of milliseconds`);
  return Number(text);
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
  const kind = instance.healthCheck?.kind ?? "http";
  const check = kind === "http" ? `health check ${instance.healthCheckPath}` : `${checkKindText(instance)} check`;
  io.out(
    `registered ${instance.serviceType} at ${addressText(instance)} (${check})\n` +
      `id:     ${id}\n` +
      `token:  ${token}\n` +
      "The token is shown only this once: the instance sends it with its id (x-service-id,\n" +
      "x-service-token) to unregister itself. `service-registry unregister ID` needs only the key.\n" +
      reportingDuty(kind, options.healthCheck?.ttlMs),
  );
  return 0;
}

/** What the instance itself must now do for a check the registry does not probe. */
function reportingDuty(kind: HealthCheckKind, ttlMs: number | undefined): string {
  if (kind === "ttl") {
    return `It is alive while it calls Heartbeat (with its id and token) at least every ${ttlMs ?? "ttl"} ms; this command sends none.\n`;
  }
  if (kind === "session") {
    return "It is alive while it holds a KeepAlive session (with its id and token) open; this command holds none.\n";
  }
  return "";
}
