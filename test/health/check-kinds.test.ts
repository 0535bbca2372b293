import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createServer, type Server as NetServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import { HealthImplementation, service as healthService } from "grpc-health-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType, HealthCheck, HealthCheckKind, HealthStatus, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { call, callError, instanceAuth, startHarness, WatchCursor, type Harness } from "../support/registry-harness.js";

/**
 * Every check kind passing and failing for real: a grpc-js backend serving
 * grpc.health.v1, TCP ports open and closed, heartbeats that stop, and a
 * session held by a separate process that is SIGKILLed.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;

let h: Harness;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  // Probes every 150 ms; nothing expires (deregisterAfter 0) so each test sees transitions only.
  h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 150, healthCheckTTL: 400, deregisterAfter: 0 } });
});

afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
  await h.close();
});

function check(fields: Partial<HealthCheck>): HealthCheck {
  return HealthCheck.fromPartial(fields);
}

async function registerWith(healthCheck: HealthCheck, port = 1, serviceType = "svc") {
  const res = await call(h.client, h.client.register, { serviceType, port, host: "127.0.0.1", metadata: {}, healthCheck });
  return { id: res.serviceId, token: res.token, instance: res.instance! };
}

/** A watch of "svc" that has delivered its snapshot: it sees every change from now on. */
async function openWatch(): Promise<WatchCursor> {
  const watch = WatchCursor.open(h.client, { serviceType: "svc" });
  cleanups.push(() => watch.cancel());
  while ((await watch.next(5000)).type !== EventType.EVENT_TYPE_SYNCED);
  return watch;
}

/** The next health transition of `id` on `watch`, skipping others. */
async function nextTransition(watch: WatchCursor, id: string, timeoutMs = 5000): Promise<WatchInstancesResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await watch.next(Math.max(1, deadline - Date.now()));
    const health = m.type === EventType.EVENT_TYPE_HEALTH_CHECK_FAILED || m.type === EventType.EVENT_TYPE_HEALTH_CHECK_PASSED;
    if (health && m.instance?.id === id) return m;
  }
}

async function grpcHealthBackend(statuses: Record<string, "SERVING" | "NOT_SERVING">) {
  const server = new Server();
  const health = new HealthImplementation(statuses);
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => void server.forceShutdown());
  return { port, health };
}

async function tcpListener(): Promise<{ port: number; server: NetServer }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as { port: number }).port, server };
}

/** A port nothing listens on (bound, then closed again). */
async function closedPort(): Promise<number> {
  const { port, server } = await tcpListener();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("gRPC checks (grpc.health.v1 Health/Check)", () => {
  it("passes while the backend answers SERVING and fails, naming the status, on NOT_SERVING", async () => {
    const backend = await grpcHealthBackend({ "": "SERVING" });
    const { id, instance } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC }), backend.port);
    expect(instance.healthCheckKind).toBe(HealthCheckKind.HEALTH_CHECK_KIND_GRPC);
    const watch = WatchCursor.open(h.client, { serviceType: "svc", everyHealthCheck: true });
    cleanups.push(() => watch.cancel());
    const passed = await nextTransition(watch, id);
    expect(passed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
    backend.health.setStatus("", "NOT_SERVING");
    let failed = await nextTransition(watch, id);
    while (failed.type !== EventType.EVENT_TYPE_HEALTH_CHECK_FAILED) failed = await nextTransition(watch, id);
    expect(failed.failureReason).toBe("grpc health NOT_SERVING");
  });

  it("asks about the named service: an unknown one fails with NOT_FOUND in the reason, a known one passes", async () => {
    const backend = await grpcHealthBackend({ "": "SERVING", billing: "SERVING" });
    // Open first: the first probe comes soon after Register, before a watch opened later would be synced.
    const watch = await openWatch();
    const unknown = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, grpcService: "nope" }), backend.port);
    const known = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, grpcService: "billing" }), backend.port, "svc2");
    const failed = await nextTransition(watch, unknown.id);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toMatch(/service "nope" unknown to the server \(NOT_FOUND\)/);
    const knownNow = await call(h.client, h.client.getInstance, { instanceId: known.id });
    expect(knownNow.instance?.health).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
  });

  it("fails with no server on the port, in fixed words without the address", async () => {
    const port = await closedPort();
    const watch = await openWatch();
    const { id } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC }), port);
    const failed = await nextTransition(watch, id);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toBe("no gRPC connection (UNAVAILABLE)");
  });

  it("fails against an HTTP-only port (not gRPC)", async () => {
    const { port } = await tcpListener(); // accepts and closes at once
    const watch = await openWatch();
    const { id } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, timeoutMs: 300 }), port);
    expect((await nextTransition(watch, id)).type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
  });

  it("times out a backend that never answers Check, after the check's timeout, and says so", async () => {
    const server = new Server();
    server.addService(healthService, { check: () => {}, watch: () => {} }); // never answers
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    cleanups.push(() => void server.forceShutdown());
    const watch = await openWatch();
    const { id } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, timeoutMs: 300 }), port);
    const failed = await nextTransition(watch, id);
    expect([EventType[failed.type], failed.failureReason]).toEqual(["EVENT_TYPE_HEALTH_CHECK_FAILED", "timed out after 300 ms"]);
  });
});

