import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

const KEY = "http-client-gone-key-0123456789";

/**
 * Sends a raw HTTP/1.1 request and closes the client's side at once (FIN),
 * as a client that gives up does (a timed-out fetch closes its socket).
 * Resolves once the FIN has been handed to the kernel; `closed` once the
 * server has closed the connection.
 */
function sendAndHangUp(port: number, request: string): Promise<{ closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, "127.0.0.1");
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.on("error", () => {}); // the server may reset it: only 'close' matters
    socket.once("connect", () => socket.end(request));
    socket.once("finish", () => resolve({ closed }));
    socket.once("error", reject);
  });
}

describe("an HTTP write whose client hung up before the server read it", () => {
  let server: ServerProcess | undefined;
  afterEach(async () => {
    server?.kill("SIGCONT");
    server?.kill("SIGKILL");
    await server?.exited;
    server = undefined;
  });

  it("is not made: a POST /service and a DELETE that reach a busy server with their FIN change nothing (gRPC cancels the same way)", async () => {
    server = await startServerProcess({ SERVICE_REGISTRATION_KEY: KEY, HEALTH_CHECKS: "false", STORE: "memory" });
    const base = `http://127.0.0.1:${server.port}`;
    const auth = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };
    const post = (body: object) => fetch(`${base}/service`, { method: "POST", headers: auth, body: JSON.stringify(body) });
    const victim = (await (await post({ serviceType: "gone", port: 9, host: "10.8.0.9" })).json()) as { serviceId: string };

    // A busy event loop (frozen here) reads each request together with its FIN.
    server.kill("SIGSTOP");
    const body = JSON.stringify({ serviceType: "gone", port: 3, host: "10.8.0.3" });
    const hungUp = await Promise.all([
      sendAndHangUp(server.port, `POST /service HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`),
      sendAndHangUp(server.port, `DELETE /service/${victim.serviceId} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\n\r\n`),
    ]);
    server.kill("SIGCONT");
    await Promise.all(hungUp.map((h) => h.closed));
    // Writes commit in arrival order: once a later one is answered, any earlier one would have been made.
    expect((await post({ serviceType: "gone", port: 5, host: "10.8.0.5" })).status).toBe(201);

    const { instances } = (await (await fetch(`${base}/services/gone?includeUnhealthy=true`, { headers: auth })).json()) as { instances: { host: string; port: number }[] };
    expect(instances.map((i) => `${i.host}:${i.port}`).sort()).toEqual(["10.8.0.5:5", "10.8.0.9:9"]);
  }, 30_000);
});
