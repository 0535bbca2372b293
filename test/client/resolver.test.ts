import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/client/registry-client.js";
import { registerRegistryResolver, ROUND_ROBIN_SERVICE_CONFIG, type ResolverUpdate } from "../../src/client/registry-resolver.js";
import { greeterClient, sayHello, type GreeterClient } from "../../examples/router/greeter.js";
import { startBackend, type Backend } from "../../examples/router/backend.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { waitFor } from "../support/wait-for.js";
import { Log } from "./helpers.js";

describe("registry:/// resolver", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const harness = async (): Promise<Harness> => {
    const h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 100, healthCheckTTL: 200 } });
    cleanups.push(() => h.close());
    return h;
  };
  const resolverFor = (h: Harness, key = TEST_KEY, authority = ""): Log<ResolverUpdate> => {
    const updates = new Log<ResolverUpdate>();
    const client = new RegistryClient({ addresses: [h.address], auth: { key }, backoff: { initialMs: 20, maxMs: 100 } });
    const unregister = registerRegistryResolver({ client, authority, onUpdate: (u) => updates.push(u) });
    cleanups.push(() => {
      unregister();
      client.close();
    });
    return updates;
  };
  const channel = (target: string): GreeterClient => {
    const c = greeterClient(target, credentials.createInsecure(), { "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG });
    cleanups.push(() => c.close());
    return c;
  };
  const backend = async (h: Harness, name: string, serviceType = "greeter", metadata: Record<string, string> = {}): Promise<Backend> => {
    const b = await startBackend({ name, serviceType, metadata, registry: [h.address], key: TEST_KEY });
    cleanups.push(() => b.stop());
    return b;
  };
  const callError = async (c: GreeterClient): Promise<ServiceError> => {
    try {
      await sayHello(c, "x", 1000);
    } catch (err) {
      return err as ServiceError;
    }
    throw new Error("expected the call to fail");
  };

  it("fails calls fast and clearly when the type has no healthy instance, then serves one as soon as it registers", async () => {
    const h = await harness();
    const updates = resolverFor(h);
    const c = channel("registry:///greeter");
    const err = await callError(c);
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/no healthy instances of greeter/);
    await backend(h, "g1");
    await updates.find((u) => u.addresses.length === 1, "the new instance");
    expect((await sayHello(c, "Ada")).backend).toBe("g1");
  });

  it("drops an instance while it fails its health check and takes it back when it passes again", async () => {
    const h = await harness();
    const updates = resolverFor(h);
    const [g1, g2] = [await backend(h, "g1"), await backend(h, "g2")];
    const c = channel("registry:///greeter");
    await sayHello(c, "x");
    await updates.until((u) => u.at(-1)?.addresses.length === 2, "both instances");

    g1.setHealthy(false);
    await updates.until((u) => u.at(-1)?.addresses.join() === `127.0.0.1:${g2.port}`, "g1 to leave while unhealthy");
    for (let i = 0; i < 6; i++) expect((await sayHello(c, "x")).backend).toBe("g2");

    g1.setHealthy(true);
    await updates.until((u) => u.at(-1)?.addresses.length === 2, "g1 to come back once healthy");
    const answered = new Set<string>();
    for (let i = 0; i < 20 && answered.size < 2; i++) answered.add((await sayHello(c, "x")).backend);
    expect([...answered].sort()).toEqual(["g1", "g2"]);
  });

  it("routes a channel on registry:///greeter?zone=eu-1 only to that zone's backends, live, from one filtered watch", async () => {
    const h = await harness();
    const updates = resolverFor(h);
    await backend(h, "eu-a", "greeter", { zone: "eu-1" });
    const usA = await backend(h, "us-a", "greeter", { zone: "us-1" });
    const eu = channel("registry:///greeter?zone=eu-1");
    const euWeb = channel("registry:///greeter?tier=web&zone=eu-1");
    const all = channel("registry:///greeter");
    expect((await sayHello(eu, "x")).backend).toBe("eu-a");
    await backend(h, "eu-b", "greeter", { zone: "eu-1", tier: "web" });
    await updates.find((u) => u.selector.zone === "eu-1" && u.selector.tier === undefined && u.addresses.length === 2, "eu-b in the eu-1 list");
    const answered = new Set<string>();
    for (let i = 0; i < 20 && answered.size < 2; i++) answered.add((await sayHello(eu, "x")).backend);
    expect([...answered].sort()).toEqual(["eu-a", "eu-b"]);
    for (let i = 0; i < 6; i++) expect((await sayHello(euWeb, "x")).backend).toBe("eu-b");
    // The us-1 backend was never handed to an eu-1 channel, not even for a moment.
    const euLists = updates.items.filter((u) => u.selector.zone === "eu-1").map((u) => u.addresses);
    expect(euLists.flat()).not.toContain(`127.0.0.1:${usA.port}`);
    const everyone = new Set<string>();
    for (let i = 0; i < 30 && everyone.size < 3; i++) everyone.add((await sayHello(all, "x")).backend);
    expect([...everyone].sort()).toEqual(["eu-a", "eu-b", "us-a"]);
    // One watch per distinct target, each filtered by the registry.
    expect(h.server.watchStreamCount).toBe(3);
  });

  it("fails the calls of a malformed selector target with UNAVAILABLE saying what is wrong", async () => {
    const h = await harness();
    resolverFor(h);
    await backend(h, "g1", "greeter", { zone: "eu-1" });
    const cases: [string, RegExp][] = [
      ["registry:///greeter?zone", /"zone" is not key=value/],
      ["registry:///greeter?zone=eu-1&zone=us-1", /"zone" is given twice/],
      ["registry:///greeter?=eu-1", /key "" must match/],
      ["registry:///greeter?zone=%E0", /not valid percent-encoding/],
      ["registry:///?zone=eu-1", /names no service type/],
    ];
    for (const [target, message] of cases) {
      const err = await callError(channel(target));
      expect(err.code, target).toBe(status.UNAVAILABLE);
      expect(err.details, target).toMatch(message);
    }
    expect(h.server.watchStreamCount).toBe(0);
  });

  it("shares one watch between channels of the same type, and stops it when they close", async () => {
    const h = await harness();
    resolverFor(h);
    await backend(h, "g1");
    const a = channel("registry:///greeter");
    const b = channel("registry:///greeter");
    await sayHello(a, "x");
    await sayHello(b, "x");
    expect(h.server.watchStreamCount).toBe(1);
    a.close();
    b.close();
    await waitFor(() => h.server.watchStreamCount === 0, "the shared watch to stop once no channel uses it");
  });

  it("after the registry refuses the watch, tries again later and picks up once the credentials work", async () => {
    const h = await harness();
    await backend(h, "g1");
    let key = "rotated-away-key-0123456789";
    const client = new RegistryClient({ addresses: [h.address], auth: () => ({ key }) });
    const updates = new Log<ResolverUpdate>();
    const unregister = registerRegistryResolver({ client, authority: "rotating", retryAfterMs: 100, onUpdate: (u) => updates.push(u) });
    cleanups.push(() => {
      unregister();
      client.close();
    });
    const c = channel("registry://rotating/greeter");
    expect((await callError(c)).details).toMatch(/UNAUTHENTICATED/);
    key = TEST_KEY;
    await updates.find((u) => u.addresses.length === 1, "the list once the key is accepted");
    expect((await sayHello(c, "x")).backend).toBe("g1");
  });

  it("serves several registries by authority, and reports a bad key as the calls' error", async () => {
    const [h1, h2] = [await harness(), await harness()];
    resolverFor(h1, TEST_KEY, "one");
    resolverFor(h2, "wrong-key-0123456789abcdef", "two");
    await backend(h1, "g1");
    expect((await sayHello(channel("registry://one/greeter"), "x")).backend).toBe("g1");
    const err = await callError(channel("registry://two/greeter"));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/UNAUTHENTICATED/);
    const unknown = await callError(channel("registry://three/greeter"));
    expect(unknown.details).toMatch(/no registry client registered/);
  });
});
