import { connect as connectHttp2 } from "node:http2";
import { request as httpsRequest } from "node:https";
import { connect as connectTcp, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { PortListener } from "../../src/transport/port-listener.js";
import { call, keyAuth, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { makeTestPki, type TestPki } from "../support/test-pki.js";

const KEY = { authorization: `Bearer ${TEST_KEY}` };
const REGISTER = { serviceType: "api", port: 8080, host: "10.0.0.1", metadata: {} };

/** Sends raw bytes on a fresh TCP connection and resolves with everything the server sent before closing. */
function rawExchange(port: number, chunks: readonly (string | Buffer)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, "127.0.0.1", () => {
      for (const c of chunks) socket.write(c);
    });
    let data = "";
    socket.on("data", (d: Buffer) => (data += d.toString("latin1")));
    socket.on("close", () => resolve(data));
    socket.on("error", reject);
  });
}

/** An HTTPS request on `port` offering `alpn` (none when undefined); resolves with the status, body and negotiated protocol. */
function httpsGet(port: number, path: string, ca: string, alpn?: string[]): Promise<{ status: number; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, path, ca, agent: false, headers: KEY, ...(alpn ? { ALPNProtocols: alpn } : {}) },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("one port for gRPC and HTTP/1.1 (plaintext)", () => {
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

  it("serves gRPC and the seed's HTTP/JSON API, /healthz and /metrics on PORT, over one core", async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const posted = await fetch(`${base}/service`, {
      method: "POST",
      headers: { "content-type": "application/json", ...KEY },
      body: JSON.stringify({ serviceType: "product-service", port: "3000", host: "10.0.0.3" }),
    });
    expect(posted.status).toBe(201);
    const { serviceId } = (await posted.json()) as { serviceId: string };
    const overGrpc = await call(grpc, grpc.getInstance, { instanceId: serviceId }, keyAuth());
    expect(overGrpc.instance?.port).toBe(3000);
    const viaGrpc = await call(grpc, grpc.register, REGISTER, keyAuth());
    const overHttp = await fetch(`${base}/service/${viaGrpc.serviceId}`, { headers: KEY });
    expect(((await overHttp.json()) as { instance: { port: number } }).instance.port).toBe(8080);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain("registry_instances");
  });

  it("knows the caller's address on both protocols: host defaults to it", async () => {
    const overGrpc = await call(grpc, grpc.register, { serviceType: "peer-check", port: 9000, metadata: {} }, keyAuth());
    expect(overGrpc.instance?.host).toBe("127.0.0.1");
    const overHttp = await fetch(`http://127.0.0.1:${server.port}/service`, {
      method: "POST",
      headers: { "content-type": "application/json", ...KEY },
      body: JSON.stringify({ serviceType: "peer-check", port: 9001 }),
    });
    expect(((await overHttp.json()) as { instance: { host: string } }).instance.host).toBe("127.0.0.1");
  });

  it("routes an HTTP/2 preface that arrives in pieces to gRPC", async () => {
    // A raw HTTP/2 session whose preface is written a byte at a time, then a real request.
    const socket = await new Promise<Socket>((resolve) => {
      const s = connectTcp(server.port, "127.0.0.1", () => resolve(s));
    });
    for (const byte of Buffer.from("PRI * HTTP/2.0\r\n")) {
      socket.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    // node:http2 sends the (whole) preface itself: the registry must see one, so hand it the rest,
    // and the SETTINGS frame that completes a client preface (RFC 9113 §3.4), in two pieces.
    socket.write("\r\nSM\r\n\r\n");
    await new Promise((r) => setImmediate(r));
    socket.write(Buffer.from([0, 0, 0, 0x4]));
    await new Promise((r) => setImmediate(r));
    socket.write(Buffer.from([0, 0, 0, 0, 0]));
    const answer = await new Promise<string>((resolve) => {
      let data = "";
      socket.on("data", (d: Buffer) => {
        data += d.toString("latin1");
        resolve(data);
      });
    });
    // The server's first frame is its SETTINGS frame (type 0x4): HTTP/2 answered, not HTTP/1.1.
    expect(answer.startsWith("HTTP/1.1")).toBe(false);
    expect(Buffer.from(answer, "latin1")[3]).toBe(0x4);
    socket.destroy();
  });

  it("answers garbage that is neither protocol with HTTP/1.1 400 and stays up", async () => {
    const answer = await rawExchange(server.port, [Buffer.from([0, 1, 2, 3, 0xff, 0x0d, 0x0a, 0x0d, 0x0a])]);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect((await call(grpc, grpc.listServices, {}, keyAuth())).services).toBeDefined();
  });
});

