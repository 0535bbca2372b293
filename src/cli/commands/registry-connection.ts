import { existsSync, readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { RegistryClient } from "../../client/registry-client.js";
import { KEY_FILE_NAME } from "../../config/registration-key.js";
import { stringFlag, UsageError, type CliArgs } from "./cli-args.js";

/** Help text for the connection flags, shared by the client commands. */
export const CONNECTION_HELP = `Connection (each also read from the environment or .env):
  --address HOST[:PORT],...  registry address(es); REGISTRY_ADDRESS, else 127.0.0.1;
                             a HOST alone means port $PORT (default 4000); IPv6 as [::1]
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
 * Where the CLI found its registration key, so that a refusal can say which
 * key was wrong without showing it: `flag` (--key), `environment` or `dotenv`
 * (SERVICE_REGISTRATION_KEY), or `file` (the key a server generated in DATA_DIR).
 */
export interface KeySource {
  readonly from: "flag" | "environment" | "dotenv" | "file";
  /** How a person would name it, e.g. `SERVICE_REGISTRATION_KEY in /srv/.env`. */
  readonly label: string;
}

/** A client for one command, and where its key came from. */
export interface CliConnection {
  readonly client: RegistryClient;
  /** The registration key, for a command that passes it on (`exec` to registerSelf); never to be printed. */
  readonly key: string;
  readonly keySource: KeySource;
}

/**
 * A `RegistryClient` for a client command: the address from `--address`,
 * REGISTRY_ADDRESS or 127.0.0.1 (a host without a port gets the server's
 * PORT setting, default 4000); the key from `--key`, SERVICE_REGISTRATION_KEY
 * (environment, then `.env`) or the key file the server generated in its data
 * directory: the server's own order. A variable set but empty counts as unset
 * and hides `.env`, as it does for the server.
 */
export function connect(args: CliArgs, where: CliEnvironment = { env: process.env, cwd: process.cwd() }): CliConnection {
  const settings = new Settings(where);
  const defaultPort = settings.get("PORT")?.value ?? "4000";
  const addresses = (stringFlag(args, "--address") ?? settings.get("REGISTRY_ADDRESS")?.value ?? "127.0.0.1")
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "")
    .map((a) => registryAddress(a, defaultPort));
  if (addresses.length === 0) throw new UsageError("--address names no address");
  const timeout = stringFlag(args, "--timeout-ms");
  const deadlineMs = timeout === undefined ? 5000 : Number(timeout);
  if (!Number.isInteger(deadlineMs) || deadlineMs <= 0) throw new UsageError("--timeout-ms must be a positive whole number");
  const { key, source } = registrationKey(args, settings, where.cwd);
  const client = new RegistryClient({
    addresses,
    auth: { key },
    deadlineMs,
    // A person at a shell wants "cannot reach" at once, not after the deadline.
    failFast: true,
    credentials: tlsCredentials(args),
  });
  return { client, key, keySource: source };
}

/** grpc-js target schemes passed through as they are (`dns:///name:port`, `unix:/path`...). */
const TARGET_SCHEME = /^(?:dns|ipv4|ipv6|unix|unix-abstract|vsock):/;

/**
 * A registry address as a grpc-js target, `defaultPort` added to a host
 * without one (grpc-js alone would take 443): `localhost` → `localhost:4000`,
 * `[::1]` or `::1` → `[::1]:4000`; `host:port` and `[v6]:port` stay as they
 * are, and so do targets with a scheme. Throws UsageError for a port that is
 * not a number.
 *
 * @example
 * registryAddress("localhost", "4000") // "localhost:4000"
 */
export function registryAddress(address: string, defaultPort: string): string {
  if (TARGET_SCHEME.test(address)) return address;
  const bad = (why: string): UsageError => new UsageError(`address ${JSON.stringify(address)}: ${why}`);
  const checkPort = (port: string | undefined): string => {
    if (port === undefined) {
      if (isPort(defaultPort)) return defaultPort;
      throw bad(`no port, and PORT (${JSON.stringify(defaultPort)}) is not one to connect to; give HOST:PORT`);
    }
    if (!isPort(port)) throw bad("the port must be a number from 1 to 65535");
    return port;
  };
  if (address.startsWith("[")) {
    const match = /^\[([^\]]+)\](?::(.*))?$/.exec(address);
    if (!match) throw bad("expected [IPv6] or [IPv6]:PORT");
    return `[${match[1]}]:${checkPort(match[2])}`;
  }
  if (isIPv6(address)) return `[${address}]:${checkPort(undefined)}`;
  const colon = address.indexOf(":");
  if (colon === -1) return `${address}:${checkPort(undefined)}`;
  if (address.indexOf(":", colon + 1) !== -1) throw bad("put an IPv6 address in brackets, as [::1]:4000");
  if (colon === 0) throw bad("no host before the port");
  return `${address.slice(0, colon)}:${checkPort(address.slice(colon + 1))}`;
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;
}

/** Settings from the environment, else from `.env` in the working directory. */
class Settings {
  private readonly dotenv: Record<string, string | undefined>;
  readonly dotenvPath: string;

  constructor(private readonly where: CliEnvironment) {
    this.dotenvPath = resolve(where.cwd, ".env");
    this.dotenv = readDotenv(this.dotenvPath);
  }

  /** The setting's trimmed value and where it was found; undefined if unset or empty. */
  get(name: string): { value: string; from: "environment" | "dotenv" } | undefined {
    const fromEnv = this.where.env[name];
    const raw = fromEnv ?? this.dotenv[name];
    if (raw === undefined || raw.trim() === "") return undefined;
    return { value: raw.trim(), from: fromEnv === undefined ? "dotenv" : "environment" };
  }
}

function registrationKey(args: CliArgs, settings: Settings, cwd: string): { key: string; source: KeySource } {
  // Several keys may be configured for rotation; any of them will do.
  const firstKey = (keys: string): string => (keys.split(",")[0] as string).trim();
  const flag = stringFlag(args, "--key");
  if (flag !== undefined) return { key: firstKey(flag), source: { from: "flag", label: "--key" } };
  const setting = settings.get("SERVICE_REGISTRATION_KEY");
  if (setting !== undefined) {
    const label =
      setting.from === "environment"
        ? "SERVICE_REGISTRATION_KEY (environment)"
        : `SERVICE_REGISTRATION_KEY in ${settings.dotenvPath}`;
    return { key: firstKey(setting.value), source: { from: setting.from, label } };
  }
  const dataDir = stringFlag(args, "--data-dir") ?? settings.get("DATA_DIR")?.value ?? "./data";
  const file = resolve(cwd, dataDir, KEY_FILE_NAME);
  try {
    return { key: readFileSync(file, "utf8").trim(), source: { from: "file", label: `the key file ${file}` } };
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

function readDotenv(path: string): Record<string, string | undefined> {
  if (!existsSync(path)) return {};
  try {
    return parseEnv(readFileSync(path, "utf8"));
  } catch {
    return {};
  }
}
