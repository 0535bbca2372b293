import { credentials, status } from "@grpc/grpc-js";
import { register as registerXds } from "@grpc/grpc-js-xds";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { startWhoBackend, registerWho, whoClient, xdsBootstrap, XDS_BOOTSTRAP_OPTION, type WhoBackend } from "../support/xds-backend.js";

/**
 * A real proxyless gRPC client (@grpc/grpc-js-xds) dialling `xds:///<type>`
 * against the registry's xDS control plane, with real grpc-js backends the
 * registry probes over grpc.health.v1.
 */
describe("xDS: grpc-js-xds clients balance over the registry's instances", () => {
  const cleanup: (() => unknown)[] = [];
  beforeAll(() => registerXds());
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(env: Record<string, string> = {}) {
    const stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "200", HEALTH_CHECK_TTL_MS: "500", ...env });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const backend = async (name: string): Promise<WhoBackend> => {
      const b = await startWhoBackend(name);
      cleanup.push(() => b.close());
      return b;
    };
    const register = (serviceType: string, b: WhoBackend): Promise<string> => registerWho(client, serviceType, b);
    const xdsChannel = (serviceType: string) => {
      const c = whoClient(`xds:///${serviceType}`, { [XDS_BOOTSTRAP_OPTION]: JSON.stringify(xdsBootstrap(stack.address, { registry_key: TEST_KEY })) });
      cleanup.push(() => c.close());
      return c;
    };
    return { stack, client, backend, register, xdsChannel };
  }

  /** Calls until `done` says so (each answer is a backend name or a status code); returns every answer with its time. */
  async function callUntil(c: ReturnType<typeof whoClient>, done: (answers: { at: number; answer: string | status }[]) => boolean, timeoutMs = 10_000) {
    const answers: { at: number; answer: string | status }[] = [];
    const until = Date.now() + timeoutMs;
    while (!done(answers)) {
      if (Date.now() > until) throw new Error(`gave up after ${answers.length} calls; last answers: ${JSON.stringify(answers.slice(-5))}`);
      answers.push({ answer: await c.call(), at: Date.now() });
    }
    return answers;
  }

  it("round-robins over three backends; an Unregister, an unhealthy backend and a new Register each show within 1 s", async () => {
    const { client, backend, register, xdsChannel } = await setup();
    const [a, b, c] = await Promise.all([backend("a"), backend("b"), backend("c")]);
    const ids = { a: await register("billing", a), b: await register("billing", b), c: await register("billing", c) };
    const channel = xdsChannel("billing");

    // Round-robin: once all three are picked, each of the next 30 calls goes to them in turn.
    await callUntil(channel, (xs) => new Set(xs.slice(-3).map((x) => x.answer)).size === 3);
    const round = (await callUntil(channel, (xs) => xs.length === 30)).map((x) => x.answer);
    expect(new Set(round)).toEqual(new Set(["a", "b", "c"]));
    for (const name of ["a", "b", "c"]) expect(round.filter((x) => x === name)).toHaveLength(10);

    // Unregister b: no call reaches it 1 s after the Unregister was acknowledged.
    await call(client, client.unregister, { instanceId: ids.b });
    const unregisteredAt = Date.now();
    const afterUnregister = await callUntil(channel, (xs) => xs.length > 0 && xs[xs.length - 1]!.at - unregisteredAt > 1500);
    const lastToB = Math.max(unregisteredAt, ...afterUnregister.filter((x) => x.answer === "b").map((x) => x.at));
    expect(lastToB - unregisteredAt).toBeLessThan(1000);
    expect(afterUnregister.filter((x) => x.at - unregisteredAt > 1000).map((x) => x.answer)).not.toContain("b");

    // c fails its grpc.health.v1 check: once the registry marks it unhealthy, it gets no call.
    c.setServing(false);
    await waitFor(async () => (await call(client, client.getByType, { serviceType: "billing", includeUnhealthy: false, includeDraining: false, selector: {} })).instances.length === 1, "c to turn unhealthy");
    const markedAt = Date.now();
    const afterUnhealthy = await callUntil(channel, (xs) => xs.length > 0 && xs[xs.length - 1]!.at - markedAt > 1500);
    expect(afterUnhealthy.filter((x) => x.at - markedAt > 1000).map((x) => x.answer)).toEqual(afterUnhealthy.filter((x) => x.at - markedAt > 1000).map(() => "a"));

    // A new backend registers: it gets calls within 1 s.
    const d = await backend("d");
    await register("billing", d);
    const registeredAt = Date.now();
    const toD = await callUntil(channel, (xs) => xs.some((x) => x.answer === "d"), 5000);
    expect(toD.find((x) => x.answer === "d")!.at - registeredAt).toBeLessThan(1000);
  }, 30_000);

  it("fails calls to a type that does not exist, then serves them once it is registered", async () => {
    const { backend, register, xdsChannel } = await setup();
    const channel = xdsChannel("later");
    // No Listener is sent for the type. grpc-js-xds then holds the call (grpc-go and C-core fail it
    // UNAVAILABLE once their resource-does-not-exist timer fires: see the Python test).
    const first = await channel.call(3000);
    expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(first);
    const e = await backend("e");
    await register("later", e);
    await callUntil(channel, (xs) => xs.some((x) => x.answer === "e"), 10_000);
  }, 30_000);

  it("refuses a client whose node metadata carries no credentials, or a wrong key: its calls fail", async () => {
    const { stack, backend, register } = await setup();
    await register("billing", await backend("f"));
    for (const metadata of [{}, { registry_key: "not-the-registration-key-000000" }] as Record<string, string>[]) {
      const channel = whoClient("xds:///billing", { [XDS_BOOTSTRAP_OPTION]: JSON.stringify(xdsBootstrap(stack.address, metadata)) });
      cleanup.push(() => channel.close());
      // The stream ends UNAUTHENTICATED (see ads-protocol.test.ts); the client gets no configuration, so no call gets through.
      expect(typeof (await channel.call(3000))).toBe("number");
    }
  }, 30_000);
});
