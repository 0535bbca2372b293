import { createServer } from "node:http";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, HealthCheck, HealthCheckKind, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, instanceAuth, keyAuth, TEST_KEY, WatchCursor } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

/**
 * The registry process itself frozen (SIGSTOP: a stalled VM, a debugger, a
 * long pause) while the instances that report their own liveness keep
 * reporting: their heartbeats wait, unread, in the registry's sockets. At
 * the thaw every clock that ran out meanwhile fires before any of them is
 * read, which used to fail every TTL instance at once.
 */
const TTL_MS = 1000;
const FREEZE_MS = 3000;

describe("a registry frozen for longer than a TTL", () => {
  let server: ServerProcess | undefined;
  const cleanups: (() => void)[] = [];
  afterEach(async () => {
    for (const clean of cleanups.splice(0).reverse()) clean();
    server?.kill("SIGCONT");
    server?.kill("SIGTERM");
    await server?.exited;
    server = undefined;
  });

  it("fails the TTL instance that stopped heartbeating, not the one still heartbeating", async () => {
    server = await startServerProcess({ SERVICE_REGISTRATION_KEY: TEST_KEY });
    const client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    cleanups.push(() => client.close());
    const ttl = HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: TTL_MS });
    const register = (port: number) => call(client, client.register, { serviceType: "svc", host: "127.0.0.1", port, metadata: {}, healthCheck: ttl });
    const live = await register(7001);
    const dead = await register(7002);

    // Each heartbeats every quarter ttl, as a client in its own process
    // would; `dead` stops when the registry freezes. Their deadlines outlast
    // the freeze, so the heartbeats sent meanwhile are read at the thaw.
    let deadStopped = false;
    const heartbeat = (id: string, token: string) =>
      client.heartbeat({ instanceId: id }, instanceAuth(id, token), { deadline: Date.now() + FREEZE_MS + 5000 }, () => {});
    const beats = setInterval(() => {
      heartbeat(live.serviceId, live.token);
      if (!deadStopped) heartbeat(dead.serviceId, dead.token);
    }, TTL_MS / 4);
    cleanups.push(() => clearInterval(beats));

    const watch = WatchCursor.open(client, { serviceType: "svc" }, keyAuth());
    cleanups.push(() => watch.cancel());
    while ((await watch.next(5000)).type !== EventType.EVENT_TYPE_SYNCED);

    server.kill("SIGSTOP");
    deadStopped = true;
    await new Promise((resolve) => setTimeout(resolve, FREEZE_MS));
    server.kill("SIGCONT");
    const thawedAt = Date.now();

    // The first failure after the thaw is the silent instance's, within
    // about the time the registry could not hear it (the freeze) of the thaw.
    const failed = await watch.next(FREEZE_MS + 3000);
    expect([EventType[failed.type], failed.instance?.port, failed.failureReason]).toEqual(["EVENT_TYPE_HEALTH_CHECK_FAILED", 7002, "ttl expired"]);
    expect(Date.now() - thawedAt).toBeLessThan(FREEZE_MS + 2000);

    // And the one heartbeating stays healthy: nothing for it in the two ttls
    // before a marker registered after them (the watch delivers in order).
    await new Promise((resolve) => setTimeout(resolve, 2 * TTL_MS));
    await register(7003);
    const next = await watch.next(5000);
    expect([EventType[next.type], next.instance?.port]).toEqual(["EVENT_TYPE_INSTANCE_REGISTERED", 7003]);
  }, 30_000);

  /**
   * The health endpoint answers after 300 ms; the registry is frozen 100 ms
   * into one probe, so the answer waits unread in its socket while the
   * probe's timeout runs out, for `freezeMs`.
   */
  async function probeAcrossFreeze(timeoutMs: number, freezeMs: number): Promise<void> {
    let freezeNext = false;
    let frozen: (() => void) | undefined;
    const health = createServer((_req, res) => {
      if (freezeNext) {
        freezeNext = false;
        setTimeout(() => frozen?.(), 100);
      }
      setTimeout(() => res.end("ok"), 300);
    });
    await new Promise<void>((resolve) => health.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => health.close());
    const port = (health.address() as { port: number }).port;
    server = await startServerProcess({
      SERVICE_REGISTRATION_KEY: TEST_KEY,
      PROBE_ALLOW_CIDRS: "127.0.0.0/8",
      HEALTH_CHECK_INTERVAL_MS: "1000",
      HEALTH_CHECK_TTL_MS: String(timeoutMs),
    });
    const client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    cleanups.push(() => client.close());
    await call(client, client.register, { serviceType: "svc", host: "127.0.0.1", port, metadata: {} });
    const watch = WatchCursor.open(client, { serviceType: "svc" }, keyAuth());
    cleanups.push(() => watch.cancel());
    while ((await watch.next(5000)).type !== EventType.EVENT_TYPE_SYNCED);

    await new Promise<void>((resolve) => {
      frozen = resolve;
      freezeNext = true;
    });
    server.kill("SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, freezeMs));
    server.kill("SIGCONT");

    // Two probe intervals after the thaw, a marker: nothing came before it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await call(client, client.register, { serviceType: "svc", host: "127.0.0.1", port: 7003, metadata: {}, healthCheck: HealthCheck.fromPartial({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 60_000 }) });
    const next = await watch.next(5000);
    expect([EventType[next.type], next.instance?.port, next.failureReason]).toEqual(["EVENT_TYPE_INSTANCE_REGISTERED", 7003, ""]);
  }

  it("passes an HTTP probe whose answer came while it was frozen, rather than time it out at the thaw", async () => {
    await probeAcrossFreeze(1000, FREEZE_MS);
  }, 30_000);

  it("the same when the freeze ends just after the probe's timeout ran out (too little to count as late)", async () => {
    await probeAcrossFreeze(500, 450); // the timeout runs out 50 ms before the thaw
  }, 30_000);
});
