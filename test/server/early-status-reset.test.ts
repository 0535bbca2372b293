import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/app/start-server.js";
import { grpcFrame } from "../support/raw-grpc.js";
import { startStack } from "../support/stack.js";

/**
 * A client stream that sends one message and never ends its side; `ended`
 * resolves with its grpc-status and how the stream closed, `firstMessage`
 * once the server has sent one.
 */
function neverHalfClosed(
  session: ClientHttp2Session,
  path: string,
  message: Uint8Array,
  headers: Record<string, string> = {},
): { stream: ClientHttp2Stream; ended: Promise<{ code: number | undefined; rstCode: number }>; firstMessage: Promise<void> } {
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
  let code: number | undefined;
  const read = (h: Record<string, unknown>): void => {
    if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"]);
  };
  stream.on("response", read);
  stream.on("trailers", read);
  const firstMessage = new Promise<void>((resolve) => stream.once("data", () => resolve()));
  stream.on("data", () => {});
  stream.on("error", () => {});
  stream.write(grpcFrame(message));
  return { stream, ended: new Promise((resolve) => stream.on("close", () => resolve({ code, rstCode: stream.rstCode ?? -1 }))), firstMessage };
}

describe("calls the server has ended before their client ended its side", () => {
  let server: RunningServer | undefined;
  let session: ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.destroy();
    await server?.close();
  });

  it("are reset once their status is sent, so a peer that never ends its side keeps neither the stream nor its connection busy", async () => {
    server = await startStack({ CONNECTION_IDLE_MS: "1000" });
    session = connect(`http://127.0.0.1:${server.port}`);
    const goaway = new Promise<number>((resolve) => session!.on("goaway", (code) => resolve(code)));
    // Without credentials: a KeepAlive naming an instance (field 1), and an xDS stream's first request (empty).
    const keepAlive = neverHalfClosed(session, "/registry.v1.RegistryService/KeepAlive", Buffer.from([0x0a, 0x02, 0x69, 0x64]));
    const ads = neverHalfClosed(session, "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources", new Uint8Array(0));
    for (const ended of [await keepAlive.ended, await ads.ended]) {
      expect(ended).toEqual({ code: status.UNAUTHENTICATED, rstCode: constants.NGHTTP2_CANCEL });
    }
    // With nothing left in flight the connection is idle, and goes away as such.
    expect(await goaway).toBe(constants.NGHTTP2_NO_ERROR);
  });

  it("are reset after a unary refusal that came before the body: a message declared over MAX_MESSAGE_BYTES", async () => {
    server = await startStack();
    session = connect(`http://127.0.0.1:${server.port}`);
    const stream = session.request({ ":method": "POST", ":path": "/registry.v1.RegistryService/ListServices", "content-type": "application/grpc", te: "trailers" });
    let code: number | undefined;
    stream.on("response", (h) => (code = Number(h["grpc-status"])));
    stream.on("error", () => {});
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1_000_000, 1); // 1 MB promised, a few bytes sent, the side never ended
    stream.write(Buffer.concat([head, Buffer.alloc(16)]));
    await new Promise((resolve) => stream.on("close", resolve));
    expect({ code, rstCode: stream.rstCode }).toEqual({ code: status.RESOURCE_EXHAUSTED, rstCode: constants.NGHTTP2_CANCEL });
  });

  for (const portServesHttp of ["true", "false"]) {
    it(`are reset after the answers grpc-js gives alone: an unknown method, no gRPC content type (PORT_SERVES_HTTP=${portServesHttp})`, async () => {
      server = await startStack({ CONNECTION_IDLE_MS: "1000", PORT_SERVES_HTTP: portServesHttp });
      session = connect(`http://127.0.0.1:${server.port}`);
      const goaway = new Promise<number>((resolve) => session!.on("goaway", (code) => resolve(code)));
      const unknown = neverHalfClosed(session, "/registry.v1.RegistryService/NoSuchMethod", new Uint8Array(0));
      const plain = session.request({ ":method": "POST", ":path": "/registry.v1.RegistryService/ListServices", "content-type": "text/plain" });
      let httpStatus: number | undefined;
      plain.on("response", (h) => (httpStatus = Number(h[":status"])));
      plain.on("error", () => {});
      plain.write("x"); // never ended
      expect(await unknown.ended).toEqual({ code: status.UNIMPLEMENTED, rstCode: constants.NGHTTP2_CANCEL });
      await new Promise((resolve) => plain.on("close", resolve));
      expect({ httpStatus, rstCode: plain.rstCode }).toEqual({ httpStatus: 415, rstCode: constants.NGHTTP2_CANCEL });
      expect(await goaway).toBe(constants.NGHTTP2_NO_ERROR);
    });
  }

  it("are reset only after the status, when messages went first: a session ended because its instance was removed", async () => {
    server = await startStack();
    const answer = await server.registry.register({ serviceType: "api", host: "127.0.0.1", port: 9001, metadata: {}, healthCheck: { kind: "session", grpcService: "", tls: false, ttlMs: 0, timeoutMs: 0 } });
    session = connect(`http://127.0.0.1:${server.port}`);
    const id = Buffer.from(answer.instance.id);
    const held = neverHalfClosed(session, "/registry.v1.RegistryService/KeepAlive", Buffer.concat([Buffer.from([0x0a, id.length]), id]), {
      "x-service-id": answer.instance.id,
      "x-service-token": answer.token,
    });
    await held.firstMessage;
    await server.registry.unregister(answer.instance.id);
    // The status arrives (a reset first would leave none: gRPC clients then report INTERNAL), then the reset.
    expect(await held.ended).toEqual({ code: status.NOT_FOUND, rstCode: constants.NGHTTP2_CANCEL });
  });
});
