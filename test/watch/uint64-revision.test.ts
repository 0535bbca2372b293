import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Client, credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { decodeWatchInstancesRequest } from "../../src/server/request-decoders.js";
import { keyAuth, TEST_KEY } from "../support/registry-harness.js";
import { StreamCursor } from "../support/stream-cursor.js";
import { brief, readUntil, WatchContext } from "./watch-helpers.js";

/**
 * A since_revision above 2^53 is a valid uint64 that Go, Python and Java
 * clients can send. It must decode (not INTERNAL "Error deserializing
 * request") and, being ahead of the registry, answer RESET then a snapshot.
 */

const TWO_53_PLUS_1 = 2n ** 53n + 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** WatchInstancesRequest bytes as another language's runtime writes them, uint64 exact. */
function watchRequestBytes(sinceRevision: bigint, epoch: string): Buffer {
  const w = new BinaryWriter();
  w.uint32(16).uint64(sinceRevision); // since_revision = 2
  if (epoch !== "") w.uint32(26).string(epoch); // epoch = 3
  return Buffer.from(w.finish());
}

/** Opens WatchInstances with hand-made request bytes, through grpc-js's raw client. */
function rawWatch(address: string, bytes: Buffer): { client: Client; cursor: StreamCursor<WatchInstancesResponse> } {
  const client = new Client(address, credentials.createInsecure());
  const stream = client.makeServerStreamRequest(
    "/registry.v1.RegistryService/WatchInstances",
    (b: Buffer) => b,
    (b: Buffer) => WatchInstancesResponse.decode(b),
    bytes,
    keyAuth(),
  );
  return { client, cursor: new StreamCursor(stream, "watch stream") };
}

describe("since_revision above 2^53", () => {
  let ctx: WatchContext | undefined;
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await ctx?.close();
    ctx = undefined;
  });

  for (const [name, value] of [
    ["2^53+1", TWO_53_PLUS_1],
    ["2^64-1", UINT64_MAX],
  ] as const) {
    it(`${name} in the registry's own epoch answers RESET, a snapshot and SYNCED`, async () => {
      ctx = await WatchContext.start();
      const a = await ctx.register("api", 9001);
      const { epoch, revision } = ctx.h.registry;
      const { client, cursor } = rawWatch(ctx.h.address, watchRequestBytes(value, epoch));
      clients.push(client);
      // Bounded well below the registry's resume wait (5 s): RESET comes at once.
      const msgs = await readUntil(cursor, (m) => m.type === EventType.EVENT_TYPE_SYNCED, 2000);
      expect(msgs.map(brief)).toEqual([`RESET@${revision}`, `INSTANCE_REGISTERED@${revision}(snap):${a.id.slice(0, 8)}`, `SYNCED@${revision}`]);
      expect(msgs.every((m) => m.epoch === epoch)).toBe(true);
    });
  }

  it("decodes every uint64 without throwing, the other fields intact", () => {
    for (const value of [0n, 1n, 2n ** 53n - 1n, TWO_53_PLUS_1, UINT64_MAX]) {
      const w = new BinaryWriter();
      w.uint32(10).string("api").uint32(16).uint64(value).uint32(26).string("e1").uint32(32).bool(true);
      const message = decodeWatchInstancesRequest(w.finish());
      expect(message).toMatchObject({ serviceType: "api", epoch: "e1", everyHealthCheck: true });
      if (value <= BigInt(Number.MAX_SAFE_INTEGER)) expect(message.sinceRevision).toBe(Number(value));
      else expect(message.sinceRevision).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
    }
  });
});

// --- The same from a real Python grpcio client (skipped without Debian's toolchain, as test/polyglot does) ---

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const PYTHON = "/usr/bin/python3";
const PLUGIN = "/usr/bin/grpc_python_plugin";
const pythonReady =
  existsSync(PLUGIN) &&
  existsSync("/usr/include/google/protobuf/timestamp.proto") &&
  spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { timeout: 15_000 }).status === 0 &&
  spawnSync("protoc", ["--version"], { timeout: 15_000 }).status === 0;
const ciValue = (process.env.CI ?? "").trim().toLowerCase();
const inCI = ciValue !== "" && !["0", "false", "no"].includes(ciValue);
if (!pythonReady && !inCI) console.warn("SKIPPING the Python part of uint64-revision.test.ts: python3-grpcio / protoc missing");

/** Prints the first three event types of a watch opened with since_revision = 2^64-1. */
const PY_CLIENT = `
import json, sys, grpc
from registry.v1 import registry_pb2 as pb, registry_pb2_grpc as pb_grpc
target, key, epoch = sys.argv[1], sys.argv[2], sys.argv[3]
with grpc.insecure_channel(target) as channel:
    stub = pb_grpc.RegistryServiceStub(channel)
    stream = stub.WatchInstances(pb.WatchInstancesRequest(since_revision=2**64 - 1, epoch=epoch),
                                 metadata=[("authorization", "Bearer " + key)], timeout=10)
    out = []
    try:
        for m in stream:
            out.append(pb.EventType.Name(m.type))
            if len(out) == 3:
                break
    except grpc.RpcError as e:
        out.append("error:" + e.code().name + ":" + (e.details() or ""))
    print(json.dumps(out))
`;

describe.skipIf(!pythonReady && !inCI)("since_revision = 2^64-1 from Python grpcio", () => {
  let ctx: WatchContext | undefined;
  let work: string | undefined;
  afterEach(async () => {
    await ctx?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("gets RESET, a snapshot and SYNCED", async () => {
    expect(pythonReady, "python3-grpcio, protoc and grpc_python_plugin are installed").toBe(true);
    work = mkdtempSync(join(tmpdir(), "uint64-py-"));
    const protoc = spawnSync(
      "protoc",
      ["-Iproto", `--python_out=${work}`, `--grpc_out=${work}`, `--plugin=protoc-gen-grpc=${PLUGIN}`, "registry/v1/registry.proto"],
      { cwd: ROOT, encoding: "utf8", timeout: 30_000 },
    );
    expect(protoc.status, protoc.stderr).toBe(0);
    for (const pkg of ["registry", "registry/v1"]) {
      mkdirSync(join(work, pkg), { recursive: true });
      writeFileSync(join(work, pkg, "__init__.py"), "");
    }
    ctx = await WatchContext.start();
    await ctx.register("api", 9001);
    const output = await new Promise<string>((res, rej) => {
      const child = spawn(PYTHON, ["-c", PY_CLIENT, ctx!.h.address, TEST_KEY, ctx!.h.registry.epoch], {
        env: { ...process.env, PYTHONPATH: work, PYTHONDONTWRITEBYTECODE: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
      child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.once("error", rej);
      child.once("close", (code) => {
        clearTimeout(timer);
        if (code === 0) res(out);
        else rej(new Error(`python exited ${code}: ${err}`));
      });
    });
    expect(JSON.parse(output.trim())).toEqual(["EVENT_TYPE_RESET", "EVENT_TYPE_INSTANCE_REGISTERED", "EVENT_TYPE_SYNCED"]);
  }, 40_000);
});
