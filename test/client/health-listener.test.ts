import { connect } from "node:net";
import { credentials, Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { listenWithHealth, type HealthListener } from "../../src/client/health-listener.js";
import { check as healthCheck, healthClient, healthStatus, HealthWatch } from "../support/health-client.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { startHarness, TEST_KEY } from "../support/registry-harness.js";
import { drain as consume } from "./helpers.js";
import { greeterClient, greeterService, sayHello } from "../../examples/router/greeter.js";

/** Sends raw bytes and resolves with the first response line ("" when the peer just closes). */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let data = "";
    socket.on("data", (d) => (data += d.toString()));
    socket.on("close", () => resolve(data.split("\r\n")[0] ?? ""));
    socket.on("error", reject);
  });
}

describe("listenWithHealth: gRPC and HTTP /health on one port", () => {
  let listener: HealthListener | undefined;
  afterEach(async () => {
    await listener?.close();
    listener = undefined;
  });

  async function start(check?: () => boolean): Promise<HealthListener> {
    const server = new Server();
    new HealthImplementation({ "": "SERVING" }).addToServer(server);
    listener = await listenWithHealth(server, { host: "127.0.0.1", ...(check ? { check } : {}) });
    return listener;
  }

  it("answers /health over HTTP/1.1 and gRPC over HTTP/2 on the same port", async () => {
    let healthy = true;
    const l = await start(() => healthy);
    expect((await fetch(`http://127.0.0.1:${l.port}/health`)).status).toBe(200);
    healthy = false;
    expect((await fetch(`http://127.0.0.1:${l.port}/health`)).status).toBe(503);
    expect((await fetch(`http://127.0.0.1:${l.port}/other`)).status).toBe(404);
    expect(await healthStatus(`127.0.0.1:${l.port}`)).toBe("SERVING");
  });

  it("survives a request target that is not a URL and a peer that resets before sending anything", async () => {
    const l = await start();
    expect(await rawRequest(l.port, "GET // HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")).toMatch(/^HTTP\/1\.1 404/);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(l.port, "127.0.0.1", () => {
        socket.resetAndDestroy();
        resolve();
      });
      socket.on("error", reject);
    });
    // Still serving both protocols.
    expect((await fetch(`http://127.0.0.1:${l.port}/health`)).status).toBe(200);
    expect(await healthStatus(`127.0.0.1:${l.port}`)).toBe("SERVING");
  });

  it("close(grace) returns once the calls in flight finish, not at the end of the grace, with a health connection kept alive", async () => {
    const server = new Server();
    server.addService(greeterService, {
      sayHello(call: { request: { delayMs: number } }, callback: (err: null, res: object) => void) {
        setTimeout(() => callback(null, { message: "hi", backend: "x" }), call.request.delayMs);
      },
    });
    const l = await listenWithHealth(server, { host: "127.0.0.1" });
    listener = l;
    const client = greeterClient(`127.0.0.1:${l.port}`, credentials.createInsecure());
    try {
      expect((await fetch(`http://127.0.0.1:${l.port}/health`)).status).toBe(200); // leaves a keep-alive connection
      const inFlight = sayHello(client, "slow", 10_000, 300);
      await sayHello(client, "on the wire"); // the slow call is sent before this one's answer
      const started = Date.now();
      await l.close(20_000);
      expect(await inFlight).toMatchObject({ backend: "x" });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      client.close();
    }
  });
});

describe("listenWithHealth: grpc.health.v1", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(check: () => boolean, grpcHealthServices?: string[]): Promise<HealthListener> {
    const server = new Server(); // no health service of its own: the listener adds one
    const l = await listenWithHealth(server, { host: "127.0.0.1", check, ...(grpcHealthServices ? { grpcHealthServices } : {}) });
    cleanups.push(() => l.close());
    return l;
  }

  it("answers Check SERVING while check() says healthy, NOT_SERVING when it does not, and NOT_SERVING from drain() on (Watch told too)", async () => {
    let healthy = true;
    const l = await start(() => healthy, ["greeter.v1.Greeter"]);
    const client = healthClient(`127.0.0.1:${l.port}`);
    cleanups.push(() => client.close());
    expect(await healthCheck(client)).toBe("SERVING");
    expect(await healthCheck(client, "greeter.v1.Greeter")).toBe("SERVING");
    await expect(healthCheck(client, "other")).rejects.toMatchObject({ code: 5 }); // NOT_FOUND
    healthy = false;
    expect(await healthCheck(client)).toBe("NOT_SERVING");
    healthy = true;
    const watch = new HealthWatch(client);
    cleanups.push(() => watch.cancel());
    expect(await watch.next()).toBe("SERVING");

    l.drain();
    expect(await watch.next()).toBe("NOT_SERVING");
    expect(await healthCheck(client)).toBe("NOT_SERVING");
    expect((await fetch(`http://127.0.0.1:${l.port}/health`)).status).toBe(200); // HTTP follows check() alone
    await l.close(); // ends the Watch stream rather than waiting on it
    await expect(watch.next()).rejects.toMatchObject({ code: 14 }); // UNAVAILABLE
  });

  it("is what a registry grpc check reads: healthy while serving, failing with NOT_SERVING once drained", async () => {
    const h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 150, healthCheckTTL: 400, deregisterAfter: 0 } });
    cleanups.push(() => h.close());
    const l = await start(() => true);
    const admin = new RegistryClient({ addresses: [h.address], auth: { key: TEST_KEY } });
    cleanups.push(() => admin.close());
    const stream = admin.watch({ serviceType: "svc", everyHealthCheck: true });
    cleanups.push(() => stream.close());
    const events = consume(stream);
    const { id } = await admin.register({ serviceType: "svc", host: "127.0.0.1", port: l.port, healthCheck: { kind: "grpc" } });
    await events.find((e) => e.type === "probe" && e.instance.id === id && e.passed, "a passing grpc probe");
    l.drain();
    const failed = await events.find((e) => e.type === "healthCheckFailed" && e.instance.id === id, "the drained port failing");
    expect(failed).toMatchObject({ failureReason: "grpc health NOT_SERVING" });
  });
});
