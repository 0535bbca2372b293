import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect as connectHttp2, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { request as httpsRequest } from "node:https";
import { connect as connectTcp, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls, type ConnectionOptions } from "node:tls";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetByTypeRequest, RegisterRequest, RegistryServiceClient, WatchInstancesRequest } from "../../gen/registry/v1/registry.js";
import { MAX_PIPELINED_REQUESTS, RegistryHttpServer, type RegistryHttpServerOptions } from "../../src/http/http-server.js";
import type { Route } from "../../src/http/routes.js";
import { RegistryMetrics } from "../../src/observability/registry-metrics.js";
import { PortListener } from "../../src/transport/port-listener.js";
import { call, keyAuth, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { makeTestPki, type TestPki } from "../support/test-pki.js";

/*
 * An outside test suite attacking the port shared by gRPC and HTTP/1.1 (and,
 * for comparison, the HTTP_PORT listener): garbage, idle and frozen peers,
 * resets, floods of connections, and shutdown with all of them open. What it
 * pins: nothing crashes the server, a well-behaved client is still served
 * while the attack runs, hostile connections end within a bound, and
 * shutdown keeps to its grace period.
 */

type Stack = Awaited<ReturnType<typeof startStack>>;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const AUTH = `Bearer ${TEST_KEY}`;
const GRACE_MS = 1000;

/** Resolves as `promise` does, or rejects saying `what` did not happen within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One raw client connection: what it received, and when it closed. */
interface Peer {
  readonly socket: Socket;
  /** Everything received so far, as latin1. */
  text(): string;
  bytes(): number;
  /** Resolves once the connection is closed (by either side). */
  readonly closed: Promise<void>;
}

function peer(socket: Socket): Peer {
  const chunks: Buffer[] = [];
  let bytes = 0;
  socket.on("data", (d: Buffer) => {
    chunks.push(d);
    bytes += d.length;
  });
  // Resets are part of the game.
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { socket, text: () => Buffer.concat(chunks).toString("latin1"), bytes: () => bytes, closed };
}

/** A connected plaintext peer. `frozen`: it never reads (a SIGSTOPped process, a full buffer). */
async function tcpPeer(port: number, options: { frozen?: boolean; allowHalfOpen?: boolean } = {}): Promise<Peer> {
  const socket = connectTcp({ port, host: "127.0.0.1", allowHalfOpen: options.allowHalfOpen ?? false });
  const p = peer(socket);
  if (options.frozen) socket.pause();
  await within(5000, `connecting to ${port}`, once(socket, "connect"));
  return p;
}

/** A peer that completed a TLS handshake. */
async function tlsPeer(port: number, options: ConnectionOptions): Promise<Peer> {
  const socket = connectTls({ port, host: "127.0.0.1", ...options });
  const p = peer(socket);
  await within(5000, "TLS handshake", once(socket, "secureConnect"));
  return p;
}

/**
 * For a peer that got the server's FIN but keeps its own side open: sends a
 * byte every 50 ms, which a server that closed the connection answers with a
 * reset (the second write then fails and the peer closes). Clear the interval it returns.
 */
function knockUntilClosed(p: Peer): NodeJS.Timeout {
  const knock = setInterval(() => {
    if (!p.socket.destroyed) p.socket.write("x");
  }, 50);
  void p.closed.then(() => clearInterval(knock));
  return knock;
}

/** Writes `chunks` on a fresh connection (then ends it, unless told not to) and resolves with all the server sent before closing. */
async function exchange(port: number, chunks: readonly (string | Buffer)[], options: { end?: boolean; ms?: number } = {}): Promise<string> {
  const p = await tcpPeer(port);
  for (const c of chunks) p.socket.write(c);
  if (options.end ?? true) p.socket.end();
  const sent = Buffer.concat(chunks.map((c) => (typeof c === "string" ? Buffer.from(c, "latin1") : c)));
  await within(options.ms ?? 5000, `the server closing a connection that sent ${JSON.stringify(sent.subarray(0, 40).toString("latin1"))}`, p.closed);
  return p.text();
}

/** The HTTP/2 frame types in `data` (a server's bytes, from its first frame on). */
function frameTypes(data: Buffer): number[] {
  const types: number[] = [];
  for (let at = 0; at + 9 <= data.length; at += 9 + data.readUIntBE(at, 3)) types.push(data[at + 3] as number);
  return types;
}
const GOAWAY = 0x7;

/** GET over a fresh HTTP/1.1 connection (no keep-alive pool): each call goes through the port's routing. */
function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, agent: false, headers: { authorization: AUTH } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A well-behaved gRPC client and a well-behaved HTTP client, each on a new connection, are served promptly. */
async function stillServes(port: number): Promise<void> {
  const client = new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const [overGrpc, overHttp] = await within(
      5000,
      "a well-behaved gRPC call and HTTP request during the attack",
      Promise.all([call(client, client.listServices, {}, keyAuth()), httpGet(port, "/healthz")]),
    );
    expect(overGrpc.services).toBeDefined();
    expect(overHttp.status).toBe(200);
  } finally {
    client.close();
  }
}

