import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { registerSelf, type RegisterSelfOptions, type SelfRegistration } from "../../src/client/register-self.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { ServiceRegistryOptions } from "../../src/registry/registry-options.js";
import type { RegistryGrpcServerOptions } from "../../src/server/grpc-server.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { startSessionlessRegistry } from "../support/sessionless-registry.js";
import { drain, Log } from "./helpers.js";

/**
 * registerSelf reporting its own liveness: the default session, held by a
 * process that dies; reopened after its connection is cut; handed over to a
 * new connection when the registry's GOAWAY retires the old one; ttl
 * heartbeats when the registry holds no sessions, or when asked for.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;
const FAST = { initialMs: 20, maxMs: 200 };

describe("registerSelf liveness", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function harness(registry: ServiceRegistryOptions = {}, server: Partial<RegistryGrpcServerOptions> = {}): Promise<Harness> {
    const h = await startHarness({ registry, server });
    cleanups.push(() => h.close());
    return h;
  }

  function admin(address: string): RegistryClient {
    const client = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY }, backoff: FAST });
    cleanups.push(() => client.close());
    return client;
  }

  function watch(address: string): ReturnType<typeof drain> {
    const stream = admin(address).watch({ serviceType: "svc" });
    cleanups.push(() => stream.close());
    return drain(stream);
  }

  async function self(address: string, extra: Partial<RegisterSelfOptions> = {}): Promise<SelfRegistration> {
    const r = await registerSelf({
      connection: { addresses: [address] },
      key: TEST_KEY,
      serviceType: "svc",
      host: "127.0.0.1",
      port: 1,
      checkIntervalMs: 60_000, // the liveness report, not the periodic check, must notice
      backoff: FAST,
      ...extra,
    });
    cleanups.push(() => r.close());
    return r;
  }

  const failuresOf = (log: ReturnType<typeof drain>, id: string) => log.items.filter((e) => e.type === "healthCheckFailed" && e.instance.id === id);

  it("holds a session by default: the instance is SESSION-checked, and a SIGKILLed holder is reported failing at once", async () => {
    // A minute between probes: only the session's end can explain a failure within the test.
    const h = await harness({ healthChecks: true, healthCheckInterval: 60_000, deregisterAfter: 0 });
    const events = watch(h.address);
    await events.find((e) => e.type === "snapshot", "the snapshot");
    const child = spawn(process.execPath, ["--import", TSX, join(ROOT, "test/support/self-registrant.ts"), h.address, TEST_KEY], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    let output = "";
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const id = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        output += d.toString();
        const m = /registered (\S+)/.exec(output);
        if (m) resolve(m[1] as string);
      });
      child.once("exit", (code) => reject(new Error(`the registrant exited (${code}) before registering:\n${output}`)));
    });
    const instance = await admin(h.address).getInstance(id);
    expect(instance.healthCheck?.kind).toBe("session");
    expect(instance.health).toBe("healthy");

    const killedAt = Date.now();
    child.kill("SIGKILL");
    const failed = await events.find((e) => e.type === "healthCheckFailed" && e.instance.id === id, "the session's loss", 3000);
    expect(Date.now() - killedAt).toBeLessThan(3000);
    expect(failed).toMatchObject({ failureReason: expect.stringMatching(/^session lost/) });
  });

  it("reopens its session when the connection is cut, keeping its registration; close() unregisters before ending it", async () => {
    const h = await harness();
    const proxy = await startFaultProxy("127.0.0.1", h.port);
    cleanups.push(() => proxy.close());
    const events = watch(h.address);
    await events.find((e) => e.type === "snapshot", "the snapshot");
    const opened = new Log<number>();
    const r = await self(`127.0.0.1:${proxy.port}`);
    r.on("sessionOpened", (revision) => opened.push(revision));
    const id = r.id;

    proxy.reset();
    const lost = await events.find((e) => e.type === "healthCheckFailed" && e.instance.id === id, "the cut session reported");
    expect(lost).toMatchObject({ failureReason: expect.stringMatching(/^session lost/) });
    await opened.find(() => true, "a new session");
    const back = await events.find((e) => e.type === "healthCheckPassed" && e.instance.id === id, "the instance healthy again");
    expect(back.revision).toBeGreaterThan(lost.revision);
    expect(r.id).toBe(id); // the same registration, not a new one

    const failuresBefore = failuresOf(events, id).length;
    await r.close();
    const removed = await events.find((e) => e.type === "instanceRemoved" && e.instance.id === id, "the unregistration");
    expect(removed).toMatchObject({ reason: "unregistered" });
    expect(failuresOf(events, id)).toHaveLength(failuresBefore); // the session ended after, not before
  });

  it("hands its session over to a new connection when the registry retires the old one (GOAWAY), with no failure in between", async () => {
    // Connections retired every half second, each cut a short grace later: a session that waited
    // for its stream to be cut would leave the instance UNHEALTHY until it reopened.
    const h = await harness({}, { serverOptions: { "grpc.max_connection_age_ms": 500, "grpc.max_connection_age_grace_ms": 300 } });
    const events = watch(h.address);
    await events.find((e) => e.type === "snapshot", "the snapshot");
    const opened = new Log<number>();
    const r = await self(h.address);
    r.on("sessionOpened", (revision) => opened.push(revision));
    await opened.until((items) => items.length >= 3, "three handovers", 10_000);
    expect(failuresOf(events, r.id)).toEqual([]);
    expect((await admin(h.address).getInstance(r.id)).health).toBe("healthy");
  });

  it("falls back to ttl heartbeats when the registry holds no sessions (KeepAlive UNIMPLEMENTED)", async () => {
    const h = await harness();
    const front = await startSessionlessRegistry(h.client);
    cleanups.push(() => front.close());
    const events = watch(h.address);
    await events.find((e) => e.type === "snapshot", "the snapshot");
    const heartbeats = new Log<string>();
    front.onCall = (method) => {
      if (method === "heartbeat") heartbeats.push(method);
    };
    const r = await self(front.address, { fallbackTtlMs: 300 });
    // registerSelf resolved after its first report: the fallback has happened by then.
    const instance = await admin(h.address).getInstance(r.id);
    expect(instance.healthCheck?.kind).toBe("ttl");
    const sessionOne = events.items.find((e) => e.type === "instanceRegistered" && e.instance.healthCheck?.kind === "session");
    expect(sessionOne).toBeDefined();
    const { instances } = await admin(h.address).getByType("svc", { includeUnhealthy: true, includeDraining: true });
    expect(instances.map((i) => i.id)).toEqual([r.id]); // the session registration is gone

    // Heartbeats at a third of the ttl keep it healthy over several ttls.
    await heartbeats.until((items) => items.length >= 10, "ten heartbeats", 5000);
    expect(failuresOf(events, r.id)).toEqual([]);
    expect((await admin(h.address).getInstance(r.id)).health).toBe("healthy");
  });

  it("takes an explicit kind: ttl heartbeats, or an HTTP probe with nothing reported", async () => {
    const h = await harness();
    const beats = new Log<string>();
    h.registry.on("healthCheckPassed", (instance) => beats.push(instance.id));
    const ttl = await self(h.address, { healthCheck: { kind: "ttl", ttlMs: 300 } });
    expect((await admin(h.address).getInstance(ttl.id)).healthCheck).toMatchObject({ kind: "ttl" });
    await beats.until((ids) => ids.filter((id) => id === ttl.id).length >= 5, "five heartbeats", 5000);

    const opened = new Log<number>();
    const http = await self(h.address, { port: 2, healthCheck: { kind: "http" } });
    http.on("sessionOpened", (revision) => opened.push(revision));
    const instance = await admin(h.address).getInstance(http.id);
    expect(instance.healthCheck).toBeUndefined(); // the default check: HTTP
    expect(instance.healthCheckPath).toBe("/health");
    expect(opened.items).toEqual([]);
  });
});
