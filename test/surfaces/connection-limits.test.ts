import { EventEmitter, once } from "node:events";
import { mkdtempSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { connect as connectTcp, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient, type ListServicesResponse } from "../../gen/registry/v1/registry.js";
import { startServer, type RunningServer } from "../../src/app/start-server.js";
import { loadConfig } from "../../src/config/load-config.js";
import { ConnectionLimits } from "../../src/transport/connection-limits.js";
import { PortListener } from "../../src/transport/port-listener.js";
import { keyAuth, TEST_KEY } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { makeTestPki } from "../support/test-pki.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Sockets held open from `localAddress` (another loopback address than the well-behaved clients' 127.0.0.1). */
interface Flood {
  readonly sockets: Socket[];
  /** How many the server closed so far. */
  closed(): number;
  destroy(): void;
}

/** Opens `count` TCP connections from `localAddress` that never send a byte; resolves once all are connected. */
async function flood(port: number, localAddress: string, count: number): Promise<Flood> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from({ length: count }, () => {
      const socket = connectTcp({ port, host: "127.0.0.1", localAddress });
      socket.on("error", () => {});
      socket.on("close", () => closed++);
      return new Promise<Socket>((resolve) => {
        socket.once("connect", () => resolve(socket));
        socket.once("close", () => resolve(socket));
      });
    }),
  );
  return { sockets, closed: () => closed, destroy: () => sockets.forEach((s) => s.destroy()) };
}

function listServices(client: RegistryServiceClient, ms = 3000): Promise<ListServicesResponse> {
  return new Promise((resolve, reject) => {
    client.listServices({}, keyAuth(), { deadline: Date.now() + ms }, (err: ServiceError | null, res?: ListServicesResponse) =>
      err ? reject(err) : resolve(res as ListServicesResponse),
    );
  });
}

function isolatedClient(port: number): RegistryServiceClient {
  return new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

/** `registry_quota_refusals_total{quota="..."}` (0 when absent). */
async function refusals(server: RunningServer, quota: string): Promise<number> {
  const line = (await server.metrics.exposition()).split("\n").find((l) => l.startsWith(`registry_quota_refusals_total{quota="${quota}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** The server as serve wires it, in-process, with its warnings captured. */
async function startLogged(env: Record<string, string>): Promise<{ server: RunningServer; warnings: Record<string, unknown>[] }> {
  const cwd = mkdtempSync(join(tmpdir(), "registry-conn-"));
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const config = loadConfig({
    cwd,
    argv: [],
    env: {
      PORT: "0", HOST: "127.0.0.1", STORE: "memory", DATA_DIR: join(cwd, "data"), SERVICE_REGISTRATION_KEY: TEST_KEY,
      HEALTH_CHECKS: "false", SHUTDOWN_GRACE_MS: "1000", ...env,
    },
  });
  return { server: await startServer(config, logger, { httpPort: 0 }), warnings };
}

describe("connection caps", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("a server with 400 file descriptors keeps serving while one host holds 500 idle sockets", async () => {
    const server: ServerProcess = await startServerProcess(
      { STORE: "memory", HEALTH_CHECKS: "false", SERVICE_REGISTRATION_KEY: TEST_KEY },
      [],
      { fileLimit: 400 },
    );
    cleanups.push(async () => {
      server.kill();
      await server.exited;
    });
    const idle = await flood(server.port, "127.0.0.2", 500);
    cleanups.push(() => idle.destroy());
    // Checked well inside the preface deadline: the idle sockets are still held.
    const client = isolatedClient(server.port);
    cleanups.push(() => client.close());
    await expect(listServices(client)).resolves.toMatchObject({ services: [] });
    const healthz = await fetch(`http://127.0.0.1:${server.port}/healthz`, { signal: AbortSignal.timeout(3000) });
    expect(healthz.status).toBe(200);
    // The automatic caps (3/4 of 400 in all, a quarter of that per address) refused the rest at accept.
    await waitFor(() => idle.closed() >= 500 - 75, "the sockets over MAX_CONNECTIONS_PER_ADDRESS to be closed", 3000);
    expect(server.output()).toMatch(/"quota":"MAX_CONNECTIONS_PER_ADDRESS"/);
  }, 30_000);

  it("refuses connections over MAX_CONNECTIONS_PER_ADDRESS and MAX_CONNECTIONS at accept, never an established one, counted and logged once", async () => {
    const { server, warnings } = await startLogged({ MAX_CONNECTIONS: "12", MAX_CONNECTIONS_PER_ADDRESS: "5" });
    cleanups.push(() => server.close());
    const client = isolatedClient(server.port);
    cleanups.push(() => client.close());
    await listServices(client); // one connection from 127.0.0.1

    const a = await flood(server.port, "127.0.0.2", 8);
    cleanups.push(() => a.destroy());
    // Closed at once (the preface deadline is seconds away): 3 over the per-address cap.
    await waitFor(() => a.closed() === 3, "3 connections from 127.0.0.2 to be refused", 2000);
    const b = await flood(server.port, "127.0.0.3", 5);
    cleanups.push(() => b.destroy());
    const c = await flood(server.port, "127.0.0.4", 5);
    cleanups.push(() => c.destroy());
    // 1 + 5 + 5 + 1 = 12: four from 127.0.0.4 are over the total.
    await waitFor(() => c.closed() === 4, "4 connections over MAX_CONNECTIONS to be refused", 2000);
    expect(b.closed()).toBe(0);
    expect(a.closed()).toBe(3);

    // The established client is untouched and served.
    await expect(listServices(client)).resolves.toMatchObject({ services: [] });
    expect(await refusals(server, "MAX_CONNECTIONS_PER_ADDRESS")).toBe(3);
    expect(await refusals(server, "MAX_CONNECTIONS")).toBe(4);
    // One line per quota per minute, not one per refusal.
    const lines = warnings.filter((w) => typeof w.quota === "string");
    expect(lines.map((w) => w.quota).sort()).toEqual(["MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_ADDRESS"]);
    expect(lines.find((w) => w.quota === "MAX_CONNECTIONS")).toMatchObject({ limit: 12, address: "127.0.0.4", count: 1 });
  }, 20_000);
});

