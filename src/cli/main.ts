#!/usr/bin/env node
import { constants as osConstants } from "node:os";
import { ConfigError, loadConfig, loadConfigWithOrigins } from "../config/load-config.js";
import { generateKey } from "../config/registration-key.js";
import { flagName, SETTINGS } from "../config/settings.js";
import { createLogger, fdDestination, stdoutDestination } from "../logging/logger.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import { StoreOpenError } from "../store/store-open-error.js";
import { isClientCommand, runClientCommand, type ClientCommand } from "./commands/client-commands.js";
import { runExecCommand } from "./commands/exec-command.js";
import { processOutput } from "./commands/output.js";
import { startServer } from "../app/start-server.js";

const USAGE = `usage: service-registry [serve] [--flag value ...]
       service-registry keygen
       service-registry rotate-epoch [--data-dir DIR]
       service-registry services [--json] [connection flags]
       service-registry list [SERVICE_TYPE [--selector KEY=VALUE,...]] [--json] [connection flags]
       service-registry get INSTANCE_ID [--json] [connection flags]
       service-registry watch [SERVICE_TYPE] [--selector KEY=VALUE,...] [--json] [connection flags]
       service-registry register SERVICE_TYPE --port PORT [--host HOST] [--metadata KEY=VALUE ...]
                                 [--check http|grpc|tcp|ttl|session] [--health-path /PATH]
                                 [--grpc-service NAME] [--tls] [--ttl-ms MS] [--check-timeout-ms MS]
                                 [--json] [connection flags]
       service-registry unregister INSTANCE_ID [--json] [connection flags]
       service-registry drain INSTANCE_ID [--json] [connection flags]
       service-registry exec --type SERVICE_TYPE --port PORT [--host HOST] [--metadata KEY=VALUE ...]
                             [--check session|http|grpc|tcp|ttl] [--health-path /PATH] [--grpc-service NAME]
                             [--ttl-ms MS] [--grace-ms MS] [--wait-timeout-ms MS] [connection flags]
                             -- COMMAND [ARG ...]

Commands:
  serve          run the registry (default)
  keygen         print a new random registration key
  rotate-epoch   give a stopped registry's SQLite data a new epoch (after restoring a backup)
  services       service types with healthy and total instance counts
  list           the same; with a type, its instances
  get            one instance by id
  watch          the instances, then every change as it happens (Ctrl-C to stop)
  register       register an instance; prints its id and token (the token only this once)
  unregister     remove an instance by id
  drain          mark an instance draining: routers stop picking it, then it is removed
  exec           run COMMAND (any language) and keep it registered while it runs; drains,
                 then stops it, on SIGTERM; \`service-registry exec --help\` for details

  Client commands find the registry at --address HOST[:PORT], REGISTRY_ADDRESS
  or 127.0.0.1 (port $PORT, default 4000, when none is given), and the key in
  --key, SERVICE_REGISTRATION_KEY (environment or .env) or
  DATA_DIR/registration-key; \`service-registry list --help\` for details.
  Exit codes: 0 done, 1 failed (not found, unreachable, refused, rejected), 2 usage;
  exec exits with COMMAND's status.

Server flags (serve; each also read from the environment or .env):
${Object.values(SETTINGS)
  .map((s) => `  ${flagName(s.env).padEnd(30)} ${s.env}: ${s.description} (default ${JSON.stringify(s.default)})`)
  .join("\n")}
`;

/** A stop signal repeated within this many ms is one request, not "exit now". */
const REPEATED_SIGNAL_MS = 1000;

