import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RegistryApi } from "../../src/api/registry-api.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

const KEY = "api-selector-test-key-0123456789";
const ctx = { credentials: { key: KEY } };

/**
 * The selector checks every transport gets from the API layer. gRPC's map and
 * HTTP's query can only carry strings; a transport decoding JSON (or a
 * JavaScript caller of the API) can hand over anything.
 */
describe("RegistryApi: selectors as a transport decoded them", () => {
  let registry: ServiceRegistry;
  let api: RegistryApi;
  beforeEach(async () => {
    registry = new ServiceRegistry({ healthChecks: false });
    await registry.start();
    api = new RegistryApi(registry, new RegistrationKeys([KEY]));
  });
  afterEach(async () => {
    await registry.close();
  });

  const watch = (selector: Record<string, unknown>) =>
    api.watch(ctx, { serviceType: "api", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector });

  it.each([
    ["a number", { zone: 1 }],
    ["null", { zone: null }],
    ["an object", { zone: { eq: "eu-1" } }],
  ])("refuses %s as a value, naming selector.zone, for GetByType and WatchInstances", async (_name, selector) => {
    const refusal = { code: "invalid_argument", message: "selector.zone: must be a string" };
    // Sync or async, as the credentials' check happens to answer.
    await expect(Promise.resolve().then(() => api.getByType(ctx, "api", { selector }))).rejects.toMatchObject(refusal);
    await expect(watch(selector)).rejects.toMatchObject(refusal);
    expect(registry.watchStats().watchers).toBe(0);
  });

  it("opens a watch with a checked selector, and treats an empty one as none", async () => {
    await api.register({ ...ctx, peerHost: "10.0.0.1" }, { serviceType: "api", port: 8080, metadata: { zone: "eu-1" } });
    await api.register({ ...ctx, peerHost: "10.0.0.2" }, { serviceType: "api", port: 8080, metadata: { zone: "us-1" } });
    const snapshotOf = async (selector: Record<string, unknown>) => {
      const { watcher } = await watch(selector);
      const hosts: string[] = [];
      for (let e = watcher.poll(); e?.type === "snapshot"; e = watcher.poll()) hosts.push(e.instance.host);
      watcher.end();
      return hosts.sort();
    };
    expect(await snapshotOf({ zone: "eu-1" })).toEqual(["10.0.0.1"]);
    expect(await snapshotOf({})).toEqual(["10.0.0.1", "10.0.0.2"]);
  });
});
