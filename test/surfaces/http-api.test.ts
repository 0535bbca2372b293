import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { once } from "node:events";
import { connect, createServer as createNetServer, type AddressInfo } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { RegistryApi } from "../../src/api/registry-api.js";
import { toHttpError } from "../../src/http/http-errors.js";
import { RegistryHttpServer } from "../../src/http/http-server.js";
import { jsonApiRoutes } from "../../src/http/json-api.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { RegistryError, type RegistryErrorCode } from "../../src/registry/registry-error.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { startHealthServer } from "../support/health-server.js";
import { aborted, HeldStore, SignalRecordingRegistry, within } from "../support/held-writes.js";
import { callError, instanceAuth, keyAuth, TEST_KEY, WatchCursor } from "../support/registry-harness.js";
import { parseExposition } from "../support/prometheus-text.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

const KEY = { authorization: `Bearer ${TEST_KEY}` };
const JSON_BODY = { "content-type": "application/json" };

/** A loopback port nobody listens on: probes of an instance there fail at once. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe("the seed's HTTP/JSON API on HTTP_PORT, with plain fetch", () => {
  let server: Awaited<ReturnType<typeof startStack>>;
  let grpc: RegistryServiceClient;
  beforeAll(async () => {
    server = await startStack();
    grpc = new RegistryServiceClient(server.address, credentials.createInsecure());
  });
  afterAll(async () => {
    grpc.close();
    await server.close();
  });

  const http = (path: string, init: RequestInit = {}) => fetch(`${server.httpUrl}${path}`, init);
  const register = (body: unknown, headers: Record<string, string> = KEY) =>
    http("/service", { method: "POST", headers: { ...JSON_BODY, ...headers }, body: JSON.stringify(body) });
  const asInstance = (id: string, token: string) => ({ "x-service-id": id, "x-service-token": token });

  it("answers a request target that is not a valid URL with 400 and stays up", async () => {
    const { connect } = await import("node:net");
    const url = new URL(server.httpUrl);
    for (const target of ["//", "//[", "//:99999"]) {
      const statusLine = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.write(`GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`));
        let data = "";
        socket.on("data", (d) => (data += d.toString()));
        socket.on("end", () => resolve(data.split("\r\n")[0] ?? ""));
        socket.on("error", reject);
      });
      expect(statusLine).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect((await http("/healthz")).status).toBe(200);
  });

  it("registers a TTL instance and takes its heartbeats on PUT /service/:id/heartbeat (the instance itself only)", async () => {
    const res = await register({ serviceType: "beats", port: 8081, host: "10.0.0.8", healthCheck: { kind: "TTL", ttlMs: 60_000 } });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { serviceId: string; token: string; instance: { healthCheckKind: string } };
    expect(created.instance.healthCheckKind).toBe("TTL");
    const me = asInstance(created.serviceId, created.token);
    const beat = await http(`/service/${created.serviceId}/heartbeat`, { method: "PUT", headers: me });
    expect(beat.status).toBe(200);
    expect((await beat.json()) as unknown).toEqual({ revision: expect.any(Number) });
    const wrong = await http(`/service/${created.serviceId}/heartbeat`, { method: "PUT", headers: asInstance(created.serviceId, "wrong") });
    expect(wrong.status).toBe(401);
    const byKey = await http(`/service/${created.serviceId}/heartbeat`, { method: "PUT", headers: KEY });
    expect(byKey.status).toBe(403);

    const http1 = (await (await register({ serviceType: "beats", port: 8082, host: "10.0.0.8" })).json()) as { serviceId: string; token: string };
    const other = await http(`/service/${http1.serviceId}/heartbeat`, { method: "PUT", headers: asInstance(http1.serviceId, http1.token) });
    expect(other.status).toBe(409);
    expect(((await other.json()) as { error: { code: string; message: string } }).error).toEqual({
      code: "FAILED_PRECONDITION",
      message: expect.stringMatching(/HTTP health check: Heartbeat is for TTL checks/),
    });
    const bad = await register({ serviceType: "beats", port: 8083, host: "10.0.0.8", healthCheck: { kind: "TTL" } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/^healthCheck\.ttlMs: /);
    const unknownKind = await register({ serviceType: "beats", port: 8084, host: "10.0.0.8", healthCheck: { kind: "PING" } });
    expect(unknownKind.status).toBe(400);
    expect(((await unknownKind.json()) as { error: { message: string } }).error.message).toMatch(/^healthCheck\.kind: /);
  });

  it("follows the seed's flow: register with the key, read with instance credentials, unregister itself", async () => {
    const res = await register({ serviceType: "billing", port: 8080, host: "10.0.0.7", metadata: { zone: "eu-1" } });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const created = (await res.json()) as { serviceId: string; token: string; instance: Record<string, unknown> };
    expect(created.serviceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Buffer.from(created.token, "base64url")).toHaveLength(32);
    expect(created.instance).toEqual({
      id: created.serviceId,
      serviceType: "billing",
      host: "10.0.0.7",
      port: 8080,
      metadata: { zone: "eu-1" },
      health: "HEALTHY",
      healthCheckPath: "/health",
      healthCheckKind: "HTTP",
      registeredAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      revision: expect.any(Number),
      draining: false,
    });
    const me = asInstance(created.serviceId, created.token);

    const byType = await http("/services/billing", { headers: me });
    expect(byType.status).toBe(200);
    const list = (await byType.json()) as { instances: { id: string }[]; revision: number };
    expect(list.instances.map((i) => i.id)).toEqual([created.serviceId]);
    expect(list.revision).toBeGreaterThanOrEqual(created.instance.revision as number);

    const one = await http(`/service/${created.serviceId}`, { headers: KEY });
    expect(((await one.json()) as { instance: { port: number } }).instance.port).toBe(8080);

    const services = (await (await http("/services", { headers: me })).json()) as { services: unknown[] };
    expect(services.services).toContainEqual({ serviceType: "billing", healthyCount: 1, totalCount: 1, drainingCount: 0, panic: false });

    const removed = await http(`/service/${created.serviceId}`, { method: "DELETE", headers: me });
    expect(removed.status).toBe(200);
    expect(((await removed.json()) as { instance: { id: string } }).instance.id).toBe(created.serviceId);

    const gone = await http(`/service/${created.serviceId}`, { headers: KEY });
    expect(gone.status).toBe(404);
    expect(await gone.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.stringContaining("not found") } });
    const staleToken = await http("/services/billing", { headers: me });
    expect(staleToken.status).toBe(401);
  });

  it("defaults host to the caller's address and takes healthCheck as {path} or a path", async () => {
    const a = (await (await register({ serviceType: "api", port: 9001, healthCheck: { path: "/ready" } })).json()) as {
      instance: { host: string; healthCheckPath: string };
    };
    expect(a.instance).toMatchObject({ host: "127.0.0.1", healthCheckPath: "/ready" });
    const b = (await (await register({ serviceType: "api", port: 9002, healthCheck: "/live" })).json()) as {
      instance: { healthCheckPath: string };
    };
    expect(b.instance.healthCheckPath).toBe("/live");
    const c = await http("/services/api?includeUnhealthy=true", { headers: KEY });
    expect(((await c.json()) as { instances: unknown[] }).instances).toHaveLength(2);
  });

  it("keeps a metadata key named __proto__ as a plain entry, not as a prototype", async () => {
    const body = '{"serviceType":"api","port":9003,"host":"10.0.0.9","metadata":{"__proto__":"x","zone":"a"}}';
    const res = await http("/service", { method: "POST", headers: { ...JSON_BODY, ...KEY }, body });
    expect(res.status).toBe(201);
    const { instance } = JSON.parse(await res.text()) as { instance: { metadata: Record<string, string> } };
    expect(Object.getPrototypeOf(instance.metadata)).toBe(Object.prototype);
    expect(Object.entries(instance.metadata)).toEqual([["__proto__", "x"], ["zone", "a"]]);
  });

  it("is the same core: a registration over HTTP reaches gRPC watchers", async () => {
    const watch = WatchCursor.open(grpc, { serviceType: "watched" });
    try {
      expect((await watch.next()).type).toBe(EventType.EVENT_TYPE_SYNCED);
      const res = (await (await register({ serviceType: "watched", port: 7000, host: "10.0.0.9" })).json()) as { serviceId: string };
      const event = await watch.next();
      expect(event.type).toBe(EventType.EVENT_TYPE_INSTANCE_REGISTERED);
      expect(event.instance?.id).toBe(res.serviceId);
    } finally {
      watch.cancel();
    }
  });

  it.each([
    ["no credentials", {}, 401, "UNAUTHENTICATED"],
    ["a wrong key", { authorization: "Bearer not-the-key-0123456789" }, 401, "UNAUTHENTICATED"],
    ["a malformed authorization header", { authorization: "Basic abc" }, 401, "UNAUTHENTICATED"],
    ["half of the instance credentials", { "x-service-id": "x" }, 401, "UNAUTHENTICATED"],
  ])("refuses %s with %i", async (_name, headers, httpStatus, code) => {
    const res = await http("/services/api", { headers });
    expect(res.status).toBe(httpStatus);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it("answers 403 to valid credentials that may not do this, like gRPC's PERMISSION_DENIED", async () => {
    const a = (await (await register({ serviceType: "perm", port: 1, host: "10.0.0.1" })).json()) as { serviceId: string; token: string };
    const b = (await (await register({ serviceType: "perm", port: 2, host: "10.0.0.2" })).json()) as { serviceId: string };
    const asA = asInstance(a.serviceId, a.token);
    const other = await http(`/service/${b.serviceId}`, { method: "DELETE", headers: asA });
    expect(other.status).toBe(403);
    expect(await other.json()).toEqual({ error: { code: "PERMISSION_DENIED", message: "an instance may unregister only itself" } });
    const registerAsInstance = await register({ serviceType: "perm", port: 3, host: "10.0.0.3" }, asA);
    expect(registerAsInstance.status).toBe(403);
  });

  it.each([
    ["an invalid serviceType", { serviceType: "Bad Type", port: 80 }, /^serviceType: /],
    ["a missing serviceType", { port: 80 }, /^serviceType: required$/],
    ["a serviceType that is not a string", { serviceType: 7, port: 80 }, /^serviceType: must be a string/],
    ["a missing port", { serviceType: "api" }, /^port: required$/],
    ["port out of range", { serviceType: "api", port: 0 }, /^port: /],
    ["port as a fraction in a string", { serviceType: "api", port: "3000.5" }, /^port: must be an integer 1-65535, as a number or a decimal string/],
    ["port as an empty string", { serviceType: "api", port: "" }, /^port: must be an integer/],
    ["port as a word", { serviceType: "api", port: "abc" }, /^port: must be an integer/],
    ["port as a string with a space", { serviceType: "api", port: " 3000" }, /^port: must be an integer/],
    ["port as a signed string", { serviceType: "api", port: "+3000" }, /^port: must be an integer/],
    // 2^32 + 80: the seed's own check, and uint32 wire truncation, would take it as 80.
    ["port 2^32+80 as a number", { serviceType: "api", port: 2 ** 32 + 80, host: "10.0.0.80" }, /^port: must be between 1 and 65535$/],
    ["port 2^32+80 as a decimal string", { serviceType: "api", port: String(2 ** 32 + 80), host: "10.0.0.80" }, /^port: must be between 1 and 65535$/],
    ["port 2^64+80 as a number", { serviceType: "api", port: 2 ** 64 + 80, host: "10.0.0.80" }, /^port: must be between 1 and 65535$/],
    // In range, but no port: the message must not say "between 1 and 65535" of a number that is.
    ["port as a fraction", { serviceType: "api", port: 3000.5 }, /^port: must be an integer between 1 and 65535$/],
    ["the proto's snake_case service_type", { service_type: "api", port: 80 }, /^service_type: unknown field; the HTTP\/JSON API spells it serviceType$/],
    ["the proto's snake_case health_check", { serviceType: "api", port: 80, health_check: { path: "/h" } }, /^health_check: .* healthCheck$/],
    // Inside healthCheck too: ignored, they would register a check other than the one asked for.
    ["the proto's snake_case healthCheck.grpc_service", { serviceType: "api", port: 80, healthCheck: { kind: "GRPC", grpc_service: "billing" } }, /^healthCheck\.grpc_service: unknown field; the HTTP\/JSON API spells it healthCheck\.grpcService$/],
    ["the proto's snake_case healthCheck.ttl_ms", { serviceType: "api", port: 80, healthCheck: { kind: "TTL", ttl_ms: 1000 } }, /^healthCheck\.ttl_ms: .* healthCheck\.ttlMs$/],
    ["the proto's snake_case healthCheck.timeout_ms", { serviceType: "api", port: 80, healthCheck: { kind: "TCP", timeout_ms: 500 } }, /^healthCheck\.timeout_ms: .* healthCheck\.timeoutMs$/],
    ["an unknown check kind, named as sent", { serviceType: "api", port: 80, healthCheck: { kind: "FOO" } }, /^healthCheck\.kind: must be one of HTTP, GRPC, TCP, TTL, SESSION, got FOO$/],
    ["a bad host", { serviceType: "api", port: 80, host: "not a host" }, /^host: /],
    ["metadata that is not an object", { serviceType: "api", port: 80, metadata: ["a"] }, /^metadata: /],
    ["a metadata value that is not a string", { serviceType: "api", port: 80, metadata: { a: 1 } }, /^metadata\.a: must be a string/],
    ["a relative health check path", { serviceType: "api", port: 80, healthCheck: { path: "ready" } }, /^healthCheck\.path: must start with \//],
    ["a body that is not an object", [1, 2], /^body: /],
  ])("answers 400 INVALID_ARGUMENT naming the field for %s", async (_name, body, message) => {
    const res = await register(body);
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toMatch(message);
  });

  it("takes the seed's port as a decimal string and answers exactly as for the number", async () => {
    // The seed's own body: {"serviceType": "product-service", "port": "3000"}.
    const res = await register({ serviceType: "product-service", port: "3000", host: "10.0.0.9" });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { instance: { port: number; serviceType: string } };
    expect(created.instance).toMatchObject({ serviceType: "product-service", port: 3000 });
    for (const [asString, asNumber] of [["0", 0], ["70000", 70000]] as const) {
      const [a, b] = await Promise.all([
        register({ serviceType: "api", port: asString, host: "10.0.0.9" }),
        register({ serviceType: "api", port: asNumber, host: "10.0.0.9" }),
      ]);
      expect(a.status).toBe(400);
      expect(await a.json()).toEqual(await b.json());
    }
  });

  it("accepts the proto's include_unhealthy beside includeUnhealthy, and refuses a value it cannot read", async () => {
    // A probing stack and an instance on a port nobody listens on: it turns UNHEALTHY.
    const probing = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", HEALTH_CHECK_TTL_MS: "500" });
    try {
      const failed = new Promise<void>((resolve) => probing.registry.on("change", (c) => c.kind === "health" && c.instance.health === "unhealthy" && resolve()));
      const res = await fetch(`${probing.httpUrl}/service`, {
        method: "POST",
        headers: { ...JSON_BODY, ...KEY },
        body: JSON.stringify({ serviceType: "flag-check", port: await closedPort(), host: "127.0.0.1" }),
      });
      const { serviceId } = (await res.json()) as { serviceId: string };
      await failed;
      const ids = async (query: string) =>
        ((await (await fetch(`${probing.httpUrl}/services/flag-check${query}`, { headers: KEY })).json()) as { instances: { id: string }[] }).instances.map((i) => i.id);
      expect(await ids("")).toEqual([]);
      expect(await ids("?includeUnhealthy=true")).toEqual([serviceId]);
      expect(await ids("?include_unhealthy=true")).toEqual([serviceId]);
      const bad = await fetch(`${probing.httpUrl}/services/flag-check?include_unhealthy=yes`, { headers: KEY });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toBe("include_unhealthy: must be true or false");
    } finally {
      await probing.close();
    }
  });

  it("GET /services/:type?selector= answers only matching instances; a bad selector is 400 naming selector", async () => {
    const ids: Record<string, string> = {};
    for (const [name, port, metadata] of [
      ["eu", 7001, { zone: "eu-1", tier: "web" }],
      ["euDb", 7002, { zone: "eu-1", tier: "db" }],
      ["us", 7003, { zone: "us-1", tier: "web" }],
    ] as const) {
      const res = await register({ serviceType: "sel-http", port, host: "10.0.0.5", metadata });
      ids[name] = ((await res.json()) as { serviceId: string }).serviceId;
    }
    const selected = async (selector: string) => {
      const res = await http(`/services/sel-http?selector=${encodeURIComponent(selector)}`, { headers: KEY });
      expect(res.status, selector).toBe(200);
      return ((await res.json()) as { instances: { id: string }[] }).instances.map((i) => i.id).sort();
    };
    expect(await selected("zone=eu-1")).toEqual([ids.eu, ids.euDb].sort());
    expect(await selected("zone=eu-1,tier=web")).toEqual([ids.eu]);
    expect(await selected("zone==us-1")).toEqual([ids.us]); // Kubernetes' == spelling
    expect(await selected("zone=ap-1")).toEqual([]);
    expect(await selected("")).toHaveLength(3);

    const refused = async (selector: string) => {
      const res = await http(`/services/sel-http?selector=${encodeURIComponent(selector)}`, { headers: KEY });
      return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error };
    };
    for (const [selector, message] of [
      ["zone", /^selector: "zone" is not key=value$/],
      ["=eu-1", /^selector: "=eu-1" is not key=value$/],
      ["bad key=x", /^selector: key "bad key" must match/],
      ["zone=eu-1,zone=us-1", /^selector: key "zone" is given twice$/],
      [`zone=${"x".repeat(513)}`, /^selector\.zone: must be at most 512 bytes$/],
    ] as const) {
      const answer = await refused(selector);
      expect(answer.status, selector).toBe(400);
      expect(answer.error.code, selector).toBe("INVALID_ARGUMENT");
      expect(answer.error.message, selector).toMatch(message);
    }
  });

  it("spells health HEALTHY and UNHEALTHY in every answer that carries an instance, for real probe results", async () => {
    const probing = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", HEALTH_CHECK_TTL_MS: "500" });
    const up = await startHealthServer();
    try {
      const post = async (port: number) =>
        (await (
          await fetch(`${probing.httpUrl}/service`, {
            method: "POST",
            headers: { ...JSON_BODY, ...KEY },
            body: JSON.stringify({ serviceType: "spelled", port, host: "127.0.0.1" }),
          })
        ).json()) as { serviceId: string };
      const failed = new Promise<void>((resolve) => probing.registry.on("change", (c) => c.kind === "health" && c.instance.health === "unhealthy" && resolve()));
      const well = await post(up.port);
      const sick = await post(await closedPort());
      await failed;
      await up.nextRequest(); // probed and passing: still HEALTHY

      const get = (path: string, init: RequestInit = {}) => fetch(`${probing.httpUrl}${path}`, { headers: KEY, ...init }).then((r) => r.json());
      const listed = (await get("/services/spelled?includeUnhealthy=true")) as { instances: { id: string; health: string }[] };
      expect(listed.instances.map((i) => [i.id, i.health])).toEqual([
        [well.serviceId, "HEALTHY"],
        [sick.serviceId, "UNHEALTHY"],
      ]);
      expect(await get(`/service/${sick.serviceId}`)).toMatchObject({ instance: { id: sick.serviceId, health: "UNHEALTHY" } });
      expect(await get(`/service/${well.serviceId}`)).toMatchObject({ instance: { id: well.serviceId, health: "HEALTHY" } });
      expect(await get(`/service/${sick.serviceId}`, { method: "DELETE" })).toMatchObject({ instance: { id: sick.serviceId, health: "UNHEALTHY" } });
    } finally {
      await up.close();
      await probing.close();
    }
  });

  it("answers bad JSON and an empty body with 400, an oversized body with 413", async () => {
    const bad = await http("/service", { method: "POST", headers: KEY, body: '{"serviceType": ' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { code: "INVALID_ARGUMENT", message: "request body is not valid JSON" } });
    const empty = await http("/service", { method: "POST", headers: KEY });
    expect(empty.status).toBe(400);
    const huge = await register({ serviceType: "api", port: 80, metadata: { big: "x".repeat(70_000) } });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe("RESOURCE_EXHAUSTED");
    const query = await http("/services/api?includeUnhealthy=maybe", { headers: KEY });
    expect(query.status).toBe(400);
  });

  it("does not read the body of an unauthenticated registration", async () => {
    const res = await http("/service", { method: "POST", body: "not even json" });
    expect(res.status).toBe(401);
  });

  it("gives the same code and message as gRPC for the same bad request", async () => {
    const cases: [string, () => Promise<Response>, () => Promise<ServiceError>][] = [
      ["wrong key", () => http("/services/api", { headers: { authorization: "Bearer wrong-key-0123456789" } }),
        () => callError(grpc, grpc.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, keyAuth("wrong-key-0123456789"))],
      ["unknown id", () => http("/service/00000000-0000-0000-0000-000000000000", { headers: KEY }),
        () => callError(grpc, grpc.getInstance, { instanceId: "00000000-0000-0000-0000-000000000000" }, keyAuth())],
      ["too long id", () => http(`/service/${"x".repeat(200)}`, { headers: KEY }),
        () => callError(grpc, grpc.getInstance, { instanceId: "x".repeat(200) }, keyAuth())],
      ["bad selector key", () => http("/services/api?selector=bad%20key=x", { headers: KEY }),
        () => callError(grpc, grpc.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: { "bad key": "x" } }, keyAuth())],
      ["bad type", () => http("/services/-bad-", { headers: KEY }),
        () => callError(grpc, grpc.getByType, { serviceType: "-bad-", includeUnhealthy: false, includeDraining: false, selector: {} }, keyAuth())],
      ["unknown instance creds", () => http("/services", { headers: asInstance("nope", "nope") }),
        () => callError(grpc, grpc.listServices, {}, instanceAuth("nope", "nope"))],
    ];
    const httpFor: Record<number, number> = {
      [status.INVALID_ARGUMENT]: 400, [status.UNAUTHENTICATED]: 401, [status.PERMISSION_DENIED]: 403,
      [status.NOT_FOUND]: 404, [status.RESOURCE_EXHAUSTED]: 429, [status.UNAVAILABLE]: 503,
    };
    for (const [name, viaHttp, viaGrpc] of cases) {
      const res = await viaHttp();
      const body = (await res.json()) as { error: { code: string; message: string } };
      const err = await viaGrpc();
      expect(res.status, name).toBe(httpFor[err.code]);
      expect(body.error.code, name).toBe(status[err.code]);
      expect(body.error.message.replace(/^serviceType:/, "service_type:").replace(/^id:/, "instance_id:"), name).toBe(err.details);
    }
  });

  it("labels HTTP metrics with the route template, never the id in the path", async () => {
    const created = (await (await register({ serviceType: "metered", port: 1, host: "10.0.0.1" })).json()) as { serviceId: string };
    await http(`/service/${created.serviceId}`, { headers: KEY });
    const m = parseExposition(await (await http("/metrics")).text());
    expect(m.value("registry_http_requests_total", { route: "/service/:id", method: "GET", code: "200" })).toBeGreaterThanOrEqual(1);
    expect(m.value("registry_http_requests_total", { route: "/service", method: "POST", code: "201" })).toBeGreaterThanOrEqual(1);
    expect(m.samples.some((s) => Object.values(s.labels).some((v) => v.includes(created.serviceId)))).toBe(false);
  });
});

describe("HTTP error mapping", () => {
  it.each([
    ["invalid_argument", 400, "INVALID_ARGUMENT"],
    ["unauthenticated", 401, "UNAUTHENTICATED"],
    ["permission_denied", 403, "PERMISSION_DENIED"],
    ["not_found", 404, "NOT_FOUND"],
    ["resource_exhausted", 429, "RESOURCE_EXHAUSTED"],
    ["unavailable", 503, "UNAVAILABLE"],
    ["cancelled", 499, "CANCELLED"],
  ] as [RegistryErrorCode, number, string][])("maps %s to %i", (code, httpStatus, name) => {
    const mapped = toHttpError(new RegistryError(code, "why"), pino({ level: "silent" }), "/x");
    expect(mapped.status).toBe(httpStatus);
    expect(mapped.body).toEqual({ error: { code: name, message: "why" } });
  });

  it("turns anything else into a 500 with a generic message", () => {
    const mapped = toHttpError(new Error("secret detail"), pino({ level: "silent" }), "/x");
    expect(mapped).toEqual({ status: 500, headers: {}, body: { error: { code: "INTERNAL", message: "internal error" } } });
  });

  it("answers 503 with Retry-After over real HTTP while the registry is unavailable", async () => {
    const registry = new ServiceRegistry({ healthChecks: false }); // never started: UNAVAILABLE
    const api = new RegistryApi(registry, new RegistrationKeys([TEST_KEY]));
    const server = new RegistryHttpServer({ routes: jsonApiRoutes(api), logger: pino({ level: "silent" }) });
    const port = await server.listen("127.0.0.1", 0);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/service`, {
        method: "POST",
        headers: KEY,
        body: JSON.stringify({ serviceType: "api", port: 80, host: "10.0.0.1" }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UNAVAILABLE");
    } finally {
      await server.close();
    }
  });
});

describe("an HTTP write's abort signal (CallContext.signal)", () => {
  /** The JSON API over a registry whose store commits can be held; a Register is left in flight inside the core. */
  async function registerInFlight() {
    const logger = pino({ level: "silent" });
    const store = new HeldStore();
    const registry = new SignalRecordingRegistry({ healthChecks: false, store, logger });
    await registry.start();
    const server = new RegistryHttpServer({ routes: jsonApiRoutes(new RegistryApi(registry, new RegistrationKeys([TEST_KEY]))), logger });
    const port = await server.listen("127.0.0.1", 0);
    const held = store.hold();
    const client = new AbortController();
    const answer = fetch(`http://127.0.0.1:${port}/service`, {
      method: "POST",
      headers: { ...KEY, ...JSON_BODY },
      body: JSON.stringify({ serviceType: "api", port: 80, host: "10.0.0.1" }),
      signal: client.signal,
    }).catch((err: unknown) => err);
    await within(5000, "the Register reaching the store", held);
    const signal = registry.lastSignal();
    expect(signal.aborted).toBe(false);
    return {
      signal,
      server,
      leave: () => client.abort(),
      async close() {
        client.abort();
        store.release();
        await answer;
        await server.close(0);
        await registry.close();
      },
    };
  }

  it("aborts when the client goes away before the answer", async () => {
    const call = await registerInFlight();
    try {
      call.leave();
      expect(await within(5000, "the request's signal aborting", aborted(call.signal))).toMatchObject({ code: "cancelled" });
    } finally {
      await call.close();
    }
  });

  it("aborts, at close, the writes still in flight when the grace period ends", async () => {
    const call = await registerInFlight();
    try {
      const closed = call.server.close(100);
      expect(await within(5000, "the request's signal aborting", aborted(call.signal))).toMatchObject({
        code: "cancelled",
        message: "the server is shutting down",
      });
      await closed;
    } finally {
      await call.close();
    }
  });

  it("is not aborted once the answer is sent", async () => {
    const logger = pino({ level: "silent" });
    const registry = new SignalRecordingRegistry({ healthChecks: false, logger });
    await registry.start();
    const server = new RegistryHttpServer({ routes: jsonApiRoutes(new RegistryApi(registry, new RegistrationKeys([TEST_KEY]))), logger });
    const port = await server.listen("127.0.0.1", 0);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/service`, {
        method: "POST",
        headers: { ...KEY, ...JSON_BODY, connection: "close" },
        body: JSON.stringify({ serviceType: "api", port: 80, host: "10.0.0.1" }),
      });
      expect(res.status).toBe(201);
      await res.json();
      await server.close(); // the connection has closed, and with it every response
      expect(registry.lastSignal().aborted).toBe(false);
    } finally {
      await server.close(0);
      await registry.close();
    }
  });
});

describe("an HTTP request whose client goes away in the middle of its body", () => {
  it("is the client's doing, not a server error: no error logged, counted with code 499", async () => {
    const lines: string[] = [];
    const server = await startStack({}, {}, pino({ level: "debug" }, { write: (line: string) => void lines.push(line) }));
    try {
      const socket = connect(Number(new URL(server.httpUrl).port), "127.0.0.1");
      await once(socket, "connect");
      socket.write(
        `POST /service HTTP/1.1\r\nhost: registry\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"serviceType":`,
      );
      socket.end();
      const counted = async (): Promise<number | undefined> =>
        parseExposition(await (await fetch(`${server.httpUrl}/metrics`)).text()).value("registry_http_requests_total", { route: "/service", method: "POST", code: "499" });
      await waitFor(async () => (await counted()) === 1, () => `the request counted with code 499; the log:\n${lines.join("")}`, 5000, 20);
      expect(lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50)).toEqual([]);

      // An event stream ended by its client is its normal end: counted with the status it started with.
      const stream = new AbortController();
      const res = await fetch(`${server.httpUrl}/watch`, { headers: KEY, signal: stream.signal });
      expect(res.status).toBe(200);
      await res.body!.getReader().read();
      stream.abort();
      const watchCount = async (code: string): Promise<number | undefined> =>
        parseExposition(await (await fetch(`${server.httpUrl}/metrics`)).text()).value("registry_http_requests_total", { route: "/watch", method: "GET", code });
      await waitFor(async () => (await watchCount("200")) === 1, "the ended event stream counted with code 200", 5000, 20);
      expect(await watchCount("499")).toBeUndefined();
    } finally {
      await server.close();
    }
  });
});
