import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Client, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegisterResponse } from "../../gen/registry/v1/registry.js";
import { keyAuth, startHarness, type Harness } from "../support/registry-harness.js";

/**
 * RegisterRequest.port is a uint32, but the wire carries a varint of up to 64
 * bits and protobuf readers keep only its low 32: 2^32+80 would register
 * port 80. The server reads it whole and refuses it naming the field.
 */

/** RegisterRequest bytes with `port` written as a 64-bit varint, as a hand-made or mismatched client sends it. */
function registerBytes(port: bigint): Buffer {
  const w = new BinaryWriter();
  w.uint32(10).string("api"); // service_type = 1
  w.uint32(16).uint64(port); // port = 2
  w.uint32(26).string("10.0.0.80"); // host = 3
  return Buffer.from(w.finish());
}

function rawRegister(client: Client, bytes: Buffer): Promise<RegisterResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/registry.v1.RegistryService/Register",
      (b: Buffer) => b,
      (b: Buffer) => RegisterResponse.decode(b),
      bytes,
      keyAuth(),
      (err, res) => (err ? reject(err) : resolve(res as RegisterResponse)),
    );
  });
}

describe("Register: a port wider than 32 bits on the wire", () => {
  let h: Harness | undefined;
  let client: Client | undefined;
  afterEach(async () => {
    client?.close();
    await h?.close();
  });

  it.each([
    ["2^32+80", 2n ** 32n + 80n],
    ["2^64-1", 2n ** 64n - 1n],
    ["2^63+443", 2n ** 63n + 443n],
  ])("refuses %s with INVALID_ARGUMENT naming port, and registers nothing", async (_name, port) => {
    h = await startHarness();
    client = new Client(h.address, credentials.createInsecure());
    const err = (await rawRegister(client, registerBytes(port)).then(
      () => undefined,
      (e: ServiceError) => e,
    )) as ServiceError | undefined;
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toBe("port: must be between 1 and 65535");
    expect(h.registry.listServices().services).toEqual([]);
  });

  it("still takes a port written as a plain varint, and one written 10 bytes long", async () => {
    h = await startHarness();
    client = new Client(h.address, credentials.createInsecure());
    expect((await rawRegister(client, registerBytes(80n))).instance?.port).toBe(80);
    // 8080 with redundant continuation bytes (still a valid varint of value 8080).
    const padded = Buffer.from([0x0a, 3, 0x61, 0x70, 0x69, 0x10, 0x90 | 0x80, 0x3f | 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    const withHost = Buffer.concat([padded, Buffer.from([0x1a, 9]), Buffer.from("10.0.0.81")]);
    expect((await rawRegister(client, withHost)).instance?.port).toBe(8080);
  });
});
