import { describe, expect, it } from "vitest";
import { RegistryApi } from "../../src/api/registry-api.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

const KEY = "register-defaults-test-key-0123456789";

/** The API layer as both transports call it, with the caller's address a transport would pass. */
async function apiWithCaller(peerHost: string | undefined) {
  const registry = new ServiceRegistry({ healthChecks: false });
  await registry.start();
  const api = new RegistryApi(registry, new RegistrationKeys([KEY]));
  return { registry, register: (host?: string) => api.register({ credentials: { key: KEY }, peerHost }, { serviceType: "api", port: 8080, host }) };
}

describe("Register: host defaults to the caller's address", () => {
  it("takes the caller's address when host is omitted", async () => {
    const { registry, register } = await apiWithCaller("10.1.2.3");
    expect((await register()).instance.host).toBe("10.1.2.3");
    await registry.close();
  });

  it("refuses a link-local caller address with a zone id, saying where the host came from", async () => {
    const { registry, register } = await apiWithCaller("fe80::1%eth0");
    await expect(register()).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^host: the caller's address .*zone id; set host explicitly$/) });
    expect((await register("fd00::7")).instance.host).toBe("fd00::7"); // an explicit host still works
    expect(registry.size).toBe(1);
    await registry.close();
  });

  it("refuses an unknown caller address when host is omitted", async () => {
    const { registry, register } = await apiWithCaller(undefined);
    await expect(register()).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^host: caller address is unknown/) });
    await registry.close();
  });
});

describe("Register through the library", () => {
  it("takes metadata null (a JavaScript caller's) as no metadata", async () => {
    const registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    const metadata = null as unknown as Record<string, string>;
    const { instance } = await registry.register({ serviceType: "api", port: 8080, host: "10.0.0.1", metadata });
    expect(instance.metadata).toEqual({});
    await registry.close();
  });
});
