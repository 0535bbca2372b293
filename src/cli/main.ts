#!/usr/bin/env node
import { ConfigError, loadConfig } from "../config/load-config.js";
import { generateKey } from "../config/registration-key.js";
import { flagName, SETTINGS } from "../config/settings.js";
import { createLogger } from "../logging/logger.js";
import { EtcdOpenError } from "../store/etcd/etcd-store.js";
import { SqliteStore, StoreOpenError } from "../store/sqlite/sqlite-store.js";
import { startServer } from "./serve.js";

const USAGE = `usage: service-registry [serve] [--flag value ...]
       service-registry keygen
       service-registry rotate-epoch [--data-dir DIR]

Commands:
  serve          run the registry (default)
  keygen         print a new random registration key
  rotate-epoch   give a stopped registry's SQLite data a new epoch (after restoring a backup)

Flags (each also read from the environment or .env):
${Object.values(SETTINGS)
  .map((s) => `  ${flagName(s.env).padEnd(30)} ${s.env}: ${s.description} (default ${JSON.stringify(s.default)})`)
  .join("\n")}
`;

async function serve(argv: string[]): Promise<void> {
  const config = loadConfig({ argv });
  const logger = createLogger(config.logLevel);
  const server = await startServer(config, logger);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.close().then(
      () => {
        logger.info("stopped");
        logger.flush();
        process.exitCode = 0;
        // Keep-alive sockets of probes or clients must not hold the process open.
        setImmediate(() => process.exit(0));
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function main(args: string[]): Promise<void> {
  const [first, ...rest] = args;
  if (first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(USAGE);
    return;
  }
  if (first === "keygen") {
    process.stdout.write(`${generateKey()}\n`);
    return;
  }
  if (first === "rotate-epoch") {
    const config = loadConfig({ argv: rest });
    const store = new SqliteStore({ dataDir: config.dataDir });
    await store.open(() => {});
    const epoch = store.rotateEpoch();
    await store.close();
    process.stdout.write(`new epoch ${epoch} for ${store.path}\n`);
    return;
  }
  if (first === undefined || first.startsWith("--")) return serve(args);
  if (first === "serve") return serve(rest);
  process.stderr.write(`service-registry: unknown command ${JSON.stringify(first)}\n\n${USAGE}`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof StoreOpenError || err instanceof EtcdOpenError) {
    process.stderr.write(`service-registry: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`service-registry: failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
