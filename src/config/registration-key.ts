import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { newToken } from "../registry/credentials.js";
import { ensureDir } from "../util/ensure-dir.js";
import { ConfigError, type SettingOrigin } from "./load-config.js";

/** Shortest registration key accepted (SPEC 4.1). */
export const MIN_KEY_LENGTH = 16;

/** Keys shorter than this get a start-up warning: `keygen` makes 43 characters (256 random bits). */
export const STRONG_KEY_LENGTH = 32;

/** File in the data directory holding the generated key. */
export const KEY_FILE_NAME = "registration-key";

const HOW_TO_MAKE =
  "generate one with `npm run cli -- keygen` (or `openssl rand -hex 32`)";

/** A fresh random key, as `keygen` prints it. */
export function generateKey(): string {
  return newToken();
}

/**
 * Where the server's registration keys came from, as the start-up line says
 * it: `flag` (--service-registration-key), `environment` or `dotenv`
 * (SERVICE_REGISTRATION_KEY), `setting` (configured, layer unknown: an
 * embedder's config), `file` (the key stored in DATA_DIR) or `generated`
 * (written there now). Names files, never a key.
 */
export interface KeySource {
  readonly from: "flag" | "environment" | "dotenv" | "setting" | "file" | "generated";
  /** The `.env` file or the key file. */
  readonly path?: string;
  /** How a person would read it after "key", e.g. `from SERVICE_REGISTRATION_KEY in /srv/.env`. */
  readonly description: string;
}

/** The accepted keys and where they came from. */
export interface ResolvedKeys {
  readonly keys: string[];
  readonly source: KeySource;
}

/**
 * The accepted registration keys: the comma-separated configured ones, or
 * else the key stored in `dataDir`, generated there (mode 0600) on first
 * start. `origin` is the layer the configured keys came from, for `source`.
 * A reload passes `generate: false`: a key file that is gone is an error
 * then (the current keys stay), not a reason to mint a key nobody holds.
 *
 * @example
 * resolveRegistrationKeys("", "./data").source.description
 * // "generated into /srv/registry/data/registration-key" on first start
 */
export function resolveRegistrationKeys(
  configured: string,
  dataDir: string,
  origin?: SettingOrigin,
  { generate = true }: { generate?: boolean } = {},
): ResolvedKeys {
  if (configured !== "") {
    const keys = configured.split(",").map((k) => k.trim()).filter((k) => k !== "");
    if (keys.length === 0) throw new ConfigError(`SERVICE_REGISTRATION_KEY holds no key; ${HOW_TO_MAKE}`);
    if (keys.some((k) => k.length < MIN_KEY_LENGTH)) {
      throw new ConfigError(
        `SERVICE_REGISTRATION_KEY: every key must be at least ${MIN_KEY_LENGTH} characters; ${HOW_TO_MAKE}`,
      );
    }
    return { keys, source: configuredSource(origin) };
  }
  const path = resolve(dataDir, KEY_FILE_NAME);
  try {
    const stored = readFileSync(path, "utf8").trim();
    if (stored.length < MIN_KEY_LENGTH) throw new ConfigError(`${path} holds a key shorter than ${MIN_KEY_LENGTH} characters`);
    return { keys: [stored], source: { from: "file", path, description: `from the key file ${path}` } };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot read the registration key file ${path}: ${(err as Error).message}`);
    }
  }
  if (!generate) throw new ConfigError(`no SERVICE_REGISTRATION_KEY is set and the key file ${path} is gone`);
  try {
    ensureDir(dataDir);
    const key = generateKey();
    writeFileSync(path, `${key}\n`, { mode: 0o600, flag: "wx" });
    const description = `generated into ${path}, where services read it (no SERVICE_REGISTRATION_KEY set)`;
    return { keys: [key], source: { from: "generated", path, description } };
  } catch (err) {
    throw new ConfigError(`DATA_DIR: cannot create the registration key file ${path}: ${(err as Error).message}`);
  }
}

/**
 * The warning to log when a key is shorter than {@link STRONG_KEY_LENGTH}
 * characters (accepted from {@link MIN_KEY_LENGTH} on, so existing
 * deployments keep starting), or undefined. Says how to make a strong one;
 * never quotes a key.
 */
export function weakKeyWarning(keys: readonly string[]): string | undefined {
  const weak = keys.filter((k) => k.length < STRONG_KEY_LENGTH).length;
  if (weak === 0) return undefined;
  return (
    `${weak} of ${keys.length} registration key(s) shorter than ${STRONG_KEY_LENGTH} characters: easier to guess; ` +
    `replace with a random one from \`service-registry keygen\` (from a checkout: \`npm run cli -- keygen\`) ` +
    "added beside the old key in SERVICE_REGISTRATION_KEY, then drop the old one (SIGHUP reloads)"
  );
}

function configuredSource(origin: SettingOrigin | undefined): KeySource {
  switch (origin?.from) {
    case "flag":
      return { from: "flag", description: "from --service-registration-key" };
    case "environment":
      return { from: "environment", description: "from SERVICE_REGISTRATION_KEY in the environment" };
    case "dotenv":
      return { from: "dotenv", path: origin.path, description: `from SERVICE_REGISTRATION_KEY in ${origin.path}` };
    default:
      return { from: "setting", description: "from SERVICE_REGISTRATION_KEY" };
  }
}
