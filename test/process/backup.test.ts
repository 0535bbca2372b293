import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { runCli, startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

const KEY = "backup-test-registration-key-01";

/** Resolves with the first log line whose msg is `msg`, waiting on the process's output. */
function logLine(server: ServerProcess, msg: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const find = (): boolean => {
      const line = server.output().split("\n").find((l) => l.includes(`"msg":"${msg}"`));
      if (!line) return false;
      clearTimeout(timer);
      server.child.stdout?.off("data", onData);
      resolve(JSON.parse(line) as Record<string, unknown>);
      return true;
    };
    const onData = (): void => void find();
    const timer = setTimeout(() => reject(new Error(`no "${msg}" log line within ${timeoutMs} ms:\n${server.output()}`)), timeoutMs);
    server.child.stdout?.on("data", onData);
    find();
  });
}

describe("online backup of the SQLite store (SIGUSR2)", () => {
  const servers: ServerProcess[] = [];
  const clients: RegistryServiceClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) s.kill("SIGKILL");
  });

  async function serve(dataDir: string): Promise<{ server: ServerProcess; client: RegistryServiceClient }> {
    const server = await startServerProcess({ DATA_DIR: dataDir, SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECKS: "false" });
    servers.push(server);
    const client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    clients.push(client);
    return { server, client };
  }

  it("writes a consistent copy while serving, which restores (with rotate-epoch) to the same instances and tokens", async () => {
    const { server, client } = await serve(tempDataDir());
    const regs = [];
    for (let i = 0; i < 3; i++) {
      regs.push(await call(client, client.register, { serviceType: "api", port: 8000 + i, host: "10.0.0.1", metadata: {} }, keyAuth(KEY)));
    }
    const w = WatchCursor.open(client, { serviceType: "nothing" }, keyAuth(KEY));
    const oldEpoch = (await w.next()).epoch;
    w.cancel();

    server.kill("SIGUSR2");
    const line = await logLine(server, "backup written");
    const path = line.path as string;
    expect(existsSync(path)).toBe(true);
    // Still serving after the backup.
    await call(client, client.register, { serviceType: "api", port: 9000, host: "10.0.0.1", metadata: {} }, keyAuth(KEY));

    // Restore into a fresh data directory, as docs/operations.md says.
    const restoredDir = tempDataDir();
    copyFileSync(path, join(restoredDir, "registry.db"));
    const rotated = await runCli(["rotate-epoch", "--data-dir", restoredDir]);
    expect(rotated.code).toBe(0);
    const restored = await serve(restoredDir);
    const all = await call(restored.client, restored.client.getByType, { serviceType: "api", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY));
    expect(all.instances.map((i) => i.id).sort()).toEqual(regs.map((r) => r.serviceId).sort());
    const r0 = regs[0]!;
    await call(restored.client, restored.client.getInstance, { instanceId: r0.serviceId }, instanceAuth(r0.serviceId, r0.token));
    const w2 = WatchCursor.open(restored.client, { serviceType: "nothing" }, keyAuth(KEY));
    expect((await w2.next()).epoch).not.toBe(oldEpoch);
    w2.cancel();
  }, 30_000);
});