describe("the HTTP/2 preface deadline, on every path", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("closes a plaintext connection that sent the preface magic but no SETTINGS, without handing it to gRPC", async () => {
    const handed: string[] = [];
    const listener = new PortListener({ grpc: () => void handed.push("grpc"), http: () => void handed.push("http"), firstByteTimeoutMs: 300 });
    const port = await listener.listen("127.0.0.1", 0);
    cleanups.push(async () => {
      const closed = listener.close();
      listener.destroyConnections();
      await closed;
    });
    const socket = connectTcp({ port, host: "127.0.0.1" });
    socket.on("error", () => {});
    await once(socket, "connect");
    socket.write(PREFACE);
    const started = Date.now();
    await Promise.race([once(socket, "close"), new Promise((_, reject) => setTimeout(() => reject(new Error("not closed within 3 s")), 3000).unref())]);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(handed).toEqual([]);
  });

  it("closes a TLS connection that negotiated h2 (ALPN) and then sent nothing, without handing it to gRPC", async () => {
    const pki = await makeTestPki();
    const handed: string[] = [];
    const listener = new PortListener({
      grpc: () => void handed.push("grpc"),
      http: () => void handed.push("http"),
      tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) },
      firstByteTimeoutMs: 300,
    });
    const port = await listener.listen("127.0.0.1", 0);
    cleanups.push(async () => {
      const closed = listener.close();
      listener.destroyConnections();
      await closed;
    });
    const socket = connectTls({ port, host: "127.0.0.1", ca: pki.ca.cert, ALPNProtocols: ["h2"] });
    socket.on("error", () => {});
    await once(socket, "secureConnect");
    expect(socket.alpnProtocol).toBe("h2");
    await Promise.race([once(socket, "close"), new Promise((_, reject) => setTimeout(() => reject(new Error("not closed within 3 s")), 3000).unref())]);
    expect(handed).toEqual([]);
  });
});

