import { readFileSync } from "node:fs";
import { join } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

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
});
