import { connect, type ClientHttp2Session } from "node:http2";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { GetInstanceRequest, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { grpcFrame, rawCall } from "../support/raw-grpc.js";
import { call, instanceAuth, keyAuth, TEST_KEY } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";

const UNPARSED = "grpc-js dropped a header it could not parse";

/** One unary call over raw HTTP/2 with headers no gRPC library would send; resolves with its grpc-status. */
async function rawUnary(session: ClientHttp2Session, method: string, message: Uint8Array, headers: Record<string, string>): Promise<number | undefined> {
  return (await rawCall(session, `/registry.v1.RegistryService/${method}`, [grpcFrame(message)], headers)).code;
}

describe("request headers grpc-js cannot parse", () => {
  let server: ServerProcess | undefined;
  let session: ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.close();
    server?.kill("SIGKILL");
    await server?.exited;
  });

  it("are named in one throttled JSON line of the registry's log, their values (a key, a token) never written anywhere", async () => {
    server = await startServerProcess({ SERVICE_REGISTRATION_KEY: TEST_KEY, STORE: "memory", HEALTH_CHECKS: "false" });
    const address = `127.0.0.1:${server.port}`;
    const client = new RegistryServiceClient(address, credentials.createInsecure());
    const { serviceId, token } = await call(client, client.register, { serviceType: "api", host: "127.0.0.1", port: 9001, metadata: {} }, keyAuth());
    session = connect(`http://${address}`);

    // A tab or a non-ASCII byte in a value: grpc-js drops the header, so each call arrives without its credential.
    const empty = new Uint8Array(0);
    expect(await rawUnary(session, "ListServices", empty, { authorization: `Bearer\t${TEST_KEY}` })).toBe(status.UNAUTHENTICATED);
    expect(await rawUnary(session, "ListServices", empty, { authorization: `Bearer ${TEST_KEY}\u00e9` })).toBe(status.UNAUTHENTICATED);
    const get = GetInstanceRequest.encode({ instanceId: serviceId }).finish();
    expect(await rawUnary(session, "GetInstance", get, { "x-service-id": serviceId, "x-service-token": `${token}\u00e9` })).toBe(status.UNAUTHENTICATED);
    // A flood of them, each value 60 KB, costs the log nothing more within the minute.
    const junk = `${"x".repeat(30_000)}\t${"y".repeat(30_000)}`;
    await Promise.all(Array.from({ length: 50 }, () => rawUnary(session!, "ListServices", empty, { "x-junk": junk })));
    // The same connection still serves a well-formed call.
    expect(await rawUnary(session, "ListServices", empty, { authorization: `Bearer ${TEST_KEY}` })).toBe(status.OK);
    client.close();

    await waitFor(() => server!.output().includes(UNPARSED), "the line naming the dropped header");
    const output = server.output();
    expect(output).not.toContain(TEST_KEY);
    expect(output).not.toContain(token);
    expect(output).not.toContain("xxxxxxxx");
    const lines = output.split("\n").filter((l) => l.trim() !== "");
    const records = lines.map((l) => JSON.parse(l) as { msg: string; header?: string; count?: number }); // every line JSON: nothing raw on stderr
    expect(records.filter((r) => r.msg.startsWith(UNPARSED))).toEqual([expect.objectContaining({ header: "authorization", count: 1 })]);
  });

  it("keep credentials out of grpc-js's traces too, when an operator turns them on (GRPC_TRACE)", async () => {
    server = await startServerProcess({ SERVICE_REGISTRATION_KEY: TEST_KEY, STORE: "memory", HEALTH_CHECKS: "false", LOG_LEVEL: "debug", GRPC_TRACE: "server_call", GRPC_VERBOSITY: "DEBUG" });
    const client = new RegistryServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const { serviceId, token } = await call(client, client.register, { serviceType: "api", host: "127.0.0.1", port: 9002, metadata: {} }, keyAuth());
    await call(client, client.getInstance, { instanceId: serviceId }, instanceAuth(serviceId, token));
    client.close();
    await waitFor(() => server!.output().includes("GetInstance received headers"), "the trace of the GetInstance call");
    const output = server.output();
    expect(output).not.toContain(TEST_KEY);
    expect(output).not.toContain(token);
    expect(output).toContain('\\"authorization\\":[\\"[redacted]\\"]');
    expect(output).toContain('\\"x-service-token\\":[\\"[redacted]\\"]');
  });
});
