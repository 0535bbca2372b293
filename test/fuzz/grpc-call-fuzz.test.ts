import { afterEach, describe, expect, it } from "vitest";
import { EventType, WatchInstancesRequest, WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { startStack } from "../support/stack.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { FuzzConnection, type CallOutcome } from "./call-runner.js";
import { frame, fuzzCalls, type FuzzCall } from "./grpc-call-cases.js";

/**
 * Malformed calls over raw node:http2 against the server as `serve` wires it
 * (the port shared with HTTP/1.1, handed to grpc-js): random bytes, mutated
 * and truncated length-prefixed messages, compressed flags, odd and oversize
 * headers, requests nghttp2 itself rejects, bodies that keep coming after
 * the answer; many at once on one connection beside a well-behaved watch
 * stream. What it pins: every bad call fails alone (no GOAWAY with an error,
 * the connection and the watch stream live on), no message with an invalid
 * Compressed-Flag is served, and the server serves after.
 *
 * CI runs a fixed seed and a bounded count; for a longer local run:
 *   FUZZ_SEED=$RANDOM FUZZ_CASES=100000 npx vitest run test/fuzz/grpc-call-fuzz.test.ts
 * A failure prints the seed and the calls in flight, to replay them.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261206);
const CASES = Number(process.env.FUZZ_CASES ?? 1500);
const CONCURRENCY = 100;
/** Calls left open (and server streams) are cancelled after this long. */
const CALL_TIMEOUT_MS = 250;
const AUTH = `Bearer ${TEST_KEY}`;

/** A WatchInstances stream opened on `conn`, collecting the events it receives. */
function openWatch(conn: FuzzConnection): { events: WatchInstancesResponse[]; ended: () => boolean; next: (type: EventType, ms: number, from?: number) => Promise<void> } {
  const stream = conn.session.request({
    ":method": "POST",
    ":path": "/registry.v1.RegistryService/WatchInstances",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: AUTH,
  });
  stream.end(frame(WatchInstancesRequest.encode({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} }).finish()));
  const events: WatchInstancesResponse[] = [];
  let ended = false;
  let pending = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const length = pending.readUInt32BE(1);
      events.push(WatchInstancesResponse.decode(pending.subarray(5, 5 + length)));
      pending = pending.subarray(5 + length);
    }
    for (const w of waiters.splice(0)) w();
  });
  stream.on("error", () => {});
  stream.on("close", () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  /** Waits for an event of `type` among those from index `from` on. */
  const next = async (type: EventType, ms: number, from = 0): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!events.slice(from).some((e) => e.type === type)) {
      if (ended) throw new Error("the watch stream ended");
      if (Date.now() > deadline) throw new Error(`no ${EventType[type]} on the watch stream within ${ms} ms`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  };
  return { events, ended: () => ended, next };
}

/** Registers an instance with a well-formed call on `conn` (proves the connection still serves). */
async function registerOn(conn: FuzzConnection, port: number): Promise<CallOutcome> {
  const body = Buffer.from([0x0a, 4, ...Buffer.from("fuzz"), 0x10, port & 0x7f | 0x80, port >> 7, 0x1a, 9, ...Buffer.from("127.0.0.1")]);
  return conn.send(
    {
      kind: "well-formed Register",
      headers: { ":method": "POST", ":path": "/registry.v1.RegistryService/Register", "content-type": "application/grpc", te: "trailers", authorization: AUTH },
      chunks: [frame(body)],
      end: true,
    },
    5000,
  );
}

/**
 * True when the call's first message carries a Compressed-Flag the server
 * must refuse (grpc's doc/compression.md): 1 without a grpc-encoding other
 * than identity, or anything but 0 and 1.
 */
function hasInvalidFlag(call: FuzzCall): boolean {
  const first = call.chunks.find((c) => c.length > 0)?.[0];
  if (first === undefined) return false;
  const encoding = String(call.headers["grpc-encoding"] ?? "identity");
  return first > 1 || (first === 1 && encoding === "identity");
}

