import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Principal } from "../../src/api/authenticator.js";
import { StreamRoster } from "../../src/api/stream-roster.js";
import { hashSecret, RegistrationKeys } from "../../src/registry/credentials.js";
import { RegistryError } from "../../src/registry/registry-error.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

const KEY = "roster-test-key-0123456789abcdef";
const OTHER = "roster-other-key-0123456789abcdef";

describe("StreamRoster (in process, a real registry and keys)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(options: { total?: number; perConnection?: number; perInstance?: number } = {}) {
    const registry = new ServiceRegistry({ logger: pino({ level: "silent" }), healthChecks: false });
    await registry.start();
    cleanup.push(() => registry.close());
    const keys = new RegistrationKeys([KEY, OTHER]);
    const refused: string[] = [];
    const roster = new StreamRoster(keys, registry, {
      total: { setting: "MAX_TEST_STREAMS", max: options.total },
      perConnection: { setting: "MAX_TEST_STREAMS_PER_CONNECTION", max: options.perConnection },
      perInstance: { setting: "MAX_TEST_STREAMS_PER_INSTANCE", max: options.perInstance },
      onRefused: (setting) => refused.push(setting),
    });
    /** A stream's end function that records why it ended and leaves, as a transport's does. */
    const stream = () => {
      const ended: RegistryError[] = [];
      const end = (error: RegistryError): void => {
        ended.push(error);
        roster.leave(end);
      };
      return { end, ended };
    };
    return { registry, keys, roster, refused, stream };
  }

  const keyPrincipal = (key: string): Principal => ({ kind: "key", keyId: hashSecret(key) });

  it("admits up to the total and the per-connection quota, names the quota it refuses with, and frees a place when a stream leaves", async () => {
    const { roster, refused, stream } = await setup({ total: 3, perConnection: 2 });
    const [a, b, c, d] = [stream(), stream(), stream(), stream()];
    expect(roster.admit(a.end, "conn-1")).toBeUndefined();
    expect(roster.admit(b.end, "conn-1")).toBeUndefined();
    expect(roster.admit(c.end, "conn-1")?.message).toBe("MAX_TEST_STREAMS_PER_CONNECTION reached (2 open on this connection)");
    expect(roster.admit(c.end, "conn-2")).toBeUndefined();
    const full = roster.admit(d.end, "conn-3");
    expect(full).toMatchObject({ code: "resource_exhausted", message: "MAX_TEST_STREAMS reached (3 open)" });
    expect(refused).toEqual(["MAX_TEST_STREAMS_PER_CONNECTION", "MAX_TEST_STREAMS"]);
    roster.leave(a.end);
    roster.leave(a.end); // a second leave changes nothing
    expect(roster.size).toBe(2);
    expect(roster.admit(d.end, "conn-1")).toBeUndefined();
    expect(roster.admit(stream().end, "conn-1")?.message).toMatch(/^MAX_TEST_STREAMS reached/);
  });

  it("holds one instance's streams to the per-instance quota over every connection, leaves keys uncapped, and frees a place when one leaves", async () => {
    const { registry, roster, refused, stream } = await setup({ perInstance: 2 });
    const principalOf = async (port: number): Promise<Principal> => {
      const { instance } = await registry.register({ serviceType: "billing", host: "127.0.0.1", port, metadata: {} });
      return { kind: "instance", instance: registry.getInstance(instance.id) };
    };
    const [mine, other] = [await principalOf(9403), await principalOf(9404)];
    const [a, b, c] = [stream(), stream(), stream()];
    // Admission knows no principal yet: every stream gets in, then the third of `mine` is refused once it is known.
    for (const [s, connection] of [[a, "conn-1"], [b, "conn-2"], [c, "conn-3"]] as const) expect(roster.admit(s.end, connection)).toBeUndefined();
    expect(roster.attach(a.end, mine)).toBeUndefined();
    expect(roster.attach(b.end, mine)).toBeUndefined();
    expect(roster.instanceQuotaRefusal(mine)).toMatchObject({ code: "resource_exhausted", message: "MAX_TEST_STREAMS_PER_INSTANCE reached (2 open with this instance's credentials)" });
    expect(roster.attach(c.end, mine)?.message).toBe("MAX_TEST_STREAMS_PER_INSTANCE reached (2 open with this instance's credentials)");
    expect(refused).toEqual(["MAX_TEST_STREAMS_PER_INSTANCE", "MAX_TEST_STREAMS_PER_INSTANCE"]);
    roster.leave(c.end); // the transport ends the refused stream

    // Another instance, and the key, are not held to `mine`'s count.
    expect(roster.instanceQuotaRefusal(other)).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      const s = stream();
      roster.admit(s.end, "conn-1");
      expect(roster.attach(s.end, keyPrincipal(KEY))).toBeUndefined();
    }
    roster.leave(a.end);
    const d = stream();
    roster.admit(d.end, "conn-4");
    expect(roster.attach(d.end, mine)).toBeUndefined();
    expect(roster.size).toBe(5);
  });

  it("ends the streams of a key reloaded away and of a removed instance, and no others", async () => {
    const { registry, keys, roster, stream } = await setup();
    const instance = await registry.register({ serviceType: "billing", host: "127.0.0.1", port: 9401, metadata: {} });
    const [byKey, byOther, byInstance] = [stream(), stream(), stream()];
    for (const s of [byKey, byOther, byInstance]) expect(roster.admit(s.end, "c")).toBeUndefined();
    expect(roster.attach(byKey.end, keyPrincipal(KEY))).toBeUndefined();
    expect(roster.attach(byOther.end, keyPrincipal(OTHER))).toBeUndefined();
    expect(roster.attach(byInstance.end, { kind: "instance", instance: registry.getInstance(instance.instance.id) })).toBeUndefined();

    keys.replace([OTHER]);
    expect(byKey.ended.map((e) => [e.code, e.message])).toEqual([["unauthenticated", "the registration key that opened this stream was removed"]]);
    expect(byOther.ended).toEqual([]);
    await registry.unregister(instance.instance.id, "unregistered");
    expect(byInstance.ended.map((e) => e.message)).toEqual(["the instance whose credentials opened this stream was removed"]);
    expect(roster.size).toBe(1);
  });

  it("answers the error to end with when the key or instance went while the stream was opening, before it was attached", async () => {
    const { registry, keys, roster, stream } = await setup();
    const instance = await registry.register({ serviceType: "billing", host: "127.0.0.1", port: 9402, metadata: {} });
    const principal: Principal = { kind: "instance", instance: registry.getInstance(instance.instance.id) };
    const [byKey, byInstance] = [stream(), stream()];
    roster.admit(byKey.end, "c");
    roster.admit(byInstance.end, "c");
    keys.replace([OTHER]);
    await registry.unregister(instance.instance.id, "unregistered");
    expect(byKey.ended).toEqual([]); // not attached yet: nothing to end
    expect(roster.attach(byKey.end, keyPrincipal(KEY))?.message).toBe("the registration key that opened this stream was removed");
    expect(roster.attach(byInstance.end, principal)?.message).toBe("the instance whose credentials opened this stream was removed");
  });

  it("endAll ends every admitted stream; a throwing onRefused does not turn a refusal into a throw", async () => {
    const registry = new ServiceRegistry({ logger: pino({ level: "silent" }), healthChecks: false });
    await registry.start();
    cleanup.push(() => registry.close());
    const roster = new StreamRoster(new RegistrationKeys([KEY]), registry, {
      total: { setting: "MAX_TEST_STREAMS", max: 2 },
      onRefused: () => {
        throw new Error("metrics broke");
      },
    });
    const ended: string[] = [];
    const ends = ["a", "b"].map((name) => {
      const end = (error: RegistryError): void => {
        ended.push(`${name}: ${error.code}`);
        roster.leave(end);
      };
      return end;
    });
    for (const end of ends) roster.admit(end, "c");
    expect(roster.admit(() => {}, "c")?.code).toBe("resource_exhausted");
    roster.endAll(new RegistryError("unavailable", "shutting down"));
    expect(ended).toEqual(["a: unavailable", "b: unavailable"]);
    expect(roster.size).toBe(0);
  });
});