describe("TCP checks", () => {
  it("passes while the port accepts and fails with 'connection refused' once it is closed", async () => {
    const listener = await tcpListener();
    const { id, instance } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TCP }), listener.port);
    expect(instance.healthCheckKind).toBe(HealthCheckKind.HEALTH_CHECK_KIND_TCP);
    const watch = WatchCursor.open(h.client, { serviceType: "svc", everyHealthCheck: true });
    cleanups.push(() => watch.cancel());
    expect((await nextTransition(watch, id)).type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
    await new Promise<void>((resolve) => listener.server.close(() => resolve()));
    let failed = await nextTransition(watch, id);
    while (failed.type !== EventType.EVENT_TYPE_HEALTH_CHECK_FAILED) failed = await nextTransition(watch, id);
    expect(failed.failureReason).toBe("connection refused (ECONNREFUSED)");
  });
});

describe("TTL checks (Heartbeat)", () => {
  it("stays healthy while heartbeats come, and fails with 'ttl expired' one ttl after they stop", async () => {
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 300 }));
    const watch = WatchCursor.open(h.client, { serviceType: "svc" });
    cleanups.push(() => watch.cancel());
    // Heartbeats every 100 ms for over three ttls: no transition.
    for (let i = 0; i < 10; i++) {
      const res = await call(h.client, h.client.heartbeat, { instanceId: id }, instanceAuth(id, token));
      expect(res.revision).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await call(h.client, h.client.getInstance, { instanceId: id })).instance?.health).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    const stoppedAt = Date.now();
    const failed = await nextTransition(watch, id);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toBe("ttl expired");
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(150); // not before the ttl (less the last sleep)
    // A heartbeat brings it back, answered with the revision of that change.
    const back = await call(h.client, h.client.heartbeat, { instanceId: id }, instanceAuth(id, token));
    const passed = await nextTransition(watch, id);
    expect(passed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
    expect(back.revision).toBe(passed.revision);
  });

  it("refuses a wrong token (UNAUTHENTICATED), the key (PERMISSION_DENIED) and an instance of another kind (FAILED_PRECONDITION naming it)", async () => {
    const ttl = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 5000 }));
    const wrong = await callError(h.client, h.client.heartbeat, { instanceId: ttl.id }, instanceAuth(ttl.id, "not-the-token"));
    expect(wrong.code).toBe(status.UNAUTHENTICATED);
    const byKey = await callError(h.client, h.client.heartbeat, { instanceId: ttl.id }, (await import("../support/registry-harness.js")).keyAuth());
    expect(byKey.code).toBe(status.PERMISSION_DENIED);
    const http = await registerWith(check({}), 2);
    const other = await callError(h.client, h.client.heartbeat, { instanceId: http.id }, instanceAuth(http.id, http.token));
    expect(other.code).toBe(status.FAILED_PRECONDITION);
    expect(other.details).toMatch(/HTTP health check/);
    const session = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }), 3);
    const sessionBeat = await callError(h.client, h.client.heartbeat, { instanceId: session.id }, instanceAuth(session.id, session.token));
    expect(sessionBeat.code).toBe(status.FAILED_PRECONDITION);
    expect(sessionBeat.details).toMatch(/SESSION health check/);
  });
});

