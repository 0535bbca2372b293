import { afterEach, describe, expect, it } from "vitest";
import { RegistryError } from "../../src/registry/registry-error.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

/** One instance's credentials cannot hold the registry's memory with sessions opened in a loop. */

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const registries: ServiceRegistry[] = [];
afterEach(async () => {
  for (const r of registries.splice(0)) await r.close();
});

describe("sessions per instance", () => {
  it("are capped: the fifth open session of one instance is refused with RESOURCE_EXHAUSTED, and one closing makes room", async () => {
    const registry = new ServiceRegistry({ logger: silent, healthChecks: false });
    registries.push(registry);
    await registry.start();
    const { instance } = await registry.register({ serviceType: "s", host: "127.0.0.1", port: 1, healthCheck: { kind: "session" } });
    const open = Array.from({ length: 4 }, () => registry.openSession(instance.id, () => undefined));
    let refusal: unknown;
    try {
      registry.openSession(instance.id, () => undefined);
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(RegistryError);
    expect((refusal as RegistryError).code).toBe("resource_exhausted");
    expect((refusal as RegistryError).message).toMatch(/already holds 4 sessions/);
    open[0]?.close("session closed by the instance");
    expect(() => registry.openSession(instance.id, () => undefined)).not.toThrow();
    expect(registry.getInstance(instance.id).health).toBe("healthy");
  });
});