/** A deterministic PRNG (mulberry32): the fuzz cases are the same on every run. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** First chunks a hostile or broken client might send: noise, a preface gone wrong, garbage frames, mangled HTTP, TLS on plaintext. */
function fuzzCases(count: number, seed: number): Buffer[] {
  const rand = prng(seed);
  const int = (max: number): number => Math.floor(rand() * max);
  const noise = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const kinds: (() => Buffer)[] = [
    () => noise(1 + int(2048)),
    () => Buffer.concat([PREFACE.subarray(0, 1 + int(PREFACE.length - 1)), Buffer.from([0xfe]), noise(int(64))]),
    () => Buffer.concat([PREFACE, noise(1 + int(512))]),
    () => Buffer.from(`${["GET", "POST", "PRI", "DELETE", "XYZ"][int(5)]} /${noise(int(40)).toString("latin1")} HTTP/1.1\r\n${noise(int(200)).toString("latin1")}\r\n\r\n`, "latin1"),
    () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), noise(int(300))]),
  ];
  return Array.from({ length: count }, () => (kinds[int(kinds.length)] as () => Buffer)());
}

/** The gRPC length-prefixed message framing. */
function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

/** Starts a raw gRPC call on `session`; resolves with its grpc-status (from trailers or trailers-only headers) once it ends. */
function rawGrpcCall(session: ClientHttp2Session, path: string, body: Buffer, headers: Record<string, string> = {}): { stream: ClientHttp2Stream; status: Promise<string> } {
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", authorization: AUTH, ...headers });
  const status = new Promise<string>((resolve) => {
    let seen = "none";
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) seen = String(h["grpc-status"]);
      else if (h[":status"] !== 200) seen = `http ${String(h[":status"])}`;
    });
    stream.on("trailers", (h) => (seen = String(h["grpc-status"])));
    stream.on("error", () => {});
    stream.on("close", () => resolve(seen));
    stream.resume();
  });
  stream.end(body);
  return { stream, status };
}

/** ~10 MB of instances of type "big" (64 metadata entries of 500 bytes each): large answers, over HTTP and gRPC. */
async function seedBigInstances(server: Stack, count = 300): Promise<void> {
  const metadata = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, "v".repeat(500)]));
  for (let i = 0; i < count; i++) await server.registry.register({ serviceType: "big", host: "10.0.0.1", port: 1000 + i, metadata });
}

/**
 * A TCP relay to `port` that passes the client's bytes on but holds back the
 * server's until thawed: an HTTP/2 client behind it stops reading, as a
 * SIGSTOPped process does, while its requests still reach the server.
 */