describe("session checks (KeepAlive)", () => {
  function holdSession(id: string, token: string): { child: ChildProcess; opened: Promise<number> } {
    const child = spawn(process.execPath, ["--import", TSX, join(ROOT, "test/support/session-holder.ts"), h.address, id, token], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    let out = "";
    const opened = new Promise<number>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const m = /open (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (code) => reject(new Error(`session holder exited (${code}) before the session opened: ${out}`)));
    });
    return { child, opened };
  }

  it("turns UNHEALTHY at once when the holding process is SIGKILLed, long before any probe interval", async () => {
    await h.close();
    // An interval of a minute: only the session's end can explain a failure within the test.
    h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 60_000, deregisterAfter: 0 } });
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const watch = WatchCursor.open(h.client, { serviceType: "svc" });
    cleanups.push(() => watch.cancel());
    const holder = holdSession(id, token);
    expect(await holder.opened).toBeGreaterThan(0);
    const killedAt = Date.now();
    holder.child.kill("SIGKILL");
    const failed = await nextTransition(watch, id, 3000);
    const detectedMs = Date.now() - killedAt;
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toMatch(/^session lost/);
    expect(detectedMs).toBeLessThan(3000);
    // A new session brings it back.
    const again = holdSession(id, token);
    await again.opened;
    expect((await nextTransition(watch, id)).type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_PASSED);
  });

  it("turns UNHEALTHY when the holding process freezes (SIGSTOP): its connection stops answering keepalive pings", async () => {
    await h.close();
    h = await startHarness({
      registry: { healthChecks: true, healthCheckInterval: 60_000, deregisterAfter: 0 },
      server: { serverOptions: { "grpc.keepalive_time_ms": 300, "grpc.keepalive_timeout_ms": 300 }, sessionMessageIntervalMs: 300 },
    });
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const watch = WatchCursor.open(h.client, { serviceType: "svc" });
    cleanups.push(() => watch.cancel());
    const holder = holdSession(id, token);
    await holder.opened;
    // Alive while it answers pings: no failure over several keepalive rounds.
    await expect(nextTransition(watch, id, 1500)).rejects.toThrow(/no watch stream message/);
    holder.child.kill("SIGSTOP");
    cleanups.push(() => void holder.child.kill("SIGCONT"));
    const frozenAt = Date.now();
    const failed = await nextTransition(watch, id, 5000);
    expect(failed.type).toBe(EventType.EVENT_TYPE_HEALTH_CHECK_FAILED);
    expect(failed.failureReason).toMatch(/^session lost/);
    // A ping interval plus its timeout, with room for a loaded machine; the default probe interval here is a minute.
    expect(Date.now() - frozenAt).toBeLessThan(5000);
  });

  it("ends sessions at a graceful shutdown at once, with UNAVAILABLE, without failing their instances", async () => {
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const failures: string[] = [];
    h.registry.on("change", (c) => c.kind === "health" && c.instance.health === "unhealthy" && failures.push(c.instance.id));
    const stream = h.client.keepAlive(instanceAuth(id, token));
    const ended = new Promise<{ code: number }>((resolve) => stream.on("error", (err: { code: number }) => resolve(err)));
    const opened = new Promise<void>((resolve) => stream.once("data", () => resolve()));
    stream.write({ instanceId: id });
    await opened;
    const started = Date.now();
    await h.server.shutdown();
    // Not the grace period (1 s in the harness): the session did not hold the shutdown up.
    expect(Date.now() - started).toBeLessThan(900);
    expect((await ended).code).toBe(status.UNAVAILABLE);
    expect(failures).toEqual([]);
    expect(h.registry.getInstance(id).health).toBe("healthy");
  });

  it("says the instance closed it when the stream is half-closed, and ends the stream with NOT_FOUND when the instance is removed", async () => {
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const watch = WatchCursor.open(h.client, { serviceType: "svc" });
    cleanups.push(() => watch.cancel());
    const stream = h.client.keepAlive(instanceAuth(id, token));
    const first = new Promise<number>((resolve) => stream.once("data", (m: { revision: number }) => resolve(m.revision)));
    stream.write({ instanceId: id });
    await first;
    stream.end();
    const failed = await nextTransition(watch, id);
    expect(failed.failureReason).toBe("session closed by the instance");

    const second = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }), 2);
    const held = h.client.keepAlive(instanceAuth(second.id, second.token));
    const ended = new Promise<{ code: number; details: string }>((resolve) => held.on("error", (err: { code: number; details: string }) => resolve(err)));
    const opened = new Promise<void>((resolve) => held.once("data", () => resolve()));
    held.write({ instanceId: second.id });
    await opened;
    await call(h.client, h.client.unregister, { instanceId: second.id });
    const err = await ended;
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toMatch(/removed \(unregistered\)/);
  });

  it("ends a KeepAlive stream that never names its instance (an idle stream holds nothing) with INVALID_ARGUMENT", async () => {
    await h.close();
    h = await startHarness({ server: { requestReadTimeoutMs: 300 } });
    const { id, token } = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const stream = h.client.keepAlive(instanceAuth(id, token)); // and nothing sent
    const err = await new Promise<{ code: number; details: string }>((resolve) => {
      stream.on("data", () => undefined);
      stream.on("error", (e: { code: number; details: string }) => resolve(e));
    });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^instance_id: the first KeepAlive request must name the instance within 300 ms/);
    expect(h.registry.getInstance(id).health).toBe("healthy");
  });

  it("refuses a wrong token with UNAUTHENTICATED and an instance of another kind with FAILED_PRECONDITION", async () => {
    const session = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION }));
    const refusal = (id: string, token: string) =>
      new Promise<{ code: number; details: string }>((resolve) => {
        const stream = h.client.keepAlive(instanceAuth(id, token));
        stream.on("data", () => undefined);
        stream.on("error", (err: { code: number; details: string }) => resolve(err));
        stream.write({ instanceId: id });
      });
    expect((await refusal(session.id, "wrong")).code).toBe(status.UNAUTHENTICATED);
    const ttl = await registerWith(check({ kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL, ttlMs: 5000 }), 2);
    const other = await refusal(ttl.id, ttl.token);
    expect(other.code).toBe(status.FAILED_PRECONDITION);
    expect(other.details).toMatch(/TTL health check: KeepAlive is for SESSION checks/);
  });
});

