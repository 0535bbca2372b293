import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, HealthStatus, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { HttpProber } from "../../src/health/http-probe.js";
import { PROBE_TARGET_DENIED, ProbeTargetPolicy } from "../../src/health/probe-target-policy.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { call, callError, keyAuth, startHarness, WatchCursor, type Harness } from "../support/registry-harness.js";
import { parseExposition } from "../support/prometheus-text.js";
import { startStack } from "../support/stack.js";
import { closedPort } from "./helpers.js";

/**
 * Issue #23 point 4: the prober cannot be aimed at link-local (cloud
 * metadata), unspecified or multicast addresses, names are judged by what
 * they resolve to at each probe, and failure reasons streamed to watchers
 * carry no response bytes.
 */

const DENIED_LITERALS = [
  "169.254.169.254",
  "::ffff:169.254.169.254",
  "0:0:0:0:0:ffff:a9fe:a9fe",
  "0.0.0.0",
  "::",
  "fe80::1",
  "224.0.0.1",
  "255.255.255.255",
  "240.0.0.1",
  "ff02::1",
  "fd00:ec2::254",
  // IPv6 spellings that a translator or an old stack turns into a denied IPv4 address.
  "::169.254.169.254",
  "::a9fe:a9fe",
  "::ffff:0:a9fe:a9fe",
  "64:ff9b::a9fe:a9fe",
  "2002:a9fe:a9fe::1",
];

describe("probe-target policy at Register (real gRPC)", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it.each(DENIED_LITERALS)("refuses host %s by default with INVALID_ARGUMENT naming it, and stores nothing", async (host) => {
    h = await startHarness();
    const err = await callError(h.client, h.client.register, { serviceType: "api", port: 80, host, metadata: {} }, keyAuth());
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain("host");
    expect(err.details).toContain(host);
    expect(err.details).toMatch(/probe-target policy/);
    expect(h.registry.size).toBe(0);
    expect(h.registry.revision).toBe(0);
  });

  it("accepts loopback, private addresses and names (metadata host names included: they are judged when resolved)", async () => {
    h = await startHarness();
    for (const host of ["127.0.0.1", "::1", "10.1.2.3", "fd00::7", "64:ff9b::a01:203", "2002:a01:203::1", "localhost", "metadata.google.internal"]) {
      const res = await call(h.client, h.client.register, { serviceType: "api", port: 80, host, metadata: {} });
      expect(res.instance?.host).toBe(host);
    }
  });

  it("follows the configured lists: deny wins over allow, and a non-empty allow list limits", async () => {
    const policy = new ProbeTargetPolicy({ allow: "10.0.0.0/8,127.0.0.0/8", deny: "127.0.0.0/8" });
    h = await startHarness({ registry: { probeTargetPolicy: policy } });
    const register = (host: string) => call(h!.client, h!.client.register, { serviceType: "api", port: 80, host, metadata: {} });
    await expect(register("10.9.9.9")).resolves.toBeDefined();
    await expect(register("::ffff:10.9.9.9")).resolves.toBeDefined();
    await expect(register("127.0.0.1")).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("127.0.0.1") });
    await expect(register("192.0.2.1")).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("192.0.2.1") });
    await expect(register("localhost")).resolves.toBeDefined(); // a name: judged at probe time
  });
});

describe("probe-target policy at probe time", () => {
  let h: Harness | undefined;
  let health: HealthServer | undefined;
  afterEach(async () => {
    await h?.close();
    await health?.close();
    h = undefined;
    health = undefined;
  });

  it("a name that resolves only to denied addresses turns UNHEALTHY with the policy's reason, and is never contacted", async () => {
    health = await startHealthServer();
    // Loopback denied: "localhost" resolves to 127.0.0.1 and/or ::1, both denied.
    const policy = new ProbeTargetPolicy({ deny: "127.0.0.0/8,::1" });
    h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 100, healthCheckTTL: 1000, probeTargetPolicy: policy } });
    const watch = WatchCursor.open(h.client, { serviceType: "api" });
    expect((await watch.next()).type).toBe(EventType.EVENT_TYPE_SYNCED);

    const res = await call(h.client, h.client.register, { serviceType: "api", port: health.port, host: "localhost", metadata: {} });
    expect((await watch.next()).type).toBe(EventType.EVENT_TYPE_INSTANCE_REGISTERED);
    const failed = await watch.next(5000);
    expect(failed).toMatchObject({
      type: EventType.EVENT_TYPE_HEALTH_CHECK_FAILED,
      failureReason: PROBE_TARGET_DENIED,
      instance: { id: res.serviceId, health: HealthStatus.HEALTH_STATUS_UNHEALTHY },
    });
    expect(health.requests).toHaveLength(0);
    watch.cancel();
  });

  it("a name resolving to an allowed address is probed there, with the name in the Host header", async () => {
    health = await startHealthServer();
    h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 100, healthCheckTTL: 1000 } });
    const watch = WatchCursor.open(h.client, { serviceType: "api", everyHealthCheck: true });
    expect((await watch.next()).type).toBe(EventType.EVENT_TYPE_SYNCED);
    await call(h.client, h.client.register, { serviceType: "api", port: health.port, host: "localhost", metadata: {} });
    const request = await health.nextRequest(5000);
    expect(request.headers.host).toBe(`localhost:${health.port}`);
    watch.cancel();
  });
});

