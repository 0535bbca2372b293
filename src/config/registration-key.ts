import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "pino";
import { newToken } from "../registry/credentials.js";
import { ensureDir } from "../util/ensure-dir.js";
import { ConfigError } from "./load-config.js";

/** Shortest registration key accepted (SPEC 4.1). */
export const MIN_KEY_LENGTH = 16;

/** File in the data directory holding the generated key. */
export const KEY_FILE_NAME = "registration-key";

const HOW_TO_MAKE =
  "generate one with `npm run cli -- keygen` (or `openssl rand -hex 32`)";

/** A fresh random key, as `keygen` prints it. */
export function generateKey(): string {
  return newToken();
}

/**
 * The accepted registration keys: the comma-separated configured ones, or
 * else the key stored in `dataDir`, generated there (mode 0600) on first
 * start. Logs the file's path, never a key.
 */
export function resolveRegistrationKeys(configured: string, dataDir: string, logger: Logger): string[] {
  if (configured !== "") {
    const keys = configured.split(",").map((k) => k.trim()).filter((k) => k !== "");
    if (keys.length === 0) throw new ConfigError(`SERVICE_REGISTRATION_KEY holds no key; ${HOW_TO_MAKE}`);
    if (keys.some((k) => k.length < MIN_KEY_LENGTH)) {
      throw new ConfigError(
        `SERVICE_REGISTRATION_KEY: every key must be at least ${MIN_KEY_LENGTH} characters; ${HOW_TO_MAKE}`,
      );
    }
    return keys;
  }
  const path = resolve(dataDir, KEY_FILE_NAME);
  try {
    const stored = readFileSync(path, "utf8").trim();
    if (stored.length < MIN_KEY_LENGTH) throw new ConfigError(`${path} holds a key shorter than ${MIN_KEY_LENGTH} characters`);
    logger.info({ keyFile: path }, "using the registration key stored in the data directory");
    return [stored];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot read the registration key file ${path}: ${(err as Error).message}`);
    }
  }
  try {
    ensureDir(dataDir);
    const key = generateKey();
    writeFileSync(path, `${key}\n`, { mode: 0o600, flag: "wx" });
    logger.warn({ keyFile: path }, "no SERVICE_REGISTRATION_KEY set: generated one; services read it from this file");
    return [key];
  } catch (err) {
    throw new ConfigError(`DATA_DIR: cannot create the registration key file ${path}: ${(err as Error).message}`);
  }
}
