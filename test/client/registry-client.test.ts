import { credentials, status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Backoff } from "../../src/client/backoff.js";
import { RegistryClientError } from "../../src/client/client-error.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { makeTestPki } from "../support/test-pki.js";
import { startBlackhole } from "../support/blackhole.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { drain, freePort, startMtlsHarness } from "./helpers.js";

/** The rejection of `promise`, which must fail. */
async function failure(promise: Promise<unknown>): Promise<RegistryClientError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryClientError);
    return err as RegistryClientError;
  }
  throw new Error("expected the call to fail");
}

describe("RegistryClient", () => {
  let h: Harness;
  const clients: RegistryClient[] = [];
  const client = (options: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}): RegistryClient => {
    const c = new RegistryClient({ addresses: [h.address], auth: { key: TEST_KEY }, ...options });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await h.close();
  });

  it("has a typed call for every RPC, returning plain objects, with the key or an instance's credentials", async () => {
    const admin = client();
    const a = await admin.register({ serviceType: "billing", port: 8080, host: "10.0.0.7", metadata: { zone: "eu-1" }, healthCheckPath: "/hz" });
    expect(a.instance).toMatchObject({
      id: a.id,
      serviceType: "billing",
      host: "10.0.0.7",
      port: 8080,
      metadata: { zone: "eu-1" },
      healthCheckPath: "/hz",
      health: "healthy",
      revision: 1,
    });
    expect(typeof a.instance.registeredAt).toBe("number");
    expect(a.auth).toEqual({ instanceId: a.id, token: a.token });
    const b = await admin.register({ serviceType: "billing", port: 8081, host: "10.0.0.8" });

    // An instance reads with its own credentials.
    const self = client({ auth: a.auth });
    expect(await self.getInstance(b.id)).toMatchObject({ id: b.id, port: 8081 });
    const byType = await self.getByType("billing");
    expect(byType.instances.map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
    expect(byType.revision).toBe(2);
    expect(await self.listServices()).toEqual({ services: [{ serviceType: "billing", healthyCount: 2, totalCount: 2, drainingCount: 0, panic: false }], revision: 2 });

    // ...and unregisters itself; per-call credentials override the client's.
    const removed = await admin.unregister(a.id, { auth: a.auth });
    expect(removed).toMatchObject({ instance: { id: a.id }, revision: 3, reason: "unregistered" });
    expect((await admin.getByType("billing")).instances.map((i) => i.id)).toEqual([b.id]);
  });

  it("passes a selector to getByType and watch: only matching instances come back, and a bad one is INVALID_ARGUMENT", async () => {
    const admin = client();
    const eu = await admin.register({ serviceType: "billing", port: 8080, host: "10.0.0.7", metadata: { zone: "eu-1", tier: "web" } });
    await admin.register({ serviceType: "billing", port: 8081, host: "10.0.0.8", metadata: { zone: "us-1", tier: "web" } });
    const euOnly = await admin.getByType("billing", { selector: { zone: "eu-1" } });
    expect(euOnly.instances.map((i) => i.id)).toEqual([eu.id]);
    expect((await admin.getByType("billing", { selector: { zone: "eu-1", tier: "db" } })).instances).toEqual([]);
    expect((await admin.getByType("billing", { selector: { tier: "web" } })).instances).toHaveLength(2);

    const events = drain(admin.watch({ serviceType: "billing", selector: { zone: "eu-1" } }));
    const snapshot = await events.find((e) => e.type === "snapshot", "the snapshot");
    expect(snapshot.type === "snapshot" && snapshot.instances.map((i) => i.id)).toEqual([eu.id]);
    await admin.register({ serviceType: "billing", port: 8082, host: "10.0.0.9", metadata: { zone: "us-1" } });
    const eu2 = await admin.register({ serviceType: "billing", port: 8083, host: "10.0.0.10", metadata: { zone: "eu-1" } });
    const next = await events.find((e) => e.type === "instanceRegistered", "the eu-1 registration");
    expect(next).toMatchObject({ type: "instanceRegistered", instance: { id: eu2.id }, revision: eu2.instance.revision });

    const bad = await failure(admin.getByType("billing", { selector: { "not a key": "x" } }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toContain("selector");
    const badWatch = drain(admin.watch({ serviceType: "billing", selector: { "not a key": "x" } }));
    await badWatch.done;
    expect(badWatch.error).toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it("reports failures as RegistryClientError with the gRPC status and the server's message", async () => {
    const admin = client();
    const missing = await failure(admin.getInstance("no-such-id"));
    expect(missing).toMatchObject({ code: status.NOT_FOUND, codeName: "NOT_FOUND", method: "GetInstance", address: h.address });

    const invalid = await failure(admin.register({ serviceType: "Bad Type", port: 80, host: "10.0.0.1" }));
    expect(invalid.code).toBe(status.INVALID_ARGUMENT);
    expect(invalid.details).toMatch(/service_type/);

    const wrongKey = await failure(client({ auth: { key: "not-the-key-0123456789" } }).listServices());
    expect(wrongKey.code).toBe(status.UNAUTHENTICATED);
    expect(wrongKey.message).not.toContain("not-the-key");

    const a = await admin.register({ serviceType: "api", port: 1, host: "10.0.0.1" });
    const b = await admin.register({ serviceType: "api", port: 2, host: "10.0.0.2" });
    const denied = await failure(client({ auth: a.auth }).unregister(b.id));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    const noCredentials = await failure(client({ auth: undefined }).listServices());
    expect(noCredentials.code).toBe(status.UNAUTHENTICATED);
  });

  it("puts a deadline on every call: a registry that never answers fails in time with DEADLINE_EXCEEDED", async () => {
    const blackhole = await startBlackhole();
    try {
      const stuck = client({ addresses: [`127.0.0.1:${blackhole.port}`], deadlineMs: 300 });
      const started = Date.now();
      const err = await failure(stuck.listServices());
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(Date.now() - started).toBeLessThan(2000);
      // A per-call deadline overrides the client's.
      const started2 = Date.now();
      expect((await failure(stuck.getByType("x", { deadlineMs: 100 }))).code).toBe(status.DEADLINE_EXCEEDED);
      expect(Date.now() - started2).toBeLessThan(1000);
    } finally {
      await blackhole.close();
    }
  });

  it("fails over to the next address when one refuses connections or never answers, and sticks to the one that works", async () => {
    const blackhole = await startBlackhole();
    try {
      const refused = `127.0.0.1:${await freePort()}`;
      const c = client({ addresses: [refused, `127.0.0.1:${blackhole.port}`, h.address], connectTimeoutMs: 300 });
      const a = await c.register({ serviceType: "api", port: 1, host: "10.0.0.1" }); // Register too: nothing was sent to the dead ones
      expect((await c.getInstance(a.id)).id).toBe(a.id);
      const started = Date.now();
      await c.listServices();
      expect(Date.now() - started).toBeLessThan(250); // straight to the live one
    } finally {
      await blackhole.close();
    }
  });

  it("retries an unreachable registry until the deadline (a restart costs latency), or fails at once with failFast", async () => {
    const dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const patient = client({ addresses: dead, deadlineMs: 400 });
    let started = Date.now();
    const err = await failure(patient.listServices());
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/no registry address reachable/);
    // It retried for a while (how long depends on grpc-js's jittered reconnect backoff), where failFast gives up at once.
    expect(Date.now() - started).toBeGreaterThan(150);

    const impatient = client({ addresses: dead, failFast: true });
    started = Date.now();
    expect((await failure(impatient.listServices())).code).toBe(status.UNAVAILABLE);
    expect(Date.now() - started).toBeLessThan(200);
  });

  it("cancels a call when its signal aborts, and refuses calls once closed", async () => {
    const blackhole = await startBlackhole();
    try {
      const stuck = client({ addresses: [`127.0.0.1:${blackhole.port}`] });
      const controller = new AbortController();
      const pending = failure(stuck.listServices({ signal: controller.signal }));
      controller.abort();
      expect((await pending).code).toBe(status.CANCELLED);
    } finally {
      await blackhole.close();
    }
    const c = client();
    c.close();
    expect((await failure(c.listServices())).code).toBe(status.CANCELLED);
  });

  it("speaks TLS and mTLS with the given channel credentials", async () => {
    const pki = await makeTestPki();
    const tls = await startMtlsHarness(pki);
    try {
      const mtls = credentials.createSsl(Buffer.from(pki.ca.cert), Buffer.from(pki.client.key), Buffer.from(pki.client.cert));
      const c = client({ addresses: [tls.address], credentials: mtls });
      const a = await c.register({ serviceType: "api", port: 1, host: "10.0.0.1" });
      expect((await c.getInstance(a.id)).id).toBe(a.id);
      const plaintext = client({ addresses: [tls.address], deadlineMs: 500 });
      expect((await failure(plaintext.listServices())).code).toBe(status.UNAVAILABLE);
    } finally {
      await tls.close();
    }
  });

  it("spells health in lower case, as the core does, in every answer and watch event", async () => {
    // Probes fail for port 9999 only: that instance turns unhealthy.
    const probing = await startHarness({
      registry: { healthChecks: true, healthCheckInterval: 50, probe: async (t) => (t.port === 9999 ? { ok: false, reason: "HTTP 503" } : { ok: true, status: 200 }) },
    });
    const c = client({ addresses: [probing.address] });
    const watch = c.watch({ serviceType: "api" });
    const events = drain(watch);
    try {
      await events.find((e) => e.type === "snapshot", "the snapshot");
      const well = await c.register({ serviceType: "api", port: 8080, host: "10.0.0.1" });
      const sick = await c.register({ serviceType: "api", port: 9999, host: "10.0.0.2" });
      const failed = await events.find((e) => e.type === "healthCheckFailed", "the transition to unhealthy");
      expect(failed).toMatchObject({ instance: { id: sick.id, health: "unhealthy" } });
      expect(events.items.filter((e) => e.type === "instanceRegistered").map((e) => "instance" in e && e.instance.health)).toEqual(["healthy", "healthy"]);

      expect((await c.getByType("api", { includeUnhealthy: true })).instances.map((i) => [i.id, i.health])).toEqual([
        [well.id, "healthy"],
        [sick.id, "unhealthy"],
      ]);
      expect((await c.getInstance(sick.id)).health).toBe("unhealthy");
      expect((await c.unregister(sick.id)).instance.health).toBe("unhealthy");
    } finally {
      watch.close();
      await events.done;
      await probing.close();
    }
  });

  it("shares connections with clients made by withAuth, which close independently", async () => {
    const admin = client();
    const a = await admin.register({ serviceType: "api", port: 1, host: "10.0.0.1" });
    const asInstance = admin.withAuth(a.auth);
    asInstance.close();
    expect((await admin.listServices()).services).toHaveLength(1); // the shared channel is still open
  });
});

describe("Backoff", () => {
  it("grows exponentially up to the cap, draws jitter from the lower part of each step, and resets", () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 }); // no jitter taken
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    top.reset();
    expect(top.next()).toBe(100);

    const bottom = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => 0.999999 });
    expect([1, 2, 3].map(() => bottom.next())).toEqual([50, 100, 200]);

    const delays = Array.from({ length: 200 }, () => new Backoff({ initialMs: 1000 }).next());
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1000);
    expect(new Set(delays).size).toBeGreaterThan(20); // spread, not lockstep
  });
});
