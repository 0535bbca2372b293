import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, HealthStatus, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startHealthServer } from "../support/health-server.js";
import { call, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { registerUntilKilled } from "../support/register-load.js";
import { startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

const KEY = "crash-test-registration-key-0001";

interface Acked {
  id: string;
  token: string;
  revision: number;
}

describe("the SQLite store across restarts and crashes", () => {
  let server: ServerProcess | undefined;
  const clients: RegistryServiceClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    server?.kill("SIGKILL");
  });

  function client(port: number): RegistryServiceClient {
    // A separate channel per client, so the load really is concurrent.
    const c = new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    clients.push(c);
    return c;
  }

  async function epochOf(c: RegistryServiceClient): Promise<string> {
    const w = WatchCursor.open(c, { serviceType: "no-such-type" }, keyAuth(KEY));
    const synced = await w.next();
    w.cancel();
    return synced.epoch;
  }

  it("loses no acknowledged Register when killed with SIGKILL under load, with no revision hole or repeat", async () => {
    const dataDir = tempDataDir();
    const env = { DATA_DIR: dataDir, SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECKS: "false" };
    server = await startServerProcess(env);
    const loaders = Array.from({ length: 4 }, () => client(server!.port));
    const epoch = await epochOf(loaders[0]!);

    const answers = await registerUntilKilled(server, loaders, {
      key: KEY,
      callersPerClient: 16,
      killAfter: 400,
      // An address per call: a Register of a live address would replace its instance.
      request: (caller, i) => ({ serviceType: "load", port: 1 + (i % 65535), host: `10.1.${caller}.1`, metadata: { worker: String(caller) } }),
    });
    expect(await server.exited).toBe("SIGKILL");
    const acked: Acked[] = answers.map((res) => ({ id: res.serviceId, token: res.token, revision: res.instance!.revision }));
    const ackedCount = acked.length;
    expect(ackedCount).toBeGreaterThanOrEqual(400);

    server = await startServerProcess(env);
    const c = client(server.port);
    expect(await epochOf(c)).toBe(epoch);

    // Every acknowledged Register is there and its token works.
    for (const a of acked) {
      const res = await call(c, c.getInstance, { instanceId: a.id }, instanceAuth(a.id, a.token));
      expect(res.instance?.revision).toBe(a.revision);
    }
    // Revisions are exactly 1..N: no hole, no repeat.
    const all = await call(c, c.getByType, { serviceType: "load", includeUnhealthy: true, includeDraining: false, selector: {} }, keyAuth(KEY));
    const revisions = all.instances.map((i) => i.revision).sort((x, y) => x - y);
    expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => i + 1));
    expect(all.revision).toBe(revisions.length);
    expect(revisions.length).toBeGreaterThanOrEqual(ackedCount);
    // ...and they continue from there.
    const next = await call(c, c.register, { serviceType: "load", port: 9, host: "127.0.0.1", metadata: {} }, keyAuth(KEY));
    expect(next.instance?.revision).toBe(revisions.length + 1);
  }, 60_000);

  it("restarts with the same instances, tokens, epoch and health, and resumes probing", async () => {
    const dataDir = tempDataDir();
    const env = { DATA_DIR: dataDir, SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECK_INTERVAL_MS: "50", HEALTH_CHECK_TTL_MS: "500" };
    const backend = await startHealthServer();
    try {
      server = await startServerProcess(env);
      let c = client(server.port);
      const reg = await call(c, c.register, { serviceType: "api", port: backend.port, host: "127.0.0.1", metadata: {} }, keyAuth(KEY));
      const watch = WatchCursor.open(c, { serviceType: "api" }, keyAuth(KEY));
      await watch.take(2);
      backend.status = 503;
      const failed = await watch.next();
      expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
      const lastSeen = failed.revision;
      const epoch = failed.epoch;
      watch.cancel();

      server.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      backend.status = 200;
      server = await startServerProcess(env);
      c = client(server.port);

      // The health transition was persisted...
      const before = await call(c, c.getInstance, { instanceId: reg.serviceId }, instanceAuth(reg.serviceId, reg.token));
      expect(before.instance?.revision).toBeGreaterThanOrEqual(lastSeen);
      // ...and probing resumed: the instance recovers, and a watcher resuming
      // from before the restart sees exactly that change next.
      const resumed = WatchCursor.open(c, { serviceType: "api", sinceRevision: lastSeen, epoch }, keyAuth(KEY));
      const recovered = await resumed.next();
      expect(recovered.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
      expect(recovered.revision).toBe(lastSeen + 1);
      expect(recovered.instance?.health).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
      resumed.cancel();
    } finally {
      await backend.close();
    }
  }, 30_000);
});

