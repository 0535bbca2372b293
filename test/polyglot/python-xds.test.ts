import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { startWhoBackend, registerWho, xdsBootstrap, type WhoBackend } from "../support/xds-backend.js";
import { pythonToolchain } from "./python-toolchain.js";
import { PythonXdsClient, type PythonCall } from "./python-xds-client.js";

/**
 * A proxyless xDS client in another language: Debian's python3-grpcio
 * (C-core 1.51, its own xDS resolver and balancers) dials `xds:///<type>`
 * with a bootstrap file naming the registry, against real grpc-js backends
 * the registry probes over grpc.health.v1. The Python script calls in a loop
 * and prints each call; the test reads them live and acts in between.
 */

const { toolchainError, skip } = pythonToolchain("test/polyglot/python-xds.test.ts");

describe.skipIf(skip)("polyglot: Python's xDS client balances over the registry's instances", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setUp() {
    if (toolchainError !== undefined) throw new Error(toolchainError);
    const stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "200", HEALTH_CHECK_TTL_MS: "500" });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const backend = async (name: string): Promise<WhoBackend> => {
      const b = await startWhoBackend(name);
      cleanup.push(() => b.close());
      return b;
    };
    const register = (serviceType: string, b: WhoBackend): Promise<string> => registerWho(client, serviceType, b);
    const python = (target: string, options: { key?: string; callTimeoutMs?: number; env?: Record<string, string> } = {}) => {
      const py = PythonXdsClient.start({
        target,
        bootstrap: xdsBootstrap(stack.address, { registry_key: options.key ?? TEST_KEY }, "python-test-client"),
        ...(options.callTimeoutMs !== undefined ? { callTimeoutMs: options.callTimeoutMs } : {}),
        ...(options.env ? { env: options.env } : {}),
      });
      cleanup.push(() => py.close());
      return py;
    };
    const billing = async () => {
      const [a, b, c] = await Promise.all([backend("a"), backend("b"), backend("c")]);
      return { a: await register("billing", a), b: await register("billing", b), c: await register("billing", c) };
    };
    return { stack, client, register, backend, python, billing };
  }

  /** Whether the last three calls reached three different backends: the client balances over all of them. */
  const allThreeInTurn = (calls: readonly PythonCall[]): boolean =>
    calls.length >= 3 && new Set(calls.slice(-3).map((x) => x.answer ?? x.code)).size === 3 && calls.slice(-3).every((x) => x.answer);

  it("round-robins over three backends: 30 calls, 10 to each", async () => {
    const { python, billing } = await setUp();
    await billing();
    const py = python("xds:///billing");
    const warm = (await py.until(allThreeInTurn, "calls to reach all three backends", 10_000)).length;
    const round = (await py.until((xs) => xs.length >= warm + 30, "30 more calls", 10_000)).slice(warm, warm + 30).map((x) => x.answer ?? x.code);
    // C-core's round_robin is strict: a, b, c in a fixed order, each once per turn.
    for (const name of ["a", "b", "c"]) expect(round.filter((x) => x === name), JSON.stringify(round)).toHaveLength(10);
  }, 30_000);

  it("an Unregister stops the calls to that backend within 1 s", async () => {
    const { client, python, billing } = await setUp();
    const ids = await billing();
    const py = python("xds:///billing");
    await py.until(allThreeInTurn, "calls to reach all three backends", 10_000);

    await call(client, client.unregister, { instanceId: ids.b });
    const unregisteredAt = Date.now();
    const after = (await py.until((xs) => xs.at(-1)!.at - unregisteredAt > 1500, "1.5 s of calls after the Unregister", 10_000)).filter(
      (x) => x.at > unregisteredAt,
    );
    const lastToB = Math.max(unregisteredAt, ...after.filter((x) => x.answer === "b").map((x) => x.at));
    expect(lastToB - unregisteredAt).toBeLessThan(1000);
    const settled = after.filter((x) => x.at - unregisteredAt > 1000).map((x) => x.answer ?? x.code);
    expect(new Set(settled)).toEqual(new Set(["a", "c"]));
  }, 30_000);

  it("fails a call to a type that does not exist UNAVAILABLE once C-core's 15 s resource timer fires, then serves it once registered", async () => {
    const { register, backend, python } = await setUp();
    const startedAt = Date.now();
    // A Python client blocked in no call reads its ADS stream only when C-core's backup poller runs
    // (every 5 s by default): poll every 100 ms so the test times the registry, not that poller.
    const py = python("xds:///later", { callTimeoutMs: 25_000, env: { GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS: "100" } });
    const [first] = await py.until((xs) => xs.length > 0, "the first call to end", 30_000);
    expect(first).toMatchObject({ code: "UNAVAILABLE", details: expect.stringContaining("does not exist") });
    // The registry answered at once with no Listener; C-core waits out its does-not-exist timer (15 s).
    expect(first!.at - startedAt).toBeGreaterThan(14_000);

    await register("later", await backend("e"));
    const registeredAt = Date.now();
    const calls = await py.until((xs) => xs.some((x) => x.answer === "e"), "a call answered by the new backend", 10_000);
    expect(calls.find((x) => x.answer === "e")!.at - registeredAt).toBeLessThan(2000);
  }, 45_000);

  it("never gets a call through with a wrong key in the node metadata: the registry ends each ADS stream UNAUTHENTICATED", async () => {
    const { stack, python, billing } = await setUp();
    await billing();
    const py = python("xds:///billing", { key: "not-the-registration-key-000000" });
    const refused = async () =>
      parseExposition(await (await fetch(`${stack.httpUrl}/metrics`)).text()).value("grpc_server_handled_total", {
        grpc_method: "StreamAggregatedResources",
        grpc_code: "Unauthenticated",
      }) ?? 0;
    // The first stream and C-core's retry (after its 1 s backoff) both refused.
    await waitFor(async () => (await refused()) >= 2, "two ADS streams refused", 10_000, 50);
    const refusedAt = Date.now();
    const calls = await py.until((xs) => xs.length > 0 && xs.at(-1)!.at > refusedAt, "a call after the second refusal", 5000);
    expect(calls.filter((x) => x.answer !== undefined)).toEqual([]);
    // C-core fails the calls UNAVAILABLE, quoting the ADS stream's status (a call may time out before the first refusal under load).
    expect(calls.at(-1)).toMatchObject({ code: "UNAVAILABLE", details: expect.stringContaining("UNAUTHENTICATED") });
    for (const x of calls.filter((c) => c.code === "UNAVAILABLE")) expect(x.details).toContain("UNAUTHENTICATED");
  }, 30_000);
});