/** An HTTP server on 127.0.0.1 that records each request and answers `status` with `body`. */
async function startRecorder(statusCode: number, body: string) {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    res.writeHead(statusCode, { "content-type": "text/plain" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("HttpProber: resolution and reasons", () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });
  const target = (host: string, port: number) => ({ id: "t", host, port, path: "/health" });

  it("connects to exactly the address it checked: no second lookup for the connection to rebind", async () => {
    const server = await startRecorder(200, "{}");
    closers.push(server.close);
    const lookups: string[] = [];
    // A name the system cannot resolve: were the connection to look it up
    // again (rather than use the address just checked), the probe would fail.
    const prober = new HttpProber({
      timeoutMs: 2000,
      resolve: async (name) => {
        lookups.push(name);
        return ["127.0.0.1"];
      },
    });
    closers.push(() => prober.close());
    expect(await prober.probe(target("rebind.invalid", server.port))).toMatchObject({ ok: true, status: 200 });
    expect(lookups).toEqual(["rebind.invalid"]);
    expect(server.requests[0]?.headers.host).toBe(`rebind.invalid:${server.port}`);
  });

  it("resolves at every probe: a name that turns to a denied address is refused at the next probe, even with a live connection", async () => {
    const server = await startRecorder(200, "{}");
    closers.push(server.close);
    const answers = [["127.0.0.1"], ["169.254.169.254"], ["::ffff:169.254.169.254", "0.0.0.0"]];
    const prober = new HttpProber({ timeoutMs: 2000, resolve: async () => answers.shift() ?? [] });
    closers.push(() => prober.close());
    expect(await prober.probe(target("flip.invalid", server.port))).toMatchObject({ ok: true });
    expect(await prober.probe(target("flip.invalid", server.port))).toEqual({ ok: false, reason: PROBE_TARGET_DENIED });
    expect(await prober.probe(target("flip.invalid", server.port))).toEqual({ ok: false, reason: PROBE_TARGET_DENIED });
    expect(server.requests).toHaveLength(1);
  });

  it("skips a name's denied addresses and tries the allowed ones in order", async () => {
    const server = await startRecorder(200, "{}");
    closers.push(server.close);
    const refused = await closedPort();
    // ::1 answers nothing on the server's port (it listens on 127.0.0.1 only): refused, next address.
    const prober = new HttpProber({ timeoutMs: 2000, resolve: async () => ["169.254.169.254", "::1", "127.0.0.1"] });
    closers.push(() => prober.close());
    expect(await prober.probe(target("mixed.invalid", server.port))).toMatchObject({ ok: true });
    expect(await prober.probe(target("mixed.invalid", refused))).toEqual({ ok: false, reason: "connection refused (ECONNREFUSED)" });
  });

  it("a denied literal is refused without a connection (instances stored before the policy)", async () => {
    const prober = new HttpProber({ timeoutMs: 2000, targetPolicy: new ProbeTargetPolicy({ deny: "127.0.0.0/8" }) });
    closers.push(() => prober.close());
    const server = await startRecorder(200, "{}");
    closers.push(server.close);
    expect(await prober.probe(target("127.0.0.1", server.port))).toEqual({ ok: false, reason: PROBE_TARGET_DENIED });
    expect(await prober.probe(target("[::ffff:127.0.0.1]", server.port))).toEqual({ ok: false, reason: PROBE_TARGET_DENIED });
    expect(server.requests).toHaveLength(0);
  });

  it("the unspecified address counts as loopback: a deny list naming loopback without 0.0.0.0 still refuses it", async () => {
    // Linux connects 0.0.0.0 to this host, and :: to ::1: an operator who replaced the
    // default list (which denies both) with loopback alone must not be bypassed through them.
    const policy = new ProbeTargetPolicy({ deny: "127.0.0.0/8,::1/128" });
    for (const a of ["0.0.0.0", "::", "[::]", "::ffff:0.0.0.0", "::0.0.0.0"]) expect(policy.allows(a), a).toBe(false);
    expect(new ProbeTargetPolicy({ deny: "none" }).allows("0.0.0.0")).toBe(true);
    const prober = new HttpProber({ timeoutMs: 2000, targetPolicy: policy });
    closers.push(() => prober.close());
    const server = await startRecorder(200, "{}");
    closers.push(server.close);
    expect(await prober.probe(target("0.0.0.0", server.port))).toEqual({ ok: false, reason: PROBE_TARGET_DENIED });
    expect(server.requests).toHaveLength(0);
  });

  it("failure reasons say what failed in fixed words: no response body, no resolved address", async () => {
    const secret = "internal-admin-panel: token=abc123";
    const server = await startRecorder(401, secret);
    closers.push(server.close);
    const prober = new HttpProber({ timeoutMs: 2000, resolve: async () => ["127.0.0.1"] });
    closers.push(() => prober.close());
    expect(await prober.probe(target("name.invalid", server.port))).toEqual({ ok: false, reason: "HTTP 401" });
    const refused = await prober.probe(target("name.invalid", await closedPort()));
    expect(refused).toEqual({ ok: false, reason: "connection refused (ECONNREFUSED)" });
    const unknown = new HttpProber({ timeoutMs: 2000, resolve: () => Promise.reject(Object.assign(new Error("getaddrinfo ENOTFOUND x 10.0.0.1"), { code: "ENOTFOUND" })) });
    closers.push(() => unknown.close());
    expect(await unknown.probe(target("x.invalid", 80))).toEqual({ ok: false, reason: "host name not found (ENOTFOUND)" });
  });

  it("a lookup that hangs is bounded by the probe's deadline", async () => {
    const prober = new HttpProber({ timeoutMs: 200, resolve: () => new Promise<string[]>(() => {}) });
    closers.push(() => prober.close());
    expect(await prober.probe(target("slow.invalid", 80))).toEqual({ ok: false, reason: "timed out after 200 ms" });
  });
});

