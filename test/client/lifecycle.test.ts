import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { greeterClient, sayHello } from "../../examples/router/greeter.js";
import { startBackend } from "../../examples/router/backend.js";
import { RegistryClientError } from "../../src/client/client-error.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { registerRegistryResolver, ROUND_ROBIN_SERVICE_CONFIG, type ResolverUpdate } from "../../src/client/registry-resolver.js";
import type { Instance } from "../../src/registry/types.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { drain, freePort, Log } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FAST = { initialMs: 20, maxMs: 200 };

/** A backend as its own process (examples/router/backend.ts), as a deployment runs it. */
interface BackendProcess {
  readonly child: ChildProcess;
  readonly id: string;
  readonly exited: Promise<string | number>;
}

/**
 * Lifecycle safety (issue #25) with real processes: a backend restarted on
 * its port replaces its old entry, and a backend told to stop drains under a
 * router: no new calls reach it, calls in flight finish, then it is removed.
 */
describe("instance lifecycle: one instance per address, and drain", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function registry(): Promise<{ proc: ServerProcess; address: string; admin: RegistryClient }> {
    const proc = await startServerProcess({ SERVICE_REGISTRATION_KEY: TEST_KEY, HEALTH_CHECK_INTERVAL_MS: "200", HEALTH_CHECK_TTL_MS: "300" });
    cleanups.push(() => proc.kill("SIGKILL"));
    const address = `127.0.0.1:${proc.port}`;
    const admin = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY }, backoff: FAST });
    cleanups.push(() => admin.close());
    return { proc, address, admin };
  }

  function watchGreeters(admin: RegistryClient): ReturnType<typeof drain> {
    const w = admin.watch({ serviceType: "greeter" });
    cleanups.push(() => w.close());
    return drain(w);
  }

  function backendProcess(address: string, name: string, port: number, env: Record<string, string> = {}): Promise<BackendProcess> {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/router/backend.ts"], {
      cwd: ROOT,
      env: { ...process.env, REGISTRY_ADDRESS: address, SERVICE_REGISTRATION_KEY: TEST_KEY, NAME: name, HOST: "127.0.0.1", PORT: String(port), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => child.kill("SIGKILL"));
    let output = "";
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<string | number>((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code ?? -1)));
    return new Promise((resolve, reject) => {
      child.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
        const line = output.split("\n").find((l) => l.includes('"backend serving"'));
        if (line) resolve({ child, id: (JSON.parse(line) as { id: string }).id, exited });
      });
      void exited.then((code) => reject(new Error(`backend ${name} exited (${code}):\n${output}`)));
    });
  }

  it("restarting a backend on its port leaves one instance there: the old one is REPLACED, its token refused, and its registerSelf stands down", async () => {
    const { address, admin } = await registry();
    const watch = watchGreeters(admin);
    const port = await freePort();
    // The "old process": a backend whose process is about to be replaced but whose registerSelf still runs
    // (a frozen or half-dead process is the hard case: it must not take its address back).
    const old = await startBackend({ name: "old", registry: [address], key: TEST_KEY, port, checkIntervalMs: 100, backoff: FAST });
    const oldId = old.registration.id;
    const oldToken = old.registration.token;
    const replaced = new Promise<Instance>((resolve) => old.registration.once("replaced", resolve));
    await old.kill(); // stops serving on the port; its registration loop keeps checking
    cleanups.push(() => old.registration.close());

    const restarted = await backendProcess(address, "new", port);
    const removal = await watch.find((e) => e.type === "instanceRemoved" && e.instance.id === oldId, "the old instance's removal");
    expect(removal).toMatchObject({ reason: "replaced" });
    const registration = await watch.find((e) => e.type === "instanceRegistered" && e.instance.id === restarted.id, "the new registration");
    expect(registration.revision).toBeGreaterThan(removal.revision);

    expect((await replaced).id).toBe(restarted.id);
    const { instances } = await admin.getByType("greeter", { includeUnhealthy: true, includeDraining: true });
    expect(instances.filter((i) => i.port === port).map((i) => i.id)).toEqual([restarted.id]);
    const refused = await admin.getInstance(oldId, { auth: { instanceId: oldId, token: oldToken } }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RegistryClientError);
    expect((refused as RegistryClientError).code).toBe(status.UNAUTHENTICATED);

    // The old registration did not fight back: a few of its check intervals later, still one instance, the new one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const later = await admin.getByType("greeter", { includeUnhealthy: true, includeDraining: true });
    expect(later.instances.map((i) => i.id)).toEqual([restarted.id]);
  }, 30_000);

  it("a backend stopped with SIGTERM under a registry:/// router drains: no new calls reach it, its call in flight finishes, then it is removed", async () => {
    const { address, admin } = await registry();
    const watch = watchGreeters(admin);
    const [stays, leaves] = await Promise.all([
      backendProcess(address, "stays", await freePort(), { GRACE_MS: "10000" }),
      backendProcess(address, "leaves", await freePort(), { GRACE_MS: "10000" }),
    ]);

    const updates = new Log<ResolverUpdate>();
    const authority = `lifecycle-${process.pid}`;
    const routerRegistry = new RegistryClient({ addresses: [address], auth: { key: TEST_KEY }, backoff: FAST });
    cleanups.push(() => routerRegistry.close());
    cleanups.push(registerRegistryResolver({ client: routerRegistry, authority, onUpdate: (u) => updates.push(u) }));
    const router = greeterClient(`registry://${authority}/greeter`, credentials.createInsecure(), {
      "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG,
    });
    cleanups.push(() => router.close());
    router.getChannel().getConnectivityState(true); // resolve now, not at the first call
    await updates.until((u) => u.at(-1)?.addresses.length === 2, "the router to see both backends");

    // Both connected (round robin picks among ready ones only), then a slow call on each (it alternates),
    // still in flight when "leaves" is told to stop.
    const reached = new Set<string>();
    while (reached.size < 2) reached.add((await sayHello(router, "warm-up")).backend);
    const slow = [sayHello(router, "slow-1", 8000, 1500), sayHello(router, "slow-2", 8000, 1500)];
    await new Promise((resolve) => setTimeout(resolve, 200)); // both calls are on the wire
    leaves.child.kill("SIGTERM");
    await watch.find((e) => e.type === "instanceDraining" && e.instance.id === leaves.id, "the drain on the watch stream");
    await updates.until((u) => u.at(-1)?.addresses.length === 1, "the router to drop the draining backend");

    // New calls after the drain: every one answered, and by the backend that stays.
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => sayHello(router, `after-${i}`)));
    expect(new Set(after.map((r) => r.backend))).toEqual(new Set(["stays"]));

    // The calls in flight both finish, one of them on the drained backend.
    const finished = await Promise.all(slow);
    expect(finished.map((r) => r.backend).sort()).toEqual(["leaves", "stays"]);

    const removed = await watch.find((e) => e.type === "instanceRemoved" && e.instance.id === leaves.id, "the drained backend's removal", 10_000);
    expect(removed).toMatchObject({ reason: "unregistered" });
    expect(await leaves.exited).toBe("SIGTERM");
    const { instances } = await admin.getByType("greeter", { includeUnhealthy: true, includeDraining: true });
    expect(instances.map((i) => i.id)).toEqual([stays.id]);
  }, 40_000);
});
