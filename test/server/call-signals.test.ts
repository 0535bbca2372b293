import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient, type RegisterRequest } from "../../gen/registry/v1/registry.js";
import { RegistrationKeys } from "../../src/registry/credentials.js";
import { RegistryGrpcServer } from "../../src/server/grpc-server.js";
import { aborted, HeldStore, SignalRecordingRegistry, within } from "../support/held-writes.js";
import { call, keyAuth, TEST_KEY } from "../support/registry-harness.js";

const REGISTER: RegisterRequest = { serviceType: "api", port: 8080, host: "10.0.0.1", metadata: {} };

/** A real gRPC server over a registry whose store commits can be held, and a real client. */
async function start(shutdownGraceMs = 1000) {
  const logger = pino({ level: "silent" });
  const store = new HeldStore();
  const registry = new SignalRecordingRegistry({ healthChecks: false, store, logger });
  await registry.start();
  const server = new RegistryGrpcServer({ registry, keys: new RegistrationKeys([TEST_KEY]), logger, shutdownGraceMs });
  const port = await server.listen("127.0.0.1", 0);
  const client = new RegistryServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return { store, registry, server, client };
}

/** Starts a Register and resolves with its outcome (the status error, or null for OK). */
function registerCall(client: RegistryServiceClient, deadline?: Date) {
  let cancel = (): void => {};
  const outcome = new Promise<ServiceError | null>((resolve) => {
    const pending = client.register(REGISTER, keyAuth(), deadline ? { deadline } : {}, (err) => resolve(err));
    cancel = () => pending.cancel();
  });
  return { outcome, cancel };
}

describe("a gRPC write's abort signal (CallContext.signal)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function started(shutdownGraceMs?: number) {
    const s = await start(shutdownGraceMs);
    cleanup.push(() => s.registry.close(), () => s.server.shutdown(), () => s.client.close(), () => s.store.release());
    return s;
  }

  it("reaches the core live, and aborts when the client cancels the call while the core commits it", async () => {
    const { store, registry, client } = await started();
    const held = store.hold();
    const register = registerCall(client);
    await within(5000, "the Register reaching the store", held);
    const signal = registry.lastSignal();
    expect(signal.aborted).toBe(false);

    register.cancel();
    await within(5000, "the call's signal aborting", aborted(signal));
    expect((await register.outcome)?.code).toBe(status.CANCELLED); // the client's own view of its cancel
  });

  it("aborts when the call's deadline passes", async () => {
    const { store, registry, client } = await started();
    const held = store.hold();
    const register = registerCall(client, new Date(Date.now() + 300));
    await within(5000, "the Register reaching the store", held);
    await within(5000, "the call's signal aborting", aborted(registry.lastSignal()));
    expect((await register.outcome)?.code).toBe(status.DEADLINE_EXCEEDED);
  });

  it("is not aborted once the call is answered (grpc-js reports every call cancelled after its status)", async () => {
    const { registry, client } = await started();
    const { serviceId } = await call(client, client.register, REGISTER);
    const registered = registry.lastSignal();
    await call(client, client.unregister, { instanceId: serviceId });
    const unregistered = registry.lastSignal();
    expect(unregistered).not.toBe(registered);
    // A later call on the same connection is answered after grpc-js's post-status events for the earlier ones.
    await call(client, client.listServices, {});
    expect([registered.aborted, unregistered.aborted]).toEqual([false, false]);
  });

  it("aborts, at shutdown, the writes still in flight when the grace period ends", async () => {
    const { store, registry, server, client } = await started(100);
    const held = store.hold();
    const register = registerCall(client);
    await within(5000, "the Register reaching the store", held);
    const signal = registry.lastSignal();
    const closed = server.shutdown();
    expect(signal.aborted).toBe(false);
    await within(5000, "the call's signal aborting", aborted(signal));
    store.release();
    await within(5000, "shutdown", closed);
    expect((await register.outcome)?.code).not.toBe(status.OK);
  });
});
