import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startServer, type RunningServer, type StartOptions } from "../../src/app/start-server.js";
import { loadConfig } from "../../src/config/load-config.js";
import { TEST_KEY } from "./registry-harness.js";

/**
 * The server as `serve` wires it (startServer: store, metrics, health, HTTP),
 * in-process on loopback ephemeral ports (gRPC and HTTP), with a memory store
 * and no probing unless `env` says otherwise. Logs go to `logger` (silent by default).
 */
export async function startStack(
  env: Record<string, string> = {},
  options: StartOptions = {},
  logger: pino.Logger = pino({ level: "silent" }),
): Promise<RunningServer & { address: string; httpUrl: string }> {
  const cwd = mkdtempSync(join(tmpdir(), "registry-stack-"));
  const config = loadConfig({
    cwd,
    argv: [],
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      STORE: "memory",
      DATA_DIR: join(cwd, "data"),
      SERVICE_REGISTRATION_KEY: TEST_KEY,
      HEALTH_CHECKS: "false",
      SHUTDOWN_GRACE_MS: "1000",
      ...env,
    },
  });
  const server = await startServer(config, logger, { httpPort: 0, ...options });
  return Object.assign(server, { address: `127.0.0.1:${server.port}`, httpUrl: `http://127.0.0.1:${server.httpPort}` });
}