async function serve(argv: string[]): Promise<void> {
  const { config, origins } = loadConfigWithOrigins({ argv });
  const logger = createLogger(config.logLevel, await stdoutDestination(config.logFormat));
  // Signal handlers go in before start-up: a SIGTERM that comes right after
  // the "serving" line (or during start-up) must still mean a graceful stop.
  // A second signal while stopping (Ctrl-C twice) exits at once, as 128 +
  // the signal's number: an operator who asks twice does not want to wait
  // for in-flight calls. Acknowledged changes are already committed.
  let stop: ((signal: string) => void) | undefined;
  let stopRequested: string | undefined;
  let stopRequestedAt = 0;
  const onStopSignal = (signal: NodeJS.Signals) => (): void => {
    // A signal sent to a process group (Ctrl-C in a terminal, systemd's stop,
    // `kill -- -PGID`) reaches the server directly and again through npm,
    // which forwards it: a repeat within a moment is the same request.
    if (stopRequested !== undefined && Date.now() - stopRequestedAt < REPEATED_SIGNAL_MS) return;
    if (stopRequested !== undefined) {
      logger.warn({ signal }, "second stop signal: exiting now, without waiting for calls in flight");
      process.exit(128 + (osConstants.signals[signal] ?? 0));
    }
    stopRequested = signal;
    stopRequestedAt = Date.now();
    stop?.(signal);
  };
  process.on("SIGTERM", onStopSignal("SIGTERM"));
  process.on("SIGINT", onStopSignal("SIGINT"));
  // `kill -HUP <pid>`: read the configuration again (flags, environment,
  // .env) and accept the registration keys it names, without a restart.
  // Only the keys: other settings still need one. Installed before start-up,
  // where SIGHUP's default would end the process.
  let reloadKeys: (() => void) | undefined;
  let reloadRequested = false;
  process.on("SIGHUP", () => {
    if (reloadKeys) reloadKeys();
    else reloadRequested = true;
  });
  const server = await startServer(config, logger, { registrationKeyOrigin: origins.registrationKey });
  reloadKeys = (): void => {
    let loaded: ReturnType<typeof loadConfigWithOrigins>;
    try {
      loaded = loadConfigWithOrigins({ argv });
    } catch (err) {
      logger.error({ signal: "SIGHUP", reason: (err as Error).message }, "registration keys not reloaded; the current keys stay");
      return;
    }
    server.reloadKeys(loaded.config.registrationKey, loaded.origins.registrationKey);
  };
  if (reloadRequested) reloadKeys();
  let stopping = false;
  stop = (signal: string): void => {
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
  if (stopRequested) stop(stopRequested);
  // `kill -USR2 <pid>`: an online backup of the SQLite data, without downtime.
  process.on("SIGUSR2", () => {
    if (!server.backup) {
      logger.warn({ store: config.store }, "SIGUSR2: this store keeps no local file to back up");
      return;
    }
    server.backup().then(
      (path) => logger.info({ path }, "backup written"),
      (err: unknown) => logger.error({ err }, "backup failed"),
    );
  });
}

/** Runs a client command (list, register...); Ctrl-C ends a watch (exit 130, as a shell expects). */
async function clientCommand(command: ClientCommand, args: string[]): Promise<void> {
  const controller = new AbortController();
  let signalled: number | undefined;
  const onSignal = (code: number) => () => {
    signalled = code;
    controller.abort();
  };
  process.once("SIGINT", onSignal(130));
  process.once("SIGTERM", onSignal(143));
  // `watch | head` closes our stdout: that is the reader's way to say "enough".
  process.stdout.on("error", (err: NodeJS.ErrnoException) => process.exit(err.code === "EPIPE" ? 0 : 1));
  const code = await runClientCommand(command, args, processOutput, undefined, controller.signal);
  process.exit(signalled ?? code);
}

/** Runs `exec` and exits with its status (the command's, once it has run). */
async function execCommand(args: string[]): Promise<void> {
  process.exit(await runExecCommand(args));
}

async function main(args: string[]): Promise<void> {
  const [first, ...rest] = args;
  if (isClientCommand(first)) return clientCommand(first, rest);
  if (first === "exec") return execCommand(rest);
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
    // Warnings (a data set started anew in an existing file) to stderr: stdout is the command's answer.
    const store = new SqliteStore({ dataDir: config.dataDir, logger: createLogger("warn", fdDestination(2)) });
    await store.open();
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
  if (err instanceof ConfigError || err instanceof StoreOpenError) { // an EtcdOpenError is one too
    process.stderr.write(`service-registry: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`service-registry: failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
