import { connect, type ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegisterRequest } from "../../gen/registry/v1/registry.js";
import { limits } from "../../src/registry/validation.js";
import { parseExposition } from "../support/prometheus-text.js";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";

/** One Register over raw HTTP/2, its message gzipped when asked; resolves with grpc-status and grpc-message. */
async function rawRegister(session: ClientHttp2Session, message: Uint8Array, gzip: boolean): Promise<{ code: number | undefined; message: string }> {
  const body = gzip ? gzipSync(message) : Buffer.from(message);
  const { code, message: details } = await rawCall(session, "/registry.v1.RegistryService/Register", [grpcFrame(body, gzip ? 1 : 0)], {
    authorization: `Bearer ${TEST_KEY}`,
    ...(gzip ? { "grpc-encoding": "gzip" } : {}),
  });
  return { code, message: details };
}

describe("request message size (MAX_MESSAGE_BYTES)", () => {
  let server: Awaited<ReturnType<typeof startStack>> | undefined;
  let session: ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.close();
    await server?.close();
  });

  it("serves the largest valid Register, compressed or not, and refuses a message past the bound, a few KB of gzip inflating past it too", async () => {
    server = await startStack();
    session = connect(`http://127.0.0.1:${server.port}`);
    const metadata = Object.fromEntries(
      Array.from({ length: limits.metadataMaxEntries }, (_, i) => [`${String(i).padStart(2, "0")}${"k".repeat(limits.metadataKeyMaxLength - 2)}`, "v".repeat(limits.metadataValueMaxBytes)]),
    );
    const largest = RegisterRequest.encode({ serviceType: "big", host: "h".repeat(60), port: 9001, metadata }).finish();
    expect(largest.length).toBeGreaterThan(36_000);
    expect((await rawRegister(session, largest, false)).code).toBe(status.OK);
    expect((await rawRegister(session, RegisterRequest.encode({ serviceType: "big", host: "h".repeat(60), port: 9002, metadata }).finish(), true)).code).toBe(status.OK);

    // Past 256 KiB: metadata far beyond its limits, as a plain message and as 300 KB that gzip shrinks to under 2 KB.
    const oversized = RegisterRequest.encode({ serviceType: "big", host: "10.0.0.1", port: 9003, metadata: { pad: "x".repeat(300_000) } }).finish();
    expect(gzipSync(oversized).length).toBeLessThan(2_000);
    const plain = await rawRegister(session, oversized, false);
    expect(plain.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(plain.message).toBe(`Received message larger than max (${oversized.length} vs 262144)`);
    const bomb = await rawRegister(session, oversized, true);
    expect(bomb).toEqual({ code: status.RESOURCE_EXHAUSTED, message: "Received message that decompresses to a size larger than 262144" });
    expect(server.registry.getByType("big", true).instances.map((i) => i.port).sort()).toEqual([9001, 9002]);
    // The bound itself: a message of exactly 262144 bytes is read (and refused by validation), one more byte is not.
    const sized = (length: number): Uint8Array => {
      const encode = (pad: number) => RegisterRequest.encode({ serviceType: "big", host: "10.0.0.1", port: 9004, metadata: { pad: "x".repeat(pad) } }).finish();
      // Length prefixes take the same bytes for any pad of this size: one measure gives the overhead.
      const message = encode(length - (encode(length).length - length));
      expect(message.length).toBe(length);
      return message;
    };
    expect((await rawRegister(session, sized(262_144), false)).code).toBe(status.INVALID_ARGUMENT);
    expect((await rawRegister(session, sized(262_145), false)).code).toBe(status.RESOURCE_EXHAUSTED);
    // Counted with the code grpc-js sent, though no handler or interceptor status was involved.
    const metrics = parseExposition(await (await fetch(`${server.httpUrl}/metrics`)).text());
    expect(metrics.value("grpc_server_handled_total", { grpc_method: "Register", grpc_code: "ResourceExhausted" })).toBe(3);
    expect(metrics.value("grpc_server_handled_total", { grpc_method: "Register", grpc_code: "Canceled" })).toBeUndefined();
  });
});
