import { connect, type ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegisterRequest } from "../../gen/registry/v1/registry.js";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";

/**
 * grpc's doc/compression.md: a message with its Compressed-Flag set on a call
 * without a grpc-encoding other than identity MUST fail with INTERNAL, the
 * description naming the Compressed-Flag. grpc-js on its own serves it.
 */

/** One Register over raw HTTP/2; resolves with grpc-status and grpc-message. */
async function rawRegister(session: ClientHttp2Session, chunks: Buffer[], extraHeaders: Record<string, string> = {}): Promise<{ code: number; message: string }> {
  const { code, message, rstCode } = await rawCall(session, "/registry.v1.RegistryService/Register", chunks, { authorization: `Bearer ${TEST_KEY}`, ...extraHeaders });
  if (code === undefined) throw new Error(`no grpc-status (RST ${rstCode})`);
  return { code, message };
}

const REGISTER = RegisterRequest.encode({ serviceType: "flagged", port: 8080, host: "127.0.0.1", metadata: {} }).finish();

describe("the Compressed-Flag of request messages", () => {
  let h: Harness | undefined;
  let session: ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.close();
    await h?.close();
  });

  async function start(): Promise<ClientHttp2Session> {
    h = await startHarness();
    session = connect(`http://${h.address}`);
    return session;
  }

  it("refuses a message flagged compressed on a call without grpc-encoding: INTERNAL, nothing registered", async () => {
    const s = await start();
    const answer = await rawRegister(s, [grpcFrame(REGISTER, 1)]);
    expect(answer.code).toBe(status.INTERNAL);
    expect(answer.message).toMatch(/Compressed-Flag/);
    expect(h!.registry.listServices().services).toEqual([]);
  });

  it("refuses it with grpc-encoding: identity too, and a flag byte other than 0 or 1 whatever the encoding", async () => {
    const s = await start();
    expect((await rawRegister(s, [grpcFrame(REGISTER, 1)], { "grpc-encoding": "identity" })).code).toBe(status.INTERNAL);
    const odd = await rawRegister(s, [grpcFrame(REGISTER, 7)]);
    expect(odd).toEqual({ code: status.INTERNAL, message: "invalid Compressed-Flag: 7 (must be 0 or 1)" });
    expect((await rawRegister(s, [grpcFrame(gzipSync(REGISTER), 2)], { "grpc-encoding": "gzip" })).code).toBe(status.INTERNAL);
    expect(h!.registry.listServices().services).toEqual([]);
  });

  it("still serves a gzip message flagged compressed, and an uncompressed one sent a byte at a time", async () => {
    const s = await start();
    expect((await rawRegister(s, [grpcFrame(gzipSync(REGISTER), 1)], { "grpc-encoding": "gzip" })).code).toBe(status.OK);
    const bytes = grpcFrame(RegisterRequest.encode({ serviceType: "flagged", port: 8081, host: "127.0.0.1", metadata: {} }).finish(), 0);
    expect((await rawRegister(s, [...bytes].map((b) => Buffer.from([b])))).code).toBe(status.OK);
    expect(h!.registry.getByType("flagged", true).instances.map((i) => i.port).sort()).toEqual([8080, 8081]);
  });
});
