import { status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { RegisterRequest, RegisterResponse } from "../../gen/registry/v1/registry.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { FlakyStore } from "../surfaces/flaky-store.js";
import { call, keyAuth, startHarness, type Harness } from "../support/registry-harness.js";
import { tempDataDir } from "../support/server-process.js";
import { editDatabase } from "../support/sqlite-data.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };
type Outcome = { ok: RegisterResponse } | { err: ServiceError };

describe("the write path: one commit queue, one instance table", () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it("answers every call of a burst on a real server on its own: valid ones registered once each, bad ones with their own status", async () => {
    const h: Harness = await startHarness();
    closers.push(() => h.close());
    const requests: { request: RegisterRequest; key: string | undefined }[] = Array.from({ length: 40 }, (_, i) => ({
      request: { serviceType: "burst", port: 9000 + i, host: "10.0.0.1", metadata: {} },
      key: undefined,
    }));
    requests[7] = { request: { serviceType: "burst", port: 0, host: "10.0.0.1", metadata: {} }, key: undefined };
    requests[20] = { request: { serviceType: "Not A Type", port: 9020, host: "10.0.0.1", metadata: {} }, key: undefined };
    requests[33] = { request: { serviceType: "burst", port: 9033, host: "10.0.0.1", metadata: {} }, key: "wrong-key-0123456789abcdef" };

    const outcomes = await Promise.all(
      requests.map(({ request, key }) =>
        call(h.client, h.client.register, request, key ? keyAuth(key) : keyAuth()).then(
          (ok): Outcome => ({ ok }),
          (err: ServiceError): Outcome => ({ err }),
        ),
      ),
    );
    const failed = outcomes.flatMap((o, i) => ("err" in o ? [[i, o.err.code, o.err.details] as const] : []));
    expect(failed.map(([i, code]) => [i, code])).toEqual([
      [7, status.INVALID_ARGUMENT],
      [20, status.INVALID_ARGUMENT],
      [33, status.UNAUTHENTICATED],
    ]);
    const registered = outcomes.flatMap((o) => ("ok" in o ? [o.ok] : []));
    expect(registered).toHaveLength(37);
    expect(new Set(registered.map((r) => r.serviceId)).size).toBe(37);
    expect(new Set(registered.map((r) => r.instance?.revision)).size).toBe(37);
    for (const [i, o] of outcomes.entries()) if ("ok" in o) expect(o.ok.instance?.port).toBe(9000 + i);
    const all = await call(h.client, h.client.getByType, { serviceType: "burst", includeUnhealthy: true, includeDraining: false, selector: {} });
    expect(all.instances.map((x) => x.port).sort()).toEqual(registered.map((r) => r.instance?.port).sort());
  });

  it("leaves the table, the revision and the watchers untouched when the store fails a batch, and goes on after", async () => {
    const store = new FlakyStore();
    const registry = new ServiceRegistry({ store, healthChecks: false, logger: silent });
    await registry.start();
    closers.push(() => registry.close());
    const kept = await registry.register({ serviceType: "api", host: "10.0.0.1", port: 80 });
    const watcher = registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: {} });
    expect((await watcher.next()).value).toMatchObject({ type: "snapshot", revision: 1 });
    expect((await watcher.next()).value).toMatchObject({ type: "synced" });
    store.failing = true;
    // One batch: a removal, two registrations, and a removal of what is not there.
    const answers = await Promise.allSettled([
      registry.unregister(kept.instance.id),
      registry.register({ serviceType: "api", host: "10.0.0.2", port: 80 }),
      registry.register({ serviceType: "api", host: "10.0.0.3", port: 80 }),
      registry.unregister("nope"),
    ]);
    expect(answers.map((a) => (a.status === "rejected" ? (a.reason as Error).message : "ok"))).toEqual([
      "disk I/O error", "disk I/O error", "disk I/O error", 'instance "nope" not found',
    ]);
    expect(registry.revision).toBe(1);
    expect(registry.getByType("api", true).instances.map((i) => i.host)).toEqual(["10.0.0.1"]);
    store.failing = false;
    const next = await registry.register({ serviceType: "api", host: "10.0.0.4", port: 80 });
    expect(next.instance.revision).toBe(2); // no revision was spent on the failed batch
    const event = await watcher.next();
    expect(event.value).toMatchObject({ type: "change", change: { kind: "registered", revision: 2 } });
    expect(registry.authenticate(kept.instance.id, kept.token).id).toBe(kept.instance.id);
    watcher.end();
  });

  it("drops a write whose caller stopped listening before its batch, and changes nothing", async () => {
    const registry = new ServiceRegistry({ healthChecks: false, logger: silent });
    await registry.start();
    closers.push(() => registry.close());
    const caller = new AbortController();
    const pending = registry.register({ serviceType: "api", host: "10.0.0.1", port: 80 }, { signal: caller.signal });
    caller.abort();
    await expect(pending).rejects.toMatchObject({ code: "cancelled" });
    expect(registry.size).toBe(0);
    expect(registry.revision).toBe(0);
  });

  it("commits a health change after the store comes back, when a threshold was crossed while it was lost", async () => {
    // A real MemoryStore that can report its backend lost, as etcd does when a replica is cut off.
    class ReachableStore extends MemoryStore {
      private listener: (available: boolean, reason: string) => void = () => {};
      onAvailabilityChange(listener: (available: boolean, reason: string) => void): void {
        this.listener = listener;
      }
      reachable(available: boolean): void {
        this.listener(available, available ? "back" : "lost");
      }
    }
    const store = new ReachableStore();
    let failing = false;
    const results: boolean[] = [];
    const registry = new ServiceRegistry({
      store,
      logger: silent,
      healthCheckInterval: 20,
      probe: async () => (failing ? { ok: false, reason: "HTTP 503" } : { ok: true, status: 200 }),
    });
    registry.on("healthCheckFailed", () => results.push(false));
    await registry.start();
    closers.push(() => registry.close());
    const { instance } = await registry.register({ serviceType: "api", host: "10.0.0.1", port: 80 });
    store.reachable(false);
    failing = true;
    // The threshold (1 failure) is crossed while the store is lost: the transition cannot be committed.
    await new Promise<void>((resolve) => registry.once("healthCheckFailed", () => resolve()));
    store.reachable(true);
    const turnedUnhealthy = new Promise<void>((resolve) =>
      registry.on("change", (c) => c.kind === "health" && c.instance.health === "unhealthy" && resolve()),
    );
    await turnedUnhealthy;
    expect(registry.getInstance(instance.id).health).toBe("unhealthy");
  });

  it("goes on from an instance's revision when a hand-edited SQLite file puts it above the store's", async () => {
    const dir = tempDataDir();
    const first = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthChecks: false, logger: silent });
    await first.start();
    const { instance } = await first.register({ serviceType: "api", host: "10.0.0.1", port: 80 }); // revision 1
    await first.close();
    editDatabase(dir, `UPDATE instances SET revision = 40 WHERE id = '${instance.id}'`);
    const second = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthChecks: false, logger: silent });
    await second.start();
    closers.push(() => second.close());
    expect(second.revision).toBe(40);
    const change = await second.unregister(instance.id);
    expect(change.revision).toBe(41);
  });

  it("finds each SQLite row by its id: health changes and removals reach the right row after a restart", async () => {
    const dir = tempDataDir();
    let health = "pass";
    const probe = async () => (health === "pass" ? { ok: true as const, status: 200 } : { ok: false as const, reason: "HTTP 503" });
    const first = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthChecks: false, logger: silent });
    await first.start();
    const ids = [];
    for (const host of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) ids.push((await first.register({ serviceType: "api", host, port: 80 })).instance.id);
    await first.unregister(ids[0] as string);
    await first.close();
    const second = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthCheckInterval: 10, probe, logger: silent });
    await second.start();
    health = "fail";
    await new Promise<void>((resolve) => second.on("change", (c) => c.kind === "health" && second.getByType("api").instances.length === 0 && resolve()));
    await second.unregister(ids[1] as string);
    await second.close();
    const third = new ServiceRegistry({ store: new SqliteStore({ dataDir: dir }), healthChecks: false, logger: silent });
    await third.start();
    closers.push(() => third.close());
    expect(third.getByType("api", true).instances.map((i) => [i.host, i.health])).toEqual([["10.0.0.3", "unhealthy"]]);
  });
});