async function frozenRelay(port: number): Promise<{ port: number; upstreams: Peer[]; thaw(): void; close(): void }> {
  const upstreams: Peer[] = [];
  const relay = createNetServer((down) => {
    const up = peer(connectTcp(port, "127.0.0.1"));
    up.socket.pause();
    upstreams.push(up);
    down.on("error", () => {});
    down.on("data", (d: Buffer) => up.socket.write(d));
    up.socket.on("data", (d: Buffer) => down.write(d));
    up.socket.on("close", () => down.destroy());
    down.on("close", () => up.socket.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (relay.address() as AddressInfo).port,
    upstreams,
    thaw: () => upstreams.forEach((u) => u.socket.resume()),
    close: () => relay.close(),
  };
}

/** The value of an unlabelled gauge in a Prometheus text exposition. */
function gauge(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

describe("the shared port under attack (plaintext, wired as serve wires it)", () => {
  let server: Stack;
  beforeAll(async () => {
    server = await startStack({ SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  });
  afterAll(async () => {
    await server.close();
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("survives 150 fuzzed first chunks on %s, closing every connection", async (_label, portOf) => {
    const port = portOf();
    const cases = fuzzCases(150, 0x5eed);
    for (let at = 0; at < cases.length; at += 25) {
      await Promise.all(cases.slice(at, at + 25).map((chunk) => exchange(port, [chunk])));
    }
    await stillServes(server.port);
  });

  it.each([
    ["a frame longer than SETTINGS_MAX_FRAME_SIZE", Buffer.from([0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1])],
    ["DATA on stream 0", Buffer.from([0, 0, 4, 0x0, 0x0, 0, 0, 0, 0, 1, 2, 3, 4])],
    ["HEADERS whose HPACK block is garbage", Buffer.from([0, 0, 4, 0x1, 0x5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])],
    ["SETTINGS on a stream", Buffer.from([0, 0, 6, 0x4, 0x0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6])],
    ["an unknown frame type on stream 0, then zeros", Buffer.concat([Buffer.from([0, 0, 1, 0xee, 0, 0, 0, 0, 0, 0]), Buffer.alloc(64)])],
  ])("answers the HTTP/2 preface then %s with GOAWAY and closes", async (_label, frames) => {
    // The client keeps its side open: the server must close on its own.
    const answer = await exchange(server.port, [PREFACE, frames], { end: false, ms: 3000 });
    expect(frameTypes(Buffer.from(answer, "latin1"))).toContain(GOAWAY);
    await stillServes(server.port);
  });

  it("keeps serving through node:http2 abuse: rapid resets, non-gRPC requests, bad gRPC framing, huge headers", async () => {
    const session = connectHttp2(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    try {
      // Rapid reset (CVE-2023-44487 style): streams opened and cancelled at once.
      for (let i = 0; i < 300; i++) {
        const s = session.request({ ":method": "POST", ":path": "/registry.v1.RegistryService/ListServices", "content-type": "application/grpc", te: "trailers" });
        s.on("error", () => {});
        s.close(h2.NGHTTP2_CANCEL);
      }
      const fresh = connectHttp2(`http://127.0.0.1:${server.port}`);
      fresh.on("error", () => {});
      try {
        const notGrpc = rawGrpcCall(fresh, "/registry.v1.RegistryService/ListServices", Buffer.from("hello"), { "content-type": "text/plain" });
        const compressedNoEncoding = rawGrpcCall(fresh, "/registry.v1.RegistryService/ListServices", Buffer.from([1, 0, 0, 0, 3, 1, 2, 3]));
        const hugeLength = rawGrpcCall(fresh, "/registry.v1.RegistryService/ListServices", Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
        const notProtobuf = rawGrpcCall(fresh, "/registry.v1.RegistryService/Register", grpcFrame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
        const unknownMethod = rawGrpcCall(fresh, "/no.Such/Method", grpcFrame(new Uint8Array()));
        const statuses = await within(5000, "answers to malformed gRPC calls", Promise.all([notGrpc, compressedNoEncoding, hugeLength, notProtobuf, unknownMethod].map((c) => c.status)));
        // 415 for a non-gRPC content type; INTERNAL, RESOURCE_EXHAUSTED, INTERNAL, UNIMPLEMENTED for the rest.
        expect(statuses).toEqual(["http 415", "13", "8", "13", "12"]);
        // Headers far beyond any sane size: refused, the session (or at least the port) survives.
        const huge = rawGrpcCall(fresh, "/registry.v1.RegistryService/ListServices", grpcFrame(new Uint8Array()), { "x-junk": "j".repeat(100_000) });
        await within(5000, "the call with 100 KB of headers ending", huge.status);
      } finally {
        fresh.destroy();
      }
    } finally {
      session.destroy();
    }
    await stillServes(server.port);
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("answers pipelined HTTP/1.1 requests on %s in order", async (_label, portOf) => {
    const requests = ["/healthz", "/services", "/services/none", "/healthz", "/metrics"].map((p) => `GET ${p} HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\n\r\n`);
    const answer = await exchange(portOf(), [`${requests.join("")}GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`], { end: false });
    expect([...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1])).toEqual(["200", "200", "200", "200", "200", "200"]);
  });

  it("answers `Upgrade: h2c` as plain HTTP/1.1 (no 101), and CONNECT by closing", async () => {
    const upgrade = await exchange(server.port, [
      "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    ], { end: false });
    expect(upgrade).toMatch(/^HTTP\/1\.1 200 /);
    expect(upgrade).not.toMatch(/101 Switching/);
    expect(await exchange(server.port, ["CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"], { end: false })).toBe("");
    await stillServes(server.port);
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("refuses a huge first chunk on %s and closes", async (_label, portOf) => {
    const port = portOf();
    // 1 MiB with no line end, and a 64 KiB header: node:http gives up at 16 KiB of headers
    // (HPE_HEADER_OVERFLOW, which the registry answers 400 where node:http alone would say 431).
    expect(await exchange(port, [Buffer.alloc(1 << 20, 0x41)], { end: false })).toMatch(/^HTTP\/1\.1 (400|431) /);
    expect(await exchange(port, [`GET / HTTP/1.1\r\nx-big: ${"b".repeat(64 << 10)}\r\n\r\n`], { end: false })).toMatch(/^HTTP\/1\.1 (400|431) /);
  });

  it("closes a connection whose 1 MiB first chunk is the HTTP/2 preface then junk", async () => {
    const answer = await exchange(server.port, [Buffer.concat([PREFACE, Buffer.alloc(1 << 20, 0xee)])], { end: false });
    expect(frameTypes(Buffer.from(answer, "latin1"))).toContain(GOAWAY);
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("answers a client on %s that half-closes right after its request", async (_label, portOf) => {
    const answer = await exchange(portOf(), ["GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"], { end: true });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain("SERVING");
  });

  it("shrugs off resets mid-sniff, mid-preface, mid-headers, mid-body and mid-answer", async () => {
    await seedBigInstances(server, 100);
    const resets: [string, (string | Buffer)[]][] = [
      ["mid-sniff", ["PRI * HT"]],
      ["after the preface", [PREFACE]],
      ["after the preface and SETTINGS", [PREFACE, Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]],
      ["mid-headers", ["GET /healthz HTTP/1.1\r\nhost:"]],
      ["mid-body", [`POST /service HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"serv`]],
      ["mid-answer", [`GET /services/big HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\n\r\n`]],
    ];
    await Promise.all(
      resets.map(async ([, chunks]) => {
        const p = await tcpPeer(server.port);
        for (const c of chunks) p.socket.write(c);
        // Something (or nothing) comes back; then the client resets.
        await Promise.race([once(p.socket, "data"), new Promise((r) => setImmediate(r))]);
        p.socket.resetAndDestroy();
        await p.closed;
      }),
    );
    await stillServes(server.port);
  });

  it("serves well-behaved clients while 240 hostile connections sit open (silent, half a preface, half a request, preface only)", async () => {
    const kinds: (string | Buffer | undefined)[] = [undefined, "PRI * HTTP/2", "GET /healthz HTTP/1.1\r\nhost: x\r\n", PREFACE];
    const hostile = await Promise.all(
      Array.from({ length: 240 }, async (_, i) => {
        const p = await tcpPeer(server.port);
        const first = kinds[i % kinds.length];
        if (first !== undefined) p.socket.write(first);
        return p;
      }),
    );
    try {
      await stillServes(server.port);
      await stillServes(server.port);
    } finally {
      for (const p of hostile) p.socket.destroy();
    }
    await within(5000, "the hostile connections closing", Promise.all(hostile.map((p) => p.closed)));
    await stillServes(server.port);
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("closes a connection on %s that pipelines 2,000 /metrics requests in one go, answering at most MAX_PIPELINED_REQUESTS", async (_label, portOf) => {
    // Without the cap each request was answered into memory (a /metrics page
    // apiece) behind a peer that need not read: GBs from a few connections.
    const p = await tcpPeer(portOf());
    p.socket.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(2000));
    await within(5000, "the server closing the connection", p.closed);
    const answered = [...p.text().matchAll(/^HTTP\/1\.1 200 /gm)].length;
    expect(answered).toBeLessThanOrEqual(MAX_PIPELINED_REQUESTS);
    // As many as the cap allows are all answered, in order, on a connection that stays open.
    const requests = `GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n`.repeat(MAX_PIPELINED_REQUESTS - 1);
    const answer = await exchange(portOf(), [`${requests}GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`], { end: false });
    expect([...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1])).toEqual(Array(MAX_PIPELINED_REQUESTS).fill("200"));
    await stillServes(server.port);
  });

  it("serves others while a peer pipelines 500 /metrics requests and never reads", async () => {
    const frozen = await tcpPeer(server.port, { frozen: true });
    frozen.socket.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(500));
    try {
      await stillServes(server.port);
      await stillServes(server.port);
    } finally {
      frozen.socket.destroy();
    }
  });
});

describe("frozen peers and shutdown (plaintext)", () => {
  it("ends a gRPC watch stream whose reader froze, after WATCH_STALL_TIMEOUT_MS, and keeps serving", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: String(GRACE_MS), WATCH_STALL_TIMEOUT_MS: "300" });
    const relay = await frozenRelay(server.port);
    const session = connectHttp2(`http://127.0.0.1:${relay.port}`);
    session.on("error", () => {});
    try {
      await seedBigInstances(server);
      const watchStreams = async (): Promise<number> => gauge((await httpGet(server.httpPort as number, "/metrics")).body, "registry_watch_streams");
      const watch = rawGrpcCall(session, "/registry.v1.RegistryService/WatchInstances", grpcFrame(WatchInstancesRequest.encode({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} }).finish()));
      // Its snapshot (~10 MB) cannot go out: the stream stalls, and is ended.
      await expect.poll(watchStreams, { timeout: 5000, message: "the watch stream starting" }).toBe(1);
      await expect.poll(watchStreams, { timeout: 5000, message: "the stalled watch stream being ended" }).toBe(0);
      await stillServes(server.port);
      relay.thaw();
      // Once the client reads again, it learns why: RESOURCE_EXHAUSTED (8), resume from since_revision.
      expect(await within(10_000, "the thawed watch stream ending", watch.status)).toBe("8");
    } finally {
      session.destroy();
      relay.close();
      await server.close();
    }
  });

  it("ends a GET /watch (server-sent events) stream whose reader froze, after WATCH_STALL_TIMEOUT_MS, and keeps serving", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: String(GRACE_MS), WATCH_STALL_TIMEOUT_MS: "300" });
    const relay = await frozenRelay(server.port);
    try {
      await seedBigInstances(server);
      const reader = peer(connectTcp(relay.port, "127.0.0.1"));
      reader.socket.write(`GET /watch HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\nconnection: close\r\n\r\n`);
      await expect.poll(() => relay.upstreams.length, { timeout: 5000, message: "the frozen reader connecting" }).toBe(1);
      // Its snapshot (~10 MB) cannot go out. Nothing outside the server shows the stall
      // timer firing while the reader is frozen: wait well past it, then read.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await stillServes(server.port);
      relay.thaw();
      // The stream ended while frozen: once read, it says why and where to resume, and the response ends.
      await within(10_000, "the thawed /watch response ending", reader.closed);
      const text = reader.text();
      const error = /event: error\r?\ndata: (\{.*\})/.exec(text.replace(/\r\n[0-9a-f]+\r\n/g, ""));
      expect(error, text.slice(-400)).not.toBeNull();
      const body = JSON.parse(error![1]!) as { code: string; message: string; resumeRevision: number };
      expect(body.code).toBe("RESOURCE_EXHAUSTED");
      expect(body.message).toMatch(/^watch stream accepted nothing for 300 ms; resume with sinceRevision=\d+$/);
      expect(body.resumeRevision).toBe(Number(/sinceRevision=(\d+)/.exec(body.message)![1]));
      // Not the whole snapshot: the stream stopped taking events when the reader stopped reading.
      expect(text).not.toContain("event: synced");
    } finally {
      relay.close();
      await server.close();
    }
  });

  it("completes close() within the grace period with hostile connections of every kind open, and cuts them all", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    await seedBigInstances(server);
    const relay = await frozenRelay(server.port);
    const session = connectHttp2(`http://127.0.0.1:${relay.port}`);
    session.on("error", () => {});
    const frozenGrpc = rawGrpcCall(session, "/registry.v1.RegistryService/GetByType", grpcFrame(Buffer.from([0x0a, 3, ...Buffer.from("big")])));
    const hostile: Record<string, Peer> = {
      silent: await tcpPeer(server.port),
      halfPreface: await tcpPeer(server.port),
      prefaceOnly: await tcpPeer(server.port),
      halfRequest: await tcpPeer(server.port),
      bodyInFlight: await tcpPeer(server.port),
      frozenReader: await tcpPeer(server.port, { frozen: true }),
      frozenPipeliner: await tcpPeer(server.port, { frozen: true }),
      idleKeepAlive: await tcpPeer(server.port),
      halfOpenAfter400: await tcpPeer(server.port, { allowHalfOpen: true }),
      h2Idle: await tcpPeer(server.port),
    };
    hostile.halfPreface?.socket.write("PRI * HTTP/2.0\r\n");
    hostile.prefaceOnly?.socket.write(PREFACE);
    hostile.halfRequest?.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    hostile.bodyInFlight?.socket.write(`POST /service HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
    hostile.frozenReader?.socket.write(`GET /services/big HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\n\r\n`);
    hostile.frozenPipeliner?.socket.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(300));
    hostile.idleKeepAlive?.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    hostile.halfOpenAfter400?.socket.write(Buffer.from([0, 1, 2, 0xff, 13, 10, 13, 10]));
    hostile.h2Idle?.socket.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]));
    // Everything has reached the server: the answers that can come have come.
    await within(5000, "the idle keep-alive answer", once(hostile.idleKeepAlive?.socket as Socket, "data"));
    await within(5000, "the 400 to the half-open peer", once(hostile.halfOpenAfter400?.socket as Socket, "end"));
    await expect.poll(() => relay.upstreams.length, { timeout: 5000, message: "the frozen gRPC client connecting" }).toBe(1);
    await stillServes(server.port);

    const started = Date.now();
    await within(GRACE_MS + 2000, "close() with hostile connections open", server.close());
    expect(Date.now() - started).toBeLessThan(GRACE_MS + 1500);
    relay.thaw();
    for (const p of Object.values(hostile)) p.socket.resume();
    // The half-open peer got its FIN long ago: only by sending can it learn (a reset) that the server let go.
    const knock = knockUntilClosed(hostile.halfOpenAfter400 as Peer);
    await within(5000, "every hostile connection being cut", Promise.all([...Object.values(hostile), ...relay.upstreams].map((p) => p.closed)));
    clearInterval(knock);
    expect(hostile.frozenReader?.text()).not.toMatch(/\r\n0\r\n\r\n$/); // the 10 MB answer was cut, not finished
    expect(await frozenGrpc.status).not.toBe("0");
    session.destroy();
    relay.close();
  });
});

describe("the shared port under attack over TLS", () => {
  let pki: TestPki;
  let server: Stack;
  beforeAll(async () => {
    pki = await makeTestPki();
    server = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  });
  afterAll(async () => {
    await server.close();
  });

  /** A well-behaved gRPC (ALPN h2) and HTTPS (ALPN http/1.1) client are served. */
  async function stillServesTls(port: number): Promise<void> {
    const client = new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createSsl(Buffer.from(pki.ca.cert)));
    const https = new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, path: "/healthz", ca: pki.ca.cert, agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end();
    });
    try {
      const [overGrpc, status] = await within(5000, "well-behaved TLS clients during the attack", Promise.all([call(client, client.listServices, {}, keyAuth()), https]));
      expect(overGrpc.services).toBeDefined();
      expect(status).toBe(200);
    } finally {
      client.close();
    }
  }

  it("closes fuzzed TLS junk, and plaintext HTTP or a plaintext HTTP/2 preface at once (no 10 s handshake wait), and serves on", async () => {
    const junk = fuzzCases(60, 0x7715);
    await Promise.all(junk.map((chunk) => exchange(server.port, [chunk])));
    for (const chunk of [Buffer.from("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"), PREFACE, Buffer.alloc(5000, 0x16)]) {
      // Without ending our side: the server must give up on its own, well before its handshake timeout.
      expect(await exchange(server.port, [chunk], { end: false, ms: 2000 })).toBe("");
    }
    await stillServesTls(server.port);
  });

  it("closes an h2 (ALPN) connection that speaks HTTP/1.1, and answers 400 to an http/1.1 (ALPN) one that sends the preface", async () => {
    const h2peer = await tlsPeer(server.port, { ca: pki.ca.cert, ALPNProtocols: ["h2"] });
    h2peer.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    await within(3000, "the h2 connection that spoke HTTP/1.1 being closed", h2peer.closed);
    expect(frameTypes(Buffer.from(h2peer.text(), "latin1"))).toContain(GOAWAY);
    const h1peer = await tlsPeer(server.port, { ca: pki.ca.cert, ALPNProtocols: ["http/1.1"] });
    h1peer.socket.write(PREFACE);
    await within(3000, "the http/1.1 connection that sent the preface being closed", h1peer.closed);
    expect(h1peer.text()).toMatch(/^HTTP\/1\.1 400 /);
    await stillServesTls(server.port);
  });

  it("completes close() within the grace period with connections mid-handshake and mid-sniff over TLS", async () => {
    const own = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    const midHandshake = await Promise.all(Array.from({ length: 20 }, () => tcpPeer(own.port)));
    // Half a ClientHello.
    for (const p of midHandshake.slice(10)) p.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    const noAlpnSilent = await tlsPeer(own.port, { ca: pki.ca.cert });
    const h2Silent = await tlsPeer(own.port, { ca: pki.ca.cert, ALPNProtocols: ["h2"] });
    const h1Partial = await tlsPeer(own.port, { ca: pki.ca.cert, ALPNProtocols: ["http/1.1"] });
    h1Partial.socket.write("GET /healthz HTTP/1.1\r\n");
    const started = Date.now();
    await within(GRACE_MS + 2000, "close() with TLS connections mid-handshake", own.close());
    expect(Date.now() - started).toBeLessThan(GRACE_MS + 1500);
    await within(3000, "every such connection being cut", Promise.all([...midHandshake, noAlpnSilent, h2Silent, h1Partial].map((p) => p.closed)));
  });
});

describe("the listener and node:http timeouts, shared port vs HTTP_PORT", () => {
  const logger = pino({ level: "silent" });

  it("on the shared port: a silent peer is closed after the first-byte timeout, a stalled request after the header timeout (408)", async () => {
    const http = new RegistryHttpServer({ routes: [], logger, headersTimeoutMs: 300 });
    const listener = new PortListener({ grpc: (s) => s.destroy(), http: (s) => http.acceptConnection(s), firstByteTimeoutMs: 300 });
    const port = await listener.listen("127.0.0.1", 0);
    try {
      const silent = await tcpPeer(port);
      const halfPreface = await tcpPeer(port);
      halfPreface.socket.write("PRI * HTTP/2.0\r\n");
      const stalled = await tcpPeer(port);
      stalled.socket.write("G");
      await within(3000, "the silent and half-preface peers being closed", Promise.all([silent.closed, halfPreface.closed]));
      expect(silent.text() + halfPreface.text()).toBe("");
      await within(4000, "the stalled request being closed", stalled.closed);
      expect(stalled.text()).toMatch(/^HTTP\/1\.1 408 /);
      expect(listener.undecidedCount).toBe(0);
    } finally {
      const closed = listener.close();
      await http.close(0);
      listener.destroyConnections();
      await closed;
    }
  });

  it("on HTTP_PORT (no sniffing): a silent peer gets node:http's 408 after the header timeout", async () => {
    const http = new RegistryHttpServer({ routes: [], logger, headersTimeoutMs: 300 });
    const port = await http.listen("127.0.0.1", 0);
    try {
      const silent = await tcpPeer(port);
      await within(4000, "the silent peer being closed", silent.closed);
      expect(silent.text()).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await http.close(0);
    }
  });

  it("a request whose body trickles past the request timeout gets 408, and is counted as 408, not as a client gone (499)", async () => {
    const metrics = new RegistryMetrics({ defaultMetrics: false });
    const routes: Route[] = [{ method: "POST", template: "/slow", handle: async ({ req }) => {
      for await (const _ of req);
      return { status: 200, json: {} };
    } }];
    const http = new RegistryHttpServer({ routes, logger, metrics, headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const port = await http.listen("127.0.0.1", 0);
    try {
      const trickler = await tcpPeer(port);
      trickler.socket.write("POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789");
      await within(4000, "the trickling request being answered and closed", trickler.closed);
      expect(trickler.text()).toMatch(/^HTTP\/1\.1 408 /);
      const counted = (await metrics.exposition()).split("\n").filter((l) => l.startsWith("registry_http_requests_total{"));
      expect(counted).toEqual([`registry_http_requests_total{route="/slow",method="POST",code="408"} 1`]);
    } finally {
      await http.close(0);
    }
  });

  it("over TLS: a peer that trickles half a ClientHello is closed at the handshake timeout, which is a deadline", async () => {
    const pki = await makeTestPki();
    const listener = new PortListener({
      grpc: (s) => s.destroy(),
      http: (s) => s.destroy(),
      tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) },
      firstByteTimeoutMs: 400,
    });
    const port = await listener.listen("127.0.0.1", 0);
    try {
      const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Buffer.alloc(32, 7)]);
      const trickler = await tcpPeer(port);
      const started = Date.now();
      let sent = 0;
      const drip = setInterval(() => {
        if (sent < hello.length && !trickler.socket.destroyed) trickler.socket.write(hello.subarray(sent, ++sent));
      }, 100);
      try {
        await within(3000, "the trickling TLS peer being closed", trickler.closed);
      } finally {
        clearInterval(drip);
      }
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      const closed = listener.close();
      listener.destroyConnections();
      await closed;
    }
  });
});

describe("a real server process under attack", () => {
  const ROOT = fileURLToPath(new URL("../../", import.meta.url));

  /** `serve` as a child process on ephemeral loopback ports; resolves once its start-up line names its port. */
  async function spawnServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; output(): string; exited: Promise<number | string> }> {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve"], {
      cwd: ROOT,
      env: { ...process.env, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", STORE: "memory", HEALTH_CHECKS: "false", LOG_LEVEL: "info", SERVICE_REGISTRATION_KEY: TEST_KEY, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
    const port = await within(
      15_000,
      "the server process starting",
      new Promise<number>((resolve, reject) => {
        const look = (): void => {
          for (const line of out.split("\n")) {
            try {
              const entry = JSON.parse(line) as { port?: unknown; msg?: unknown };
              if (typeof entry.port === "number" && typeof entry.msg === "string" && entry.msg.includes("serving")) return resolve(entry.port);
            } catch {
              // not a JSON line (yet)
            }
          }
        };
        child.stdout?.on("data", look);
        void exited.then((code) => reject(new Error(`server exited (${code}) before serving:\n${out}`)));
      }),
    );
    return { child, port, output: () => out, exited };
  }

  it("neither crashes nor hangs under attack, and exits 0 on SIGTERM within its grace period", async () => {
    const server = await spawnServer({ SHUTDOWN_GRACE_MS: String(GRACE_MS), DATA_DIR: join(mkdtempSync(join(tmpdir(), "registry-adversary-")), "data") });
    try {
      for (let at = 0, cases = fuzzCases(60, 0xbad); at < cases.length; at += 20) await Promise.all(cases.slice(at, at + 20).map((c) => exchange(server.port, [c])));
      const held = [
        await tcpPeer(server.port),
        await tcpPeer(server.port),
        await tcpPeer(server.port),
        await tcpPeer(server.port, { frozen: true }),
        await tcpPeer(server.port),
      ];
      held[1]?.socket.write("PRI * HTTP/2.0");
      held[2]?.socket.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]));
      held[3]?.socket.write("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(300));
      held[4]?.socket.write(`POST /service HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
      await stillServes(server.port);
      expect(server.child.exitCode).toBeNull();

      const started = Date.now();
      server.child.kill("SIGTERM");
      expect(await within(GRACE_MS + 4000, "the process exiting on SIGTERM", server.exited)).toBe(0);
      expect(Date.now() - started).toBeLessThan(GRACE_MS + 3000);
      for (const p of held) p.socket.resume();
      await within(3000, "the held connections being cut", Promise.all(held.map((p) => p.closed)));
      const lines = server.output().split("\n").filter((l) => l.trim() !== "");
      const problems = lines.filter((l) => {
        try {
          return ((JSON.parse(l) as { level?: number }).level ?? 0) >= 50;
        } catch {
          return /uncaught|unhandled|Error|^\s+at /i.test(l);
        }
      });
      expect(problems, server.output()).toEqual([]);
      expect(server.output()).toContain('"stopped"');
    } finally {
      server.child.kill("SIGKILL");
    }
  });
});

const logger = pino({ level: "silent" });

describe("an error answer (400, 408, gRPC-only 404) closes the connection instead of leaving it half-open", () => {
  // A peer that never closes its side (SIGSTOPped, or allowHalfOpen) and never writes again: only
  // close() tells whether the server still holds the connection (it then waits out its grace period).
  it("HTTP_PORT: after node:http's 408 to a silent peer, the server holds nothing", async () => {
    const http = new RegistryHttpServer({ routes: [], logger, headersTimeoutMs: 300 });
    const port = await http.listen("127.0.0.1", 0);
    const p = await tcpPeer(port, { allowHalfOpen: true });
    await within(3000, "the 408 and the server's FIN", once(p.socket, "end"));
    expect(p.text()).toMatch(/^HTTP\/1\.1 408 /);
    const started = Date.now();
    await http.close(5000);
    expect(Date.now() - started, "close() waited for the connection answered 408").toBeLessThan(1000);
    p.socket.destroy();
  });

  it("PORT: after the 400 to a peer that sent garbage, the server holds nothing", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: "5000" });
    const p = await tcpPeer(server.port, { allowHalfOpen: true });
    p.socket.write(Buffer.from([0, 1, 2, 0xff, 13, 10, 13, 10]));
    await within(3000, "the 400 and the server's FIN", once(p.socket, "end"));
    expect(p.text()).toMatch(/^HTTP\/1\.1 400 /);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started, "close() waited for the connection answered 400").toBeLessThan(1000);
    p.socket.destroy();
  });

  it("PORT_SERVES_HTTP=false: an HTTP/1.1 peer that keeps its side open after the 404 is let go", async () => {
    const server = await startStack({ PORT_SERVES_HTTP: "false", SHUTDOWN_GRACE_MS: "1000" });
    try {
      const p = await tcpPeer(server.port, { allowHalfOpen: true });
      p.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
      await within(3000, "the 404 and the server's FIN", once(p.socket, "end"));
      expect(p.text()).toMatch(/^HTTP\/1\.1 404 /);
      // A server that let go answers the knock with a reset; one that holds the connection swallows it.
      knockUntilClosed(p);
      await within(3000, "the server letting go of the refused connection", p.closed);
    } finally {
      await server.close();
    }
  });
});

describe("a peer that stops reading does not pin a large HTTP answer forever", () => {
  it("cuts a frozen reader after the idle timeout", async () => {
    const big = "x".repeat(10 << 20);
    const options = { routes: [{ method: "GET", template: "/big", handle: () => ({ status: 200, text: big }) }], logger, idleTimeoutMs: 500 } as RegistryHttpServerOptions;
    const http = new RegistryHttpServer(options);
    const port = await http.listen("127.0.0.1", 0);
    try {
      const frozen = await tcpPeer(port, { frozen: true });
      frozen.socket.write("GET /big HTTP/1.1\r\nhost: x\r\n\r\n");
      // The peer reads nothing for 4x the idle timeout (what is tested is the passing of time), then reads again.
      await new Promise((r) => setTimeout(r, 2000));
      frozen.socket.resume();
      await within(3000, "the frozen reader's connection ending once it reads again", frozen.closed);
      expect(frozen.bytes()).toBeLessThan(big.length);
    } finally {
      await http.close(0);
    }
  });
});

describe("over TLS without ALPN, an HTTP/2 preface is served as HTTP/2", () => {
  let pki: TestPki;
  let server: Stack;
  beforeAll(async () => {
    pki = await makeTestPki();
    server = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, SHUTDOWN_GRACE_MS: "1000" });
  });
  afterAll(async () => {
    await server.close();
  });

  // The whole client preface (RFC 9113 §3.4): the magic and a SETTINGS frame; the listener hands
  // a connection to HTTP/2 only once both are in.
  const clientPreface = Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]);
  it.each([
    ["in one TLS record", [clientPreface]],
    ["split across TLS records", [clientPreface.subarray(0, 10), clientPreface.subarray(10, 17), clientPreface.subarray(17, 28), clientPreface.subarray(28)]],
  ])("answers a preface sent %s with HTTP/2 SETTINGS", async (_label, pieces) => {
    const p = await tlsPeer(server.port, { ca: pki.ca.cert }); // no ALPN offered
    for (const piece of pieces) {
      p.socket.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    await within(3000, "the server's first bytes", once(p.socket, "data"));
    expect(p.text()).not.toMatch(/^HTTP\/1\.0 403/);
    expect(frameTypes(Buffer.from(p.text(), "latin1"))[0]).toBe(0x4);
    p.socket.destroy();
  });
});

describe("a peer trickling the preface is cut at the first-byte deadline", () => {
  it("closes it at firstByteTimeoutMs after it connected", async () => {
    const listener = new PortListener({ grpc: (s) => s.destroy(), http: (s) => s.destroy(), firstByteTimeoutMs: 300 });
    const port = await listener.listen("127.0.0.1", 0);
    try {
      const p = await tcpPeer(port);
      const started = Date.now();
      let sent = 0;
      const drip = setInterval(() => {
        if (sent < PREFACE.length - 1 && !p.socket.destroyed) p.socket.write(PREFACE.subarray(sent, ++sent));
      }, 100);
      try {
        await within(5000, "the trickling peer being closed", p.closed);
      } finally {
        clearInterval(drip);
      }
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await listener.close();
    }
  });
});

describe("TLS connections mid-handshake are cut on close and never served after shutdown began", () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
  });

  it("PortListener.close() closes a connection still in its TLS handshake", async () => {
    const listener = new PortListener({ grpc: (s) => s.destroy(), http: (s) => s.destroy(), tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) } });
    const port = await listener.listen("127.0.0.1", 0);
    const p = await tcpPeer(port);
    await within(1000, "PortListener.close() with a connection mid-handshake (handshake timeout 10 s)", listener.close());
    await within(1000, "the mid-handshake connection being closed", p.closed);
  });

  it("refuses a Register sent on a connection whose handshake completes after shutdown began", async () => {
    const server = await startStack({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile, SHUTDOWN_GRACE_MS: "1500" });
    // An HTTP request in flight keeps the grace period running.
    const inFlight = await tlsPeer(server.port, { ca: pki.ca.cert, ALPNProtocols: ["http/1.1"] });
    inFlight.socket.write(`POST /service HTTP/1.1\r\nhost: x\r\nauthorization: ${AUTH}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
    const raw = connectTcp(server.port, "127.0.0.1");
    raw.on("error", () => {});
    await once(raw, "connect");
    const closing = server.close();
    const late = connectTls({ socket: raw, ca: pki.ca.cert, servername: "localhost", ALPNProtocols: ["h2"] });
    late.on("error", () => {});
    const handshake = await within(3000, "the late handshake ending one way or the other", new Promise<string>((resolve) => {
      late.once("secureConnect", () => resolve("completed"));
      late.once("close", () => resolve("refused"));
    }));
    if (handshake === "completed") {
      const session = connectHttp2("https://localhost", { createConnection: () => late });
      session.on("error", () => {});
      const register = rawGrpcCall(session, "/registry.v1.RegistryService/Register", grpcFrame(RegisterRequest.encode(RegisterRequest.fromPartial({ serviceType: "late", host: "10.0.0.9", port: 9 })).finish()));
      expect(await within(3000, "the late Register ending", register.status)).not.toBe("0");
      session.destroy();
    }
    await closing;
    expect(server.registry.size).toBe(0);
  });
});

describe("an HTTP/2 peer that goes quiet is cut by keepalive", () => {
  it("closes connections that went quiet after the preface, after SETTINGS, or after a GOAWAY, within the keepalive bound", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: "1000" });
    try {
      const quiet = [
        PREFACE,
        Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]),
        // A SETTINGS frame of a bad length: answered GOAWAY(FRAME_SIZE_ERROR), but never closed (node:http2 alone does the same).
        Buffer.concat([PREFACE, Buffer.from([0, 0, 5, 0x4, 0x0, 0, 0, 0, 0, 1, 2, 3, 4, 5])]),
      ];
      const peers = await Promise.all(quiet.map(async (bytes) => {
        const p = await tcpPeer(server.port);
        p.socket.write(bytes);
        return p;
      }));
      // Proposed: keepalive_time 10 s + keepalive_timeout 5 s: a peer that never answers a PING is cut.
      await within(17_000, "the quiet HTTP/2 connections being closed", Promise.all(peers.map((p) => p.closed)));
    } finally {
      await server.close();
    }
  }, 20_000);
});

describe("an error answer to a bodyless request keeps the connection", () => {
  let server: Stack;
  beforeAll(async () => {
    server = await startStack({ SHUTDOWN_GRACE_MS: "1000" });
  });
  afterAll(async () => {
    await server.close();
  });

  it.each([
    ["PORT", () => server.port],
    ["HTTP_PORT", () => server.httpPort as number],
  ])("answers a pipelined request after a 404 and a 405 on %s", async (_label, portOf) => {
    const answer = await exchange(portOf(), ["GET /nope HTTP/1.1\r\nhost: x\r\n\r\nDELETE /services HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"], { end: false });
    // Today the 404 comes with "connection: close", and the two requests after it are dropped.
    expect([...answer.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1])).toEqual(["404", "405", "200"]);
  });
});

describe("an oversized header block is answered 431", () => {
  it("says 431 Request Header Fields Too Large", async () => {
    const server = await startStack({ SHUTDOWN_GRACE_MS: "1000" });
    try {
      expect(await exchange(server.port, [`GET / HTTP/1.1\r\nx-big: ${"b".repeat(64 << 10)}\r\n\r\n`], { end: false })).toMatch(/^HTTP\/1\.1 431 /);
    } finally {
      await server.close();
    }
  });
});
