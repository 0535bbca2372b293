import { status, type ServerUnaryCall, type ServiceError, type sendUnaryData } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RegisterRequest, RegisterResponse } from "../../gen/registry/v1/registry.js";
import { batchPerLoopTurn } from "../../src/server/loop-turn-batch.js";
import { call, keyAuth, startHarness, type Harness } from "../support/registry-harness.js";

type Outcome = { ok: RegisterResponse } | { err: ServiceError };

describe("Register calls batched per event-loop turn, on a real server", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it("answers every call of a burst on its own: valid ones registered once each, bad ones with their own status", async () => {
    const requests: { request: RegisterRequest; key: string | undefined }[] = Array.from({ length: 40 }, (_, i) => ({
      request: { serviceType: "burst", port: 9000 + i, host: "10.0.0.1", metadata: {} },
      key: undefined,
    }));
    requests[7] = { request: { serviceType: "burst", port: 0, host: "10.0.0.1", metadata: {} }, key: undefined };
    requests[20] = { request: { serviceType: "Not A Type", port: 9020, host: "10.0.0.1", metadata: {} }, key: undefined };
    requests[33] = { request: { serviceType: "burst", port: 9033, host: "10.0.0.1", metadata: {} }, key: "wrong-key-0123456789abcdef" };

    const outcomes = await Promise.all(
      requests.map(({ request, key }) =>
        call(h.client, h.client.register, request, key ? keyAuth(key) : keyAuth()).then(
          (ok): Outcome => ({ ok }),
          (err: ServiceError): Outcome => ({ err }),
        ),
      ),
    );

    const failed = outcomes.flatMap((o, i) => ("err" in o ? [[i, o.err.code, o.err.details] as const] : []));
    expect(failed.map(([i, code]) => [i, code])).toEqual([
      [7, status.INVALID_ARGUMENT],
      [20, status.INVALID_ARGUMENT],
      [33, status.UNAUTHENTICATED],
    ]);
    expect(failed[0]?.[2]).toMatch(/^port:/);
    expect(failed[1]?.[2]).toMatch(/^service_type:/);

    const registered = outcomes.flatMap((o) => ("ok" in o ? [o.ok] : []));
    expect(registered).toHaveLength(37);
    expect(new Set(registered.map((r) => r.serviceId)).size).toBe(37);
    expect(new Set(registered.map((r) => r.instance?.revision)).size).toBe(37);
    // Each answer is its own call's instance.
    for (const [i, o] of outcomes.entries()) if ("ok" in o) expect(o.ok.instance?.port).toBe(9000 + i);
    const all = await call(h.client, h.client.getByType, { serviceType: "burst", includeUnhealthy: true });
    expect(all.instances.map((x) => x.port).sort()).toEqual(registered.map((r) => r.instance?.port).sort());
  });
});

describe("batchPerLoopTurn", () => {
  /** A stand-in for grpc-js's call object: the wrapper reads only `cancelled`. */
  const fakeCall = (cancelled = false): ServerUnaryCall<number, number> => ({ cancelled }) as ServerUnaryCall<number, number>;

  it("runs a turn's calls after the turn, in arrival order, not as they arrive", async () => {
    const ran: string[] = [];
    const handler = batchPerLoopTurn<number, number>((_call, callback) => {
      ran.push("handled");
      callback(null, 1);
    });
    const answered = new Promise<void>((resolve) => {
      let n = 0;
      for (let i = 0; i < 3; i++) {
        handler(fakeCall(), ((_err: unknown, v: unknown) => {
          ran.push(`answer ${i} ${String(v)}`);
          if (++n === 3) resolve();
        }) as sendUnaryData<number>);
      }
    });
    ran.push("arrived");
    await answered;
    expect(ran).toEqual(["arrived", "handled", "answer 0 1", "handled", "answer 1 1", "handled", "answer 2 1"]);
  });

  it("skips a call cancelled while it waited, and answers a throwing handler with UNKNOWN while the next calls still run", async () => {
    const handled: number[] = [];
    const handler = batchPerLoopTurn<number, number>((c, callback) => {
      const n = (c as unknown as { n: number }).n;
      handled.push(n);
      if (n === 2) throw new Error("boom");
      callback(null, n);
    });
    const answers: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      const cb = ((err: Partial<ServiceError> | null, v?: number) => {
        answers.push(err ? { code: err.code } : v);
        if (answers.length === 3) resolve();
      }) as sendUnaryData<number>;
      const calls = [1, 2, 3, 4].map((n) => Object.assign(fakeCall(), { n }));
      for (const c of calls) handler(c, cb);
      (calls[0] as { cancelled: boolean }).cancelled = true; // cancelled before the turn ends
    });
    await done;
    expect(handled).toEqual([2, 3, 4]);
    expect(answers).toEqual([{ code: status.UNKNOWN }, 3, 4]);
  });

  it("answers every later call when a callback throws, and runs a call queued during a batch in the next one", async () => {
    const answered: number[] = [];
    let handler: ReturnType<typeof batchPerLoopTurn<number, number>>;
    const done = new Promise<void>((resolve) => {
      const answer = (n: number) =>
        ((_err: unknown, v?: number) => {
          if (n === 1) throw new Error("callback threw"); // the first call's answer throws, twice
          answered.push(v ?? -1);
          if (answered.length === 3) resolve();
        }) as sendUnaryData<number>;
      handler = batchPerLoopTurn<number, number>((c, callback) => {
        const n = (c as unknown as { n: number }).n;
        if (n === 2) handler(Object.assign(fakeCall(), { n: 9 }), answer(9)); // arrives mid-batch
        callback(null, n);
      });
      for (const n of [1, 2, 3]) handler(Object.assign(fakeCall(), { n }), answer(n));
    });
    await done;
    expect(answered).toEqual([2, 3, 9]);
  });
});
