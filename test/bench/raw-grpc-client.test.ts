import { createServer } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GetByTypeRequest, GetByTypeResponse } from "../../gen/registry/v1/registry.js";
import { getByTypeRaw } from "../../bench/load/grpc-ops.js";
import { RawGrpcClient } from "../../bench/load/raw-grpc-client.js";
import { BENCH_KEY } from "../../bench/lib/workload.js";
import { startHarness, type Harness } from "../support/registry-harness.js";

/** The bench's raw HTTP/2 gRPC client against a real registry server: it must read what grpc-js clients read. */
describe("RawGrpcClient", () => {
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

  it("reads a GetByType answer whole, past one HTTP/2 frame and the default 64 KiB window", async () => {
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

  it("rejects with the status and message of a refused call", async () => {
    const request = GetByTypeRequest.encode({ serviceType: "api", includeUnhealthy: false }).finish();
    await expect(client.unary("/registry.v1.RegistryService/GetByType", request, { authorization: "Bearer wrong" })).rejects.toThrow(
      /status 16 /,
    );
  });

  it("rejects with the status of a trailers-only answer", async () => {
    await expect(client.unary("/registry.v1.RegistryService/NoSuchMethod", new Uint8Array())).rejects.toThrow(/status 12 /);
  });
});

it("fails to connect to a port nobody listens on", async () => {
  const server = createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
  await new Promise((resolve) => server.close(resolve));
  await expect(RawGrpcClient.connect(`127.0.0.1:${port}`)).rejects.toThrow(/ECONNREFUSED/);
});
