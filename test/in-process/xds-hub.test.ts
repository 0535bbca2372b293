import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { TYPE_URL } from "../../src/xds/envoy-protos.js";
import { XdsHub, type XdsSubscriber } from "../../src/xds/xds-hub.js";

/** A subscriber that records what the hub tells it. */
function recorder(): XdsSubscriber & { told: string[][] } {
  const told: string[][] = [];
  return { told, typesChanged: (types) => void told.push([...types]), hubEnded: () => undefined };
}

describe("XdsHub (in process, a real registry on the memory store)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function start() {
    const registry = new ServiceRegistry({ healthChecks: false, logger: pino({ level: "silent" }) });
    await registry.start();
    cleanup.push(() => registry.close());
    const hub = new XdsHub(registry);
    /** Resolves after the hub's next flush (it runs in an immediate after the change is applied). */
    const flushed = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    return { registry, hub, flushed };
  }

  it("tells a change only to the sessions following its type and to wildcard ones, once per turn", async () => {
    const { registry, hub, flushed } = await start();
    const billing = recorder();
    const payments = recorder();
    const everything = recorder();
    for (const s of [billing, payments, everything]) hub.subscribe(s);
    hub.follow(billing, new Set(["billing"]), false);
    hub.follow(payments, new Set(["payments"]), false);
    hub.follow(everything, new Set(), true);
    await flushed(); // the hub's first snapshot tells everyone ("all")
    for (const s of [billing, payments, everything]) s.told.length = 0;

    await Promise.all([registry.register({ serviceType: "billing", host: "127.0.0.1", port: 1 }), registry.register({ serviceType: "billing", host: "127.0.0.1", port: 2 })]);
    await flushed();
    expect(billing.told).toEqual([["billing"]]);
    expect(everything.told).toEqual([["billing"]]);
    expect(payments.told).toEqual([]);

    // Following moves with the subscription.
    hub.follow(billing, new Set(["payments"]), false);
    await registry.register({ serviceType: "billing", host: "127.0.0.1", port: 3 });
    await registry.register({ serviceType: "payments", host: "127.0.0.1", port: 4 });
    await flushed();
    expect(billing.told).toEqual([["billing"], ["payments"]]);
    expect(payments.told).toEqual([["payments"]]);
  });

  it("encodes a type's assignment once for every session, and anew only after the type changed", async () => {
    const { registry, hub, flushed } = await start();
    hub.subscribe(recorder());
    await registry.register({ serviceType: "billing", host: "127.0.0.1", port: 1 });
    await flushed();
    const first = hub.resource(TYPE_URL.endpoints, "billing");
    expect(hub.resource(TYPE_URL.endpoints, "billing")).toBe(first);
    await registry.register({ serviceType: "billing", host: "127.0.0.1", port: 2 });
    await flushed();
    expect(hub.resource(TYPE_URL.endpoints, "billing")).not.toBe(first);
    expect(hub.resource(TYPE_URL.endpoints, "not a type!")).toBeUndefined();
  });
});
