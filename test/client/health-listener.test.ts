import { connect } from "node:net";
import { credentials, Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { listenWithHealth, type HealthListener } from "../../src/client/health-listener.js";
import { healthStatus } from "../support/health-client.js";
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
