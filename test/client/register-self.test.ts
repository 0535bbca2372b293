import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClientError } from "../../src/client/client-error.js";
import { registerSelf, SESSION_METADATA_KEY, type SelfRegistration } from "../../src/client/register-self.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { waitFor } from "../support/wait-for.js";
import { drain, freePort, Log, startLocalRegistry } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FAST = { initialMs: 20, maxMs: 200 };

describe("registerSelf", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const harness = async (): Promise<Harness> => {
    const h = await startHarness();
    cleanups.push(() => h.close());
    return h;
  };
  const admin = (address: string): RegistryClient => {
    const c = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY } });
    cleanups.push(() => c.close());
    return c;
  };
  const self = async (address: string, extra: Partial<Parameters<typeof registerSelf>[0]> = {}): Promise<SelfRegistration> => {
    const r = await registerSelf({
      connection: { addresses: [address] },
      key: TEST_KEY,
      serviceType: "api",
      host: "10.0.0.7",
      port: 8080,
      metadata: { zone: "eu-1" },
      checkIntervalMs: 100,
      backoff: FAST,
      ...extra,
    });
    cleanups.push(() => r.close());
    return r;
  };

  it("registers, keeps the credentials, and unregisters on close()", async () => {
    const h = await harness();
    const r = await self(h.address);
    const instance = await admin(h.address).getInstance(r.id, { auth: r.auth });
    expect(instance).toMatchObject({ serviceType: "api", host: "10.0.0.7", port: 8080, metadata: { zone: "eu-1" } });
    expect(instance.metadata[SESSION_METADATA_KEY]).toMatch(/^[0-9a-f-]{36}$/);
    await r.close();
    expect((await admin(h.address).getByType("api", { includeUnhealthy: true })).instances).toEqual([]);
    await r.close(); // idempotent
  });

  it("close({ graceMs, inFlight }) drains first, unregisters once the calls in flight are done (not at the end of the grace)", async () => {
    const h = await harness();
    const r = await self(h.address);
    const stream = admin(h.address).watch({ serviceType: "api" });
    cleanups.push(() => stream.close());
    const watch = drain(stream);
    await watch.find((e) => e.type === "snapshot", "the snapshot");
    let finishInFlight = (): void => {};
    const inFlight = new Promise<void>((resolve) => (finishInFlight = resolve));
    const closed = r.close({ graceMs: 20_000, inFlight });
    const draining = await watch.find((e) => e.type === "instanceDraining", "the drain");
    expect(draining).toMatchObject({ instance: { id: r.id, draining: true } });
    // Routers have stopped picking it; the calls it still serves finish, then it goes.
    expect(watch.items.some((e) => e.type === "instanceRemoved")).toBe(false);
    finishInFlight();
    await closed;
    const removed = await watch.find((e) => e.type === "instanceRemoved", "the removal");
    expect(removed).toMatchObject({ instance: { id: r.id }, reason: "unregistered" });
    expect(removed.revision).toBeGreaterThan(draining.revision);
  });

  it("registers again when the registry answers UNAUTHENTICATED or NOT_FOUND for it", async () => {
    const h = await harness();
    const r = await self(h.address);
    const firstId = r.id;
    const lost = new Log<RegistryClientError>();
    const registered = new Log<string>();
    r.on("lost", (e) => lost.push(e));
    r.on("registered", (i) => registered.push(i.id));

    await admin(h.address).unregister(firstId); // as an operator, or an expiry, would
    const newId = await registered.find(() => true, "the registration to come back");
    expect(lost.items[0]?.code).toBe(status.UNAUTHENTICATED); // its token died with the instance
    expect(newId).not.toBe(firstId);
    expect(r.id).toBe(newId);
    const { instances } = await admin(h.address).getByType("api");
    expect(instances.map((i) => i.id)).toEqual([newId]);
  });

  it("removes its own duplicate when a Register's answer was lost after the registry applied it", async () => {
    const h = await harness();
    /** A client whose first Register reaches the registry but whose answer is lost, as a timeout would lose it. */
    class LossyClient extends RegistryClient {
      lost = 0;
      override async register(...args: Parameters<RegistryClient["register"]>) {
        const result = await super.register(...args);
        if (this.lost++ === 0) throw new RegistryClientError(status.DEADLINE_EXCEEDED, "deadline exceeded", "Register", h.address);
        return result;
      }
    }
    const lossy = new LossyClient({ addresses: [h.address] });
    cleanups.push(() => lossy.close());
    const r = await self(h.address, { client: lossy, connection: undefined });
    expect(lossy.lost).toBe(2); // registered twice: the lost one and the retry
    const { instances } = await admin(h.address).getByType("api", { includeUnhealthy: true });
    expect(instances.map((i) => i.id)).toEqual([r.id]); // the orphan from the lost answer is gone
  });

  it("also removes a duplicate the registry commits after its first look (a Register held up in the network)", async () => {
    const h = await harness();
    /** A client whose first Register times out while still on its way: the test lets it land later. */
    class HoldingClient extends RegistryClient {
      held: Parameters<RegistryClient["register"]> | undefined;
      override async register(...args: Parameters<RegistryClient["register"]>) {
        if (this.held) return super.register(...args);
        this.held = args;
        throw new RegistryClientError(status.DEADLINE_EXCEEDED, "deadline exceeded", "Register", h.address);
      }
    }
    const holding = new HoldingClient({ addresses: [h.address] });
    cleanups.push(() => holding.close());
    const r = await self(h.address, { client: holding, connection: undefined });
    const stream = admin(h.address).watch({ serviceType: "api" });
    cleanups.push(() => stream.close());
    const watch = drain(stream);
    await watch.find((e) => e.type === "snapshot", "the snapshot");

    // registerSelf has registered again and found no duplicate; now the held Register commits. It is
    // for the same address, so it replaces the live instance (one instance per address): registerSelf
    // finds its credentials refused, sees its own session's stray at its address (not another
    // process), and registers again, which replaces the stray in turn.
    const before = r.id;
    const late = await admin(h.address).register(...holding.held!);
    expect(late.instance.metadata[SESSION_METADATA_KEY]).toBe(r.instance.metadata[SESSION_METADATA_KEY]);
    await watch.find((e) => e.type === "instanceRemoved" && e.instance.id === before && e.reason === "replaced", "the late Register replacing it");
    const removed = await watch.find((e) => e.type === "instanceRemoved" && e.instance.id === late.instance.id, "the stray's removal");
    expect(removed).toMatchObject({ reason: "replaced" });
    // The answer to its Register and the watch event race: wait for registerSelf to hold the new id.
    await waitFor(() => r.id !== before && r.id !== late.instance.id, "registerSelf to hold its new registration");
    const { instances } = await admin(h.address).getByType("api", { includeUnhealthy: true, includeDraining: true });
    expect(instances.map((i) => i.id)).toEqual([r.id]);
    expect((await admin(h.address).getInstance(r.id, { auth: r.auth })).id).toBe(r.id);
  });

  it("rejects at once what no retry can fix: a wrong key, an invalid registration", async () => {
    const h = await harness();
    const wrongKey = self(h.address, { key: "not-the-key-0123456789" });
    await expect(wrongKey).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(self(h.address, { serviceType: "Not Valid" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it("waits for a registry that is not up yet, then registers once; onRetry hears why it waits", async () => {
    const port = await freePort();
    const retries = new Log<RegistryClientError>();
    const pending = self(`127.0.0.1:${port}`, { onRetry: (err) => retries.push(err), connection: { addresses: [`127.0.0.1:${port}`], failFast: true } });
    await retries.find((err) => err.code === status.UNAVAILABLE && err.method === "Register", "a retried Register");
    const local = await startLocalRegistry(port, undefined, TEST_KEY);
    cleanups.push(() => local.close());
    const r = await pending;
    expect(local.registry.getByType("api", false).instances.map((i) => i.id)).toEqual([r.id]);
  });

  it("gives up start-up when its signal aborts: rejects with the reason and leaves nothing registered, even a Register answered later", async () => {
    // A registry that is not up: the abort ends the retries (the Register waiting for a connection, within its deadline).
    const unreachable = new AbortController();
    const pending = self(`127.0.0.1:${await freePort()}`, { signal: unreachable.signal, deadlineMs: 300 });
    unreachable.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });

    // A Register on its way when the abort comes: once answered, it is removed.
    const h = await harness();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    /** A client whose Register waits at a gate the test opens. */
    class GatedClient extends RegistryClient {
      override async register(...args: Parameters<RegistryClient["register"]>) {
        reached();
        await gate;
        return super.register(...args);
      }
    }
    const gated = new GatedClient({ addresses: [h.address] });
    cleanups.push(() => gated.close());
    const stream = admin(h.address).watch({ serviceType: "api" });
    cleanups.push(() => stream.close());
    const watch = drain(stream);
    await watch.find((e) => e.type === "snapshot", "the snapshot");
    const inFlight = new AbortController();
    const starting = self(h.address, { client: gated, connection: undefined, signal: inFlight.signal });
    await held;
    inFlight.abort();
    release();
    await expect(starting).rejects.toMatchObject({ name: "AbortError" });
    const registered = await watch.find((e) => e.type === "instanceRegistered", "the held Register to commit");
    await watch.find((e) => e.type === "instanceRemoved", "its removal");
    expect((await admin(h.address).getByType("api", { includeUnhealthy: true, includeDraining: true })).instances).toEqual([]);
    expect(registered.type === "instanceRegistered" && registered.instance.port).toBe(8080);
  });

  it("with unregisterOnSignal, unregisters on SIGTERM and then lets the signal end the process", async () => {
    const h = await harness();
    const watch = drain(admin(h.address).watch({ serviceType: "greeter" }));
    const child = spawn(process.execPath, ["--import", "tsx", "examples/router/backend.ts"], {
      cwd: ROOT,
      env: { ...process.env, REGISTRY_ADDRESS: h.address, SERVICE_REGISTRATION_KEY: TEST_KEY, NAME: "sig", HOST: "127.0.0.1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => child.kill("SIGKILL"));
    let output = "";
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<string | number>((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code ?? -1)));
    const serving = await new Promise<{ id: string }>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        output += d.toString();
        const line = output.split("\n").find((l) => l.includes('"backend serving"'));
        if (line) resolve(JSON.parse(line) as { id: string });
      });
      void exited.then((code) => reject(new Error(`backend exited (${code}):\n${output}`)));
    });
    await watch.find((e) => e.type === "instanceRegistered" && e.instance.id === serving.id, "the backend's registration");

    child.kill("SIGTERM");
    const removed = await watch.find((e) => e.type === "instanceRemoved", "the backend to unregister");
    expect(removed).toMatchObject({ instance: { id: serving.id }, reason: "unregistered" });
    expect(await exited).toBe("SIGTERM");
  });
});
