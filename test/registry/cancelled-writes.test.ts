import { afterEach, describe, expect, it } from "vitest";
import { RegistryApi } from "../../src/api/registry-api.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

const KEY = "cancelled-writes-test-key-0123456789";
const REQUEST = { serviceType: "api", port: 8080, host: "10.0.0.1" };

/** A signal whose call has already ended, as a transport hands one over when the client left mid-call. */
function abortedSignal(): AbortSignal {
  const controller = new AbortController();
  controller.abort();
  return controller.signal;
}

describe("RegistryApi: a write whose call was already cancelled is not made", () => {
  let registry: ServiceRegistry;
  let api: RegistryApi;
  afterEach(async () => {
    await registry.close();
  });

  async function start(): Promise<void> {
    registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    api = new RegistryApi(registry, new RegistrationKeys([KEY]));
  }

  it("Register rejects with cancelled and registers nothing", async () => {
    await start();
    await expect(api.register({ credentials: { key: KEY }, signal: abortedSignal() }, REQUEST)).rejects.toMatchObject({
      code: "cancelled",
      message: "the call ended before its change was committed; nothing was changed",
    });
    expect(registry.size).toBe(0);
    expect(registry.revision).toBe(0);
  });

  it("Unregister rejects with cancelled and the instance stays", async () => {
    await start();
    const { instance, token } = await api.register({ credentials: { key: KEY } }, REQUEST);
    const asInstance = { credentials: { serviceId: instance.id, serviceToken: token }, signal: abortedSignal() };
    await expect(api.unregister(asInstance, instance.id)).rejects.toMatchObject({ code: "cancelled" });
    expect(registry.getInstance(instance.id).id).toBe(instance.id);
  });

  it("checks credentials first: a stranger's cancelled call is still unauthenticated", async () => {
    await start();
    await expect(api.register({ credentials: { key: "not-the-key-0123456789abcdef" }, signal: abortedSignal() }, REQUEST)).rejects.toMatchObject({
      code: "unauthenticated",
    });
  });

  it("a live signal changes nothing", async () => {
    await start();
    const { instance } = await api.register({ credentials: { key: KEY }, signal: new AbortController().signal }, REQUEST);
    const change = await api.unregister({ credentials: { key: KEY }, signal: new AbortController().signal }, instance.id);
    expect(change.instance.id).toBe(instance.id);
    expect(registry.size).toBe(0);
  });
});