describe("CONNECTION_IDLE_MS", () => {
  it("sends GOAWAY to, and closes, a gRPC connection with no call for that long", async () => {
    const { server } = await startLogged({ CONNECTION_IDLE_MS: "1000" });
    const session = connectHttp2(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    try {
      // One call (grpc.health.v1 Check needs no credential), then nothing; the client answers every PING.
      const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.resume();
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      await once(stream, "close");
      const idleFrom = Date.now();
      const goaway = once(session, "goaway");
      await Promise.race([goaway, new Promise((_, reject) => setTimeout(() => reject(new Error("no GOAWAY within 4 s of idling")), 4000).unref())]);
      expect(Date.now() - idleFrom).toBeGreaterThanOrEqual(900);
      await Promise.race([once(session, "close"), new Promise((_, reject) => setTimeout(() => reject(new Error("not closed after GOAWAY")), 3000).unref())]);
    } finally {
      session.destroy();
      await server.close();
    }
  }, 15_000);
});

describe("REQUEST_READ_TIMEOUT_MS", () => {
  it("ends a call whose request never arrives in full, naming why, so its connection goes idle and is closed", async () => {
    const { server } = await startLogged({ CONNECTION_IDLE_MS: "1000", REQUEST_READ_TIMEOUT_MS: "1000" });
    const session = connectHttp2(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    try {
      // A Register whose message header promises 10 bytes, none of which ever come.
      const stream = session.request(
        { ":method": "POST", ":path": "/registry.v1.RegistryService/Register", "content-type": "application/grpc", te: "trailers" },
        { endStream: false },
      );
      stream.on("error", () => {});
      stream.resume();
      // Nothing was sent yet, so the status comes as a trailers-only response.
      const trailers = once(stream, "response");
      stream.write(Buffer.from([0, 0, 0, 0, 10]));
      const started = Date.now();
      const [headers] = (await Promise.race([
        trailers,
        new Promise((_, reject) => setTimeout(() => reject(new Error("the stalled call got no status within 4 s")), 4000).unref()),
      ])) as [Record<string, string>];
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(headers["grpc-status"]).toBe("4"); // DEADLINE_EXCEEDED
      expect(decodeURIComponent(headers["grpc-message"] ?? "")).toMatch(/request did not arrive in full within 1000 ms/);
      await Promise.race([once(session, "close"), new Promise((_, reject) => setTimeout(() => reject(new Error("the connection was not closed once idle")), 4000).unref())]);
    } finally {
      session.destroy();
      await server.close();
    }
  }, 15_000);
});

describe("ConnectionLimits: what counts as one address", () => {
  /** A stand-in for an accepted net.Socket: the limiter reads its address and closes or watches it. */
  function socketFrom(remoteAddress: string) {
    const socket = Object.assign(new EventEmitter(), { remoteAddress, destroyed: false, destroy() { this.destroyed = true; } });
    return socket as unknown as Socket & { destroyed: boolean };
  }

  it("counts an IPv6 /64 as one address, and IPv4 callers apart (also when a dual-stack listener maps them)", () => {
    const limits = new ConnectionLimits({ maxConnections: 100, maxConnectionsPerAddress: 2 });
    expect(limits.admit(socketFrom("2001:db8:1:2::a"))).toBeUndefined();
    expect(limits.admit(socketFrom("2001:db8:1:2::b"))).toBeUndefined();
    expect(limits.admit(socketFrom("2001:db8:1:2:ffff::c"))).toBe("MAX_CONNECTIONS_PER_ADDRESS");
    expect(limits.admit(socketFrom("2001:db8:1:3::a"))).toBeUndefined();
    for (const ip of ["::ffff:192.0.2.1", "::ffff:192.0.2.2", "::ffff:192.0.2.3", "192.0.2.1"]) expect(limits.admit(socketFrom(ip))).toBeUndefined();
    expect(limits.admit(socketFrom("::ffff:192.0.2.1"))).toBe("MAX_CONNECTIONS_PER_ADDRESS");
  });
});