describe("Register validates the check", () => {
  it.each([
    ["a TTL check without ttl_ms", { kind: HealthCheckKind.HEALTH_CHECK_KIND_TTL }, "health_check.ttl_ms"],
    ["ttl_ms on an HTTP check", { ttlMs: 1000 }, "health_check.ttl_ms"],
    ["grpc_service on a TCP check", { kind: HealthCheckKind.HEALTH_CHECK_KIND_TCP, grpcService: "x" }, "health_check.grpc_service"],
    ["a grpc_service with a NUL", { kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, grpcService: "billing\u0000.v1" }, "health_check.grpc_service"],
    ["a grpc_service with a line break", { kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, grpcService: "billing\n" }, "health_check.grpc_service"],
    ["a timeout on a session check", { kind: HealthCheckKind.HEALTH_CHECK_KIND_SESSION, timeoutMs: 100 }, "health_check.timeout_ms"],
    ["a path on a gRPC check", { kind: HealthCheckKind.HEALTH_CHECK_KIND_GRPC, path: "/x" }, "health_check.path"],
    ["an unknown kind", { kind: 42 as HealthCheckKind }, "health_check.kind"],
  ])("refuses %s with INVALID_ARGUMENT naming the field", async (_name, fields, field) => {
    const err = await callError(
      h.client,
      h.client.register,
      { serviceType: "svc", port: 1, host: "127.0.0.1", metadata: {}, healthCheck: check(fields) },
      (await import("../support/registry-harness.js")).keyAuth(),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details.startsWith(`${field}:`)).toBe(true);
  });
});