describe("the server as serve wires it", () => {
  it("reads PROBE_DENY_CIDRS: refuses a denied literal, fails a denied name's probes, counts them as outcome=denied", async () => {
    const health = await startHealthServer();
    const server = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", PROBE_DENY_CIDRS: "127.0.0.0/8,::1" });
    const client = new RegistryServiceClient(server.address, credentials.createInsecure());
    try {
      const literal = await callError(client, client.register, { serviceType: "api", port: health.port, host: "127.0.0.1", metadata: {} }, keyAuth());
      expect(literal.code).toBe(status.INVALID_ARGUMENT);
      expect(literal.details).toMatch(/host: 127\.0\.0\.1 is denied/);

      const failed = new Promise<string>((resolve) => server.registry.once("healthCheckFailed", (_i, reason) => resolve(reason)));
      await call(client, client.register, { serviceType: "api", port: health.port, host: "localhost", metadata: {} });
      expect(await failed).toBe(PROBE_TARGET_DENIED);
      const metrics = parseExposition(await (await fetch(`${server.httpUrl}/metrics`)).text());
      expect(metrics.value("registry_health_probes_total", { outcome: "denied" })).toBeGreaterThanOrEqual(1);
      expect(health.requests).toHaveLength(0);
    } finally {
      client.close();
      await server.close();
      await health.close();
    }
  });
});

describe("ProbeTargetPolicy and its settings", () => {
  it("denies link-local, unspecified, multicast and reserved (broadcast) by default, in every spelling; allows loopback and private ranges", () => {
    const policy = new ProbeTargetPolicy();
    for (const a of [...DENIED_LITERALS, "[fe80::1]", "0.1.2.3", "169.254.0.1", "::ffff:0.0.0.0", "239.255.255.250"]) {
      expect(policy.allows(a), a).toBe(false);
    }
    for (const a of ["127.0.0.1", "::1", "[::1]", "10.0.0.1", "192.168.1.1", "fd00::1", "::ffff:127.0.0.1", "2001:db8::1"]) {
      expect(policy.allows(a), a).toBe(true);
    }
    expect(policy.allows("localhost")).toBe(false); // the policy judges addresses; names are resolved first
  });

  it("PROBE_DENY_CIDRS=none denies nothing", () => {
    expect(new ProbeTargetPolicy({ deny: "none" }).allows("169.254.169.254")).toBe(true);
  });

  it("a bad CIDR stops start-up with one line naming the setting", () => {
    expect(() => loadConfig({ env: { PROBE_DENY_CIDRS: "169.254.0.0/16,10.0.0.0/33" }, cwd: "/nonexistent" })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { PROBE_DENY_CIDRS: "10.0.0.0/33" }, cwd: "/nonexistent" })).toThrow(/^PROBE_DENY_CIDRS \(--probe-deny-cidrs\) .*10\.0\.0\.0\/33/);
    expect(() => loadConfig({ argv: ["--probe-allow-cidrs", "example.com"], cwd: "/nonexistent" })).toThrow(/^PROBE_ALLOW_CIDRS .*example\.com/);
    expect(loadConfig({ env: { PROBE_ALLOW_CIDRS: " 10.0.0.0/8, fd00::/8 " }, cwd: "/nonexistent" }).probeAllowCidrs).toBe("10.0.0.0/8, fd00::/8");
  });
});
