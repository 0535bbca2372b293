import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { flagName, SETTINGS, type Config, type SettingName } from "./settings.js";

/** A setting that cannot be used; `message` is one line naming it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Where settings come from; each layer overrides the one before. */
export interface ConfigSources {
  /** Command-line arguments after the command, e.g. `["--port", "5000"]`. */
  readonly argv?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Folder holding an optional `.env` file. Default: the working directory. */
  readonly cwd?: string;
}

/**
 * Where a setting's value came from: its `--flag`, the environment, the
 * `.env` file at `path`, or its default (also when set but empty).
 */
export type SettingOrigin =
  | { readonly from: "flag" }
  | { readonly from: "environment" }
  | { readonly from: "dotenv"; readonly path: string }
  | { readonly from: "default" };

/** A configuration and the layer each of its settings came from. */
export interface LoadedConfig {
  readonly config: Config;
  readonly origins: { readonly [K in SettingName]: SettingOrigin };
}

/**
 * Resolves the configuration: defaults, then `.env`, then the environment,
 * then `--flags`. Throws a ConfigError naming the first bad setting.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  return loadConfigWithOrigins(sources).config;
}

/**
 * `loadConfig`, and where each setting came from: the start-up line says
 * where the registration key was found (never the key).
 */
export function loadConfigWithOrigins(sources: ConfigSources = {}): LoadedConfig {
  const env = sources.env ?? process.env;
  const dotenvPath = resolve(sources.cwd ?? process.cwd(), ".env");
  const dotenv = readDotenv(dotenvPath);
  const flags = parseFlags(sources.argv ?? []);
  const config: Record<string, unknown> = {};
  const origins: Record<string, SettingOrigin> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    const flag = flags.get(flagName(setting.env));
    const raw = flag ?? env[setting.env] ?? dotenv[setting.env];
    if (raw === undefined || raw === "") {
      config[name] = setting.default;
      origins[name] = { from: "default" };
      continue;
    }
    origins[name] =
      flag !== undefined ? { from: "flag" } : env[setting.env] !== undefined ? { from: "environment" } : { from: "dotenv", path: dotenvPath };
    try {
      config[name] = setting.parse(raw);
    } catch (err) {
      // Never echo the registration key itself.
      const why = setting.env === "SERVICE_REGISTRATION_KEY" ? "is invalid" : (err as Error).message;
      throw new ConfigError(`${setting.env} (${flagName(setting.env)}) ${why}`);
    }
  }
  return { config: config as Config, origins: origins as LoadedConfig["origins"] };
}

/** Larger than any settings file; a bound so a wrong path cannot fill memory. */
const MAX_DOTENV_BYTES = 1024 * 1024;

function readDotenv(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  let text: string;
  try {
    // Checked first: reading a device (/dev/zero) never ends and a FIFO blocks
    // the process, at start-up and at every SIGHUP reload alike.
    const stat = statSync(path);
    if (!stat.isFile()) throw new ConfigError(`${path} is not a regular file`);
    if (stat.size > MAX_DOTENV_BYTES) throw new ConfigError(`${path} is larger than 1 MiB; it should hold settings only`);
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${path} cannot be read: ${(err as Error).message}`);
  }
  return parseEnv(text) as Record<string, string>;
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(Object.values(SETTINGS).map((s) => flagName(s.env)));
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!known.has(name)) throw new ConfigError(`unknown option ${JSON.stringify(name)}; see --help`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`${name} needs a value`);
    flags.set(name, value);
  }
  return flags;
}
