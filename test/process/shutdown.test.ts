import { readFileSync } from "node:fs";
import { join } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { spawn } from "node:child_process";
import { holdRegisterInFlight } from "../support/call-in-flight.js";
import { fileURLToPath } from "node:url";
import { startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

describe("graceful shutdown of the server process", () => {
  let server: ServerProcess | undefined;
  let client: RegistryServiceClient | undefined;
  afterEach(() => {
    client?.close();
    server?.kill("SIGKILL");
  });

  it.each(["SIGTERM", "SIGINT"] as const)("on %s ends watch streams with UNAVAILABLE and exits 0", async (signal) => {
    server = await startServerProcess();
    const key = readFileSync(join(server.dataDir, "registration-key"), "utf8").trim();
    client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    await call(client, client.register, { serviceType: "api", port: 8080, host: "127.0.0.1", metadata: {} }, keyAuth(key));
    const watches = [WatchCursor.open(client, {}, keyAuth(key)), WatchCursor.open(client, { serviceType: "api" }, keyAuth(key))];
    for (const w of watches) {
      const [, synced] = await w.take(2);
      expect(synced?.type).toBe(EventType.EVENT_TYPE_SYNCED);
    }

    server.kill(signal);
    for (const w of watches) {
      const err = await w.status();
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toMatch(/shutting down/);
    }
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
    expect(server.output()).not.toContain(key);
  });

  it("exits at once, with 128 + the signal number, on a second signal while it waits for a call in flight", async () => {
    server = await startServerProcess({ SHUTDOWN_GRACE_MS: "60000" });
    const key = readFileSync(join(server.dataDir, "registration-key"), "utf8").trim();
    // A Register whose message never arrives in full holds the graceful stop for the whole grace period.
    const session = await holdRegisterInFlight(server.port, key);

    const output = server.child.stdout as NodeJS.ReadableStream;
    const shuttingDown = new Promise<void>((resolve) => {
      const check = (): void => {
        if (server?.output().includes('"msg":"shutting down"')) resolve();
        else output.once("data", check);
      };
      check();
    });
    server.kill("SIGINT");
    await shuttingDown;
    // A repeat within a second is the same request (a process-group signal also arrives through npm).
    server.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(server.child.exitCode).toBeNull();
    server.kill("SIGINT");
    expect(await server.exited).toBe(130);
    expect(server.output()).toContain("second stop signal");
    expect(server.output()).not.toContain('"msg":"stopped"');
    session.destroy();
  });

  it("stops gracefully on a SIGTERM that arrives during start-up", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve"], {
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      env: { ...process.env, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", DATA_DIR: tempDataDir() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const exited = new Promise<number | string>((resolve) => child.on("exit", (code, sig) => resolve(code ?? sig ?? -1)));
    // The first line (the generated key's path) is logged before the server binds.
    child.stdout.once("data", () => child.kill("SIGTERM"));
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"stopped"');
  });
});