describe("one port for gRPC and HTTP/1.1 over TLS: ALPN decides", () => {
  let pki: TestPki;
  let server: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    pki = await makeTestPki();
    server = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile });
  });
  afterAll(async () => {
    await server.close();
  });

  it("serves a gRPC client (ALPN h2) on PORT", async () => {
    const c = new RegistryServiceClient(server.address, credentials.createSsl(Buffer.from(pki.ca.cert)));
    try {
      expect((await call(c, c.register, REGISTER, keyAuth())).instance?.serviceType).toBe("api");
    } finally {
      c.close();
    }
  });

  it.each([
    ["http/1.1", ["http/1.1"]],
    ["no ALPN at all", undefined],
  ])("serves HTTPS with %s on PORT", async (_label, alpn) => {
    const res = await httpsGet(server.port, "/services", pki.ca.cert, alpn);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toHaveProperty("services");
    expect(res.alpn).toBe(alpn ? "http/1.1" : false);
  });

  it("negotiates h2 for a client offering h2 and http/1.1, and serves HTTP/2 there", async () => {
    const session = connectHttp2(`https://127.0.0.1:${server.port}`, { ca: pki.ca.cert });
    try {
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({ ":path": "/grpc.health.v1.Health/Check", ":method": "POST", "content-type": "application/grpc", te: "trailers" });
        req.on("response", resolve);
        req.on("error", reject);
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      expect(headers[":status"]).toBe(200);
      expect(headers["content-type"]).toBe("application/grpc+proto");
      expect(session.alpnProtocol).toBe("h2");
    } finally {
      session.close();
    }
  });

  it("refuses a client offering only a protocol it does not speak", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = connectTls({ host: "127.0.0.1", port: server.port, ca: pki.ca.cert, ALPNProtocols: ["spdy/3"] }, () => {
        resolve(`connected with ${String(socket.alpnProtocol)}`);
        socket.destroy();
      });
      socket.on("error", (err) => resolve(err.message));
    });
    expect(outcome).toMatch(/no application protocol|alert number 120/i);
  });
});

describe("PORT_SERVES_HTTP=false", () => {
  it("keeps PORT gRPC-only and tells an HTTP/1.1 client where HTTP is", async () => {
    const server = await startStack({ PORT_SERVES_HTTP: "false" });
    const grpc = new RegistryServiceClient(server.address, credentials.createInsecure());
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("HTTP is on HTTP_PORT");
      expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
      expect((await call(grpc, grpc.listServices, {}, keyAuth())).services).toEqual([]);
    } finally {
      grpc.close();
      await server.close();
    }
  });
});

describe("PortListener", () => {
  it("closes a connection that sends nothing, and one that sends only part of a preface", async () => {
    const routed: string[] = [];
    const listener = new PortListener({
      grpc: (s) => (routed.push("grpc"), s.destroy()),
      http: (s) => (routed.push("http"), s.destroy()),
      firstByteTimeoutMs: 200,
    });
    const port = await listener.listen("127.0.0.1", 0);
    try {
      const silent = rawExchange(port, []);
      const partial = rawExchange(port, ["PRI * HT"]);
      expect(await silent).toBe("");
      expect(await partial).toBe("");
      expect(routed).toEqual([]);
    } finally {
      await listener.close();
    }
  });

  it("routes by the first bytes and closes connections still undecided when it closes", async () => {
    const routed: string[] = [];
    const listener = new PortListener({
      grpc: (s) => (routed.push("grpc"), s.destroy()),
      http: (s) => (routed.push("http"), s.destroy()),
    });
    const port = await listener.listen("127.0.0.1", 0);
    await rawExchange(port, ["GET / HTTP/1.1\r\n\r\n"]);
    // Routed as HTTP/2 once the whole client preface is in: the magic and a SETTINGS frame.
    await rawExchange(port, [Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])])]);
    expect(routed).toEqual(["http", "grpc"]);
    const undecided = rawExchange(port, ["PRI"]);
    await expect.poll(() => listener.undecidedCount, { timeout: 5000 }).toBe(1);
    await listener.close();
    expect(await undecided).toBe("");
    // The port is free again.
    const again = createNetServer();
    await new Promise<void>((resolve) => again.listen(port, "127.0.0.1", () => resolve()));
    expect((again.address() as AddressInfo).port).toBe(port);
    again.close();
  });
});

describe("the HTTP server fed by a PortListener", () => {
  it("closes a connection that trickles its headers past headersTimeout", async () => {
    const { RegistryHttpServer } = await import("../../src/http/http-server.js");
    const pino = (await import("pino")).default;
    const server = new RegistryHttpServer({ routes: [], logger: pino({ level: "silent" }), headersTimeoutMs: 300 });
    const port = await server.listen("127.0.0.1", 0);
    try {
      const started = Date.now();
      // Half a request line, then nothing: only node:http's header timeout can end it.
      const answer = await rawExchange(port, ["GET / HTTP/1.1\r\nhost: x\r\n"]);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await server.close(0);
    }
  });
});