/** Runs `calls` in waves on `conn`; fails naming the seed and the wave if the connection is torn down. */
async function runWaves(conn: FuzzConnection, calls: readonly FuzzCall[], seed: number): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  for (let i = 0; i < calls.length; i += CONCURRENCY) {
    const wave = calls.slice(i, i + CONCURRENCY);
    const outcomes = await Promise.all(wave.map((c) => conn.send(c, CALL_TIMEOUT_MS)));
    const bad = conn.goaways.filter((code) => code !== 0);
    if (bad.length > 0 || conn.closed) {
      const kinds = [...new Set(wave.map((c) => `${c.kind} ${JSON.stringify(c.headers[":path"])}`))].slice(0, 20);
      throw new Error(
        `seed ${seed}: the server tore the connection down (GOAWAY codes ${bad.join(",") || "none"}, closed ${conn.closed}) ` +
          `during calls ${i}..${i + wave.length - 1}; kinds in flight: ${kinds.join("; ")}`,
      );
    }
    outcomes.forEach((o, j) => {
      const call = wave[j] as FuzzCall;
      if (o.grpcStatus === 0 && hasInvalidFlag(call)) {
        throw new Error(`seed ${seed}: call ${i + j} (${call.kind}) has an invalid Compressed-Flag but was served (grpc-status 0)`);
      }
      const key = o.grpcStatus !== undefined ? `grpc-status ${o.grpcStatus}` : o.rstCode !== undefined ? `RST ${o.rstCode}` : o.httpStatus !== undefined ? `HTTP ${o.httpStatus}` : "other";
      tally.set(key, (tally.get(key) ?? 0) + 1);
    });
  }
  return tally;
}

describe("malformed calls fail alone", () => {
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  const conns: FuzzConnection[] = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) c.close();
    await stack?.close();
    stack = undefined;
  });

  it("1,100 requests nghttp2 rejects (':path: *') on one connection do not end the others", async () => {
    stack = await startStack();
    const conn = new FuzzConnection(stack.address);
    conns.push(conn);
    await conn.ready;
    const watch = openWatch(conn);
    await watch.next(EventType.EVENT_TYPE_SYNCED, 5000);
    const invalid: FuzzCall = {
      kind: "':path: *'",
      headers: { ":method": "POST", ":path": "*", "content-type": "application/grpc", te: "trailers" },
      chunks: [],
      end: true,
    };
    // Node's default budget is 1000 invalid frames per connection.
    const outcomes: CallOutcome[] = [];
    for (let i = 0; i < 11 && !conn.closed; i++) {
      outcomes.push(...(await Promise.all(Array.from({ length: 100 }, () => conn.send(invalid, 5000)))));
    }
    expect(conn.goaways, "GOAWAY codes received").toEqual([]);
    expect(conn.closed).toBe(false);
    expect(outcomes.every((o) => o.rstCode === 1)).toBe(true); // each refused alone: RST_STREAM(PROTOCOL_ERROR)
    const mark = watch.events.length;
    expect((await registerOn(conn, 9100)).grpcStatus).toBe(0);
    await watch.next(EventType.EVENT_TYPE_INSTANCE_REGISTERED, 5000, mark);
    expect(watch.ended()).toBe(false);
  }, 30_000);

  it(`a seeded fuzz run (seed ${SEED}, ${CASES} calls, ${CONCURRENCY} at a time) leaves the connection and its watch stream serving`, async () => {
    stack = await startStack();
    const conn = new FuzzConnection(stack.address);
    conns.push(conn);
    await conn.ready;
    const watch = openWatch(conn);
    await watch.next(EventType.EVENT_TYPE_SYNCED, 5000);
    const tally = await runWaves(conn, fuzzCalls(CASES, SEED), SEED);
    expect([...tally.values()].reduce((a, b) => a + b, 0)).toBe(CASES);
    // Same connection: a well-formed call is served and the watch stream sees it.
    const mark = watch.events.length;
    expect((await registerOn(conn, 9101)).grpcStatus).toBe(0);
    await watch.next(EventType.EVENT_TYPE_INSTANCE_REGISTERED, 5000, mark);
    expect(watch.ended()).toBe(false);
    expect(conn.goaways).toEqual([]);
  }, 120_000);
});
