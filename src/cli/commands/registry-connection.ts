import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { RegistryClient } from "../../client/registry-client.js";
import { KEY_FILE_NAME } from "../../config/registration-key.js";
import { stringFlag, UsageError, type CliArgs } from "./cli-args.js";

/** Help text for the connection flags, shared by the client commands. */
export const CONNECTION_HELP = `Connection (each also read from the environment or .env):
  --address HOST:PORT[,...]  registry address(es); REGISTRY_ADDRESS, else 127.0.0.1:$PORT (default 4000)
  --key KEY                  registration key; SERVICE_REGISTRATION_KEY, else the key file in DATA_DIR
  --data-dir DIR             where the server keeps its generated key (DATA_DIR, default ./data)
  --timeout-ms MS            deadline per call (default 5000)
  --tls-ca FILE              use TLS, trusting this CA (with --tls-cert/--tls-key for mTLS)
  --json                     machine-readable output`;

/** Where settings come from, besides the flags. */
export interface CliEnvironment {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

/**
 * A `RegistryClient` for a client command: the address from `--address`,
 * REGISTRY_ADDRESS or the server's PORT setting; the key from `--key`,
 * SERVICE_REGISTRATION_KEY (environment or `.env`) or the key file the
 * server generated in its data directory.
 */
export function connect(args: CliArgs, where: CliEnvironment = { env: process.env, cwd: process.cwd() }): RegistryClient {
  const dotenv = readDotenv(where.cwd);
  const setting = (name: string): string | undefined => nonEmpty(where.env[name]) ?? nonEmpty(dotenv[name]);
  const addresses = (stringFlag(args, "--address") ?? setting("REGISTRY_ADDRESS") ?? `127.0.0.1:${setting("PORT") ?? "4000"}`)
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  if (addresses.length === 0) throw new UsageError("--address names no address");
  const timeout = stringFlag(args, "--timeout-ms");
  const deadlineMs = timeout === undefined ? 5000 : Number(timeout);
  if (!Number.isInteger(deadlineMs) || deadlineMs <= 0) throw new UsageError("--timeout-ms must be a positive whole number");
  return new RegistryClient({
    addresses,
    auth: { key: registrationKey(args, setting, where.cwd) },
    deadlineMs,
    // A person at a shell wants "cannot reach" at once, not after the deadline.
    failFast: true,
    credentials: tlsCredentials(args),
  });
}

function registrationKey(args: CliArgs, setting: (name: string) => string | undefined, cwd: string): string {
  const given = stringFlag(args, "--key") ?? setting("SERVICE_REGISTRATION_KEY");
  // Several keys may be configured for rotation; any of them will do.
  if (given !== undefined) return (given.split(",")[0] as string).trim();
  const dataDir = stringFlag(args, "--data-dir") ?? setting("DATA_DIR") ?? "./data";
  const file = resolve(cwd, dataDir, KEY_FILE_NAME);
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    throw new UsageError(
      `no registration key: pass --key, set SERVICE_REGISTRATION_KEY, or run where ${file} exists (--data-dir)`,
    );
  }
}

function tlsCredentials(args: CliArgs): ChannelCredentials | undefined {
  const ca = stringFlag(args, "--tls-ca");
  const cert = stringFlag(args, "--tls-cert");
  const key = stringFlag(args, "--tls-key");
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--tls-cert and --tls-key go together");
  const read = (file: string | undefined): Buffer | null => {
    if (file === undefined) return null;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return credentials.createSsl(read(ca), read(key), read(cert));
}

function readDotenv(cwd: string): Record<string, string | undefined> {
  const path = resolve(cwd, ".env");
  if (!existsSync(path)) return {};
  try {
    return parseEnv(readFileSync(path, "utf8"));
  } catch {
    return {};
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
