import http2 from "node:http2";
import { createServer } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GetByTypeRequest, GetByTypeResponse } from "../../gen/registry/v1/registry.js";
import { getByTypeRaw } from "../../bench/load/grpc-ops.js";
import { RawGrpcClient, closeRawGrpcClients, rawGrpcClient } from "../../bench/load/raw-grpc-client.js";
import { BENCH_KEY } from "../../bench/lib/workload.js";
import { startHarness, type Harness } from "../support/registry-harness.js";

/** The bench's raw HTTP/2 gRPC client against a real registry server: it must read what grpc-js clients read. */
describe("RawGrpcClient against the registry", () => {
  let h: Harness;
  let client: RawGrpcClient;
  beforeEach(async () => {
    h = await startHarness({ keys: [BENCH_KEY] });
    client = await RawGrpcClient.connect(h.address);
  });
  afterEach(async () => {
    client.close();
    await h.close();
  });

  it("reads a GetByType answer whole, in many DATA frames", async () => {
    const metadata = { zone: "eu-1", build: "x".repeat(200) };
    for (let i = 0; i < 400; i++) await h.registry.register({ serviceType: "api", host: `10.0.${i >> 8}.${i & 255}`, port: 8080, metadata });
    const bytes = await getByTypeRaw(client, "api");
    expect(bytes.length).toBeGreaterThan(100 * 1024);
    const answer = GetByTypeResponse.decode(bytes);
    expect(answer.instances).toHaveLength(400);
    expect(answer.instances[399]).toMatchObject({ host: "10.0.1.143", metadata });
  });

  it("reads an empty answer", async () => {
    expect(GetByTypeResponse.decode(await getByTypeRaw(client, "nobody")).instances).toEqual([]);
  });

  it("rejects a refused call with its status and message", async () => {
    const request = GetByTypeRequest.encode({ serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }).finish();
    const refused = client.unary("/registry.v1.RegistryService/GetByType", request, { authorization: "Bearer wrong" });
    await expect(refused).rejects.toThrow(/GetByType: status 16 .*key/i);
  });

  it("rejects with the status of a trailers-only answer", async () => {
    await expect(client.unary("/registry.v1.RegistryService/NoSuchMethod", new Uint8Array())).rejects.toThrow(/status 12 /);
  });
});

/** A bare HTTP/2 server answering every stream with `answer`, for the failures a real server rarely shows. */
async function misbehavingServer(answer: (stream: http2.ServerHttp2Stream) => void): Promise<{ address: string; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on("stream", answer);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const frame = (bytes: number[]): Buffer => Buffer.from([0, 0, 0, 0, bytes.length, ...bytes]);

describe("RawGrpcClient against a misbehaving server", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function connectTo(answer: (stream: http2.ServerHttp2Stream) => void): Promise<RawGrpcClient> {
    const server = await misbehavingServer(answer);
    cleanup.push(server.close);
    const client = await RawGrpcClient.connect(server.address);
    cleanup.push(() => client.close());
    return client;
  }

  it("rejects a status other than OK sent in real trailers, after a message", async () => {
    const client = await connectTo((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "13", "grpc-message": "disk%20on%20fire" }));
      stream.end(frame([1, 2, 3]));
    });
    await expect(client.unary("/x.Y/Z", new Uint8Array())).rejects.toThrow("/x.Y/Z: status 13 disk on fire");
  });

  it("keeps a malformed grpc-message as sent instead of crashing", async () => {
    const client = await connectTo((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "2", "grpc-message": "100% bad" }, { endStream: true });
    });
    await expect(client.unary("/x.Y/Z", new Uint8Array())).rejects.toThrow("status 2 100% bad");
  });

  it("rejects a stream reset part-way through the answer", async () => {
    const client = await connectTo((stream) => {
      stream.on("error", () => {}); // the server's side of its own reset
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(Buffer.from([0, 0, 0, 1, 0, 9, 9, 9]), () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    });
    // The reset's code reaches the client or not, depending on when its own side closed; no status does either way.
    await expect(client.unary("/x.Y/Z", new Uint8Array())).rejects.toThrow(/^\/x\.Y\/Z: no gRPC status \(HTTP status 200, stream code \d+\)$/);
  });

  it("rejects an answer that is not gRPC, naming its HTTP status", async () => {
    const client = await connectTo((stream) => {
      stream.respond({ ":status": 404 }, { endStream: true });
    });
    await expect(client.unary("/x.Y/Z", new Uint8Array())).rejects.toThrow(/no gRPC status \(HTTP status 404/);
  });

  it("gives up on a server that never answers, within the deadline", async () => {
    const client = await connectTo((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }); // and nothing more
    });
    await expect(client.unary("/x.Y/Z", new Uint8Array(), {}, 100)).rejects.toThrow("/x.Y/Z: no answer within 100 ms");
  });
});

describe("rawGrpcClient's cache", () => {
  afterEach(async () => {
    await closeRawGrpcClients();
  });

  it("replaces a client whose connection was closed", async () => {
    const server = await misbehavingServer((stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame([7]));
    });
    try {
      const first = await rawGrpcClient(server.address);
      expect(await first.unary("/x.Y/Z", new Uint8Array())).toEqual(Buffer.from([7]));
      first.close();
      const second = await rawGrpcClient(server.address);
      expect(second).not.toBe(first);
      expect(await second.unary("/x.Y/Z", new Uint8Array())).toEqual(Buffer.from([7]));
    } finally {
      await closeRawGrpcClients();
      await server.close();
    }
  });

  it("fails to connect to a port nobody listens on, and tries again next time", async () => {
    const listener = createServer();
    const port = await new Promise<number>((resolve) => listener.listen(0, "127.0.0.1", () => resolve((listener.address() as { port: number }).port)));
    await new Promise((resolve) => listener.close(resolve));
    await expect(rawGrpcClient(`127.0.0.1:${port}`)).rejects.toThrow(/ECONNREFUSED/);
    await expect(rawGrpcClient(`127.0.0.1:${port}`)).rejects.toThrow(/ECONNREFUSED/); // a new attempt, not the cached failure
  });
});
