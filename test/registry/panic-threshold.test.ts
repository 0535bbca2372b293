import pino from "pino";
import { credentials, makeGenericClientConstructor } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, HealthStatus, RegistryServiceClient, type WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { HealthyInstances, type HealthySet } from "../../src/client/healthy-instances.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import { registerRegistryResolver, ROUND_ROBIN_SERVICE_CONFIG, type ResolverUpdate } from "../../src/client/registry-resolver.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { tempDataDir } from "../support/server-process.js";
import { Log } from "../client/helpers.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call, TEST_KEY, WatchCursor } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { recordings } from "../support/registry-recordings.js";

const INTERVAL_MS = 200;
const DEREGISTER_AFTER_MS = 300;

type Stack = Awaited<ReturnType<typeof startStack>>;

describe("per-type panic threshold", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A server as `serve` runs it, probing every INTERVAL_MS, with what its registry sees recorded. */
  async function start(env: Record<string, string> = {}) {
    const stack = await startStack({
      HEALTH_CHECKS: "true",
      HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS),
      HEALTH_CHECK_TTL_MS: "200",
      DEREGISTER_AFTER_MS: String(DEREGISTER_AFTER_MS),
      ...env,
    });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const seen = recordings(stack.registry);
    /** Registers `count` instances of `serviceType`, each behind its own /health server, and waits until each passed a probe. */
    const fleet = async (serviceType: string, count: number): Promise<{ backends: HealthServer[]; ids: string[] }> => {
      const backends: HealthServer[] = [];
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const backend = await startHealthServer();
        cleanup.push(() => backend.close());
        backends.push(backend);
        ids.push((await call(client, client.register, { serviceType, host: "127.0.0.1", port: backend.port, metadata: {} })).serviceId);
      }
      await seen.waiter.until(() => ids.every((id) => seen.passed.has(id)), `a passing probe of every ${serviceType} instance`, 5000);
      return { backends, ids };
    };
    const getByType = (serviceType: string) =>
      call(client, client.getByType, { serviceType, includeUnhealthy: false, includeDraining: false, selector: {} });
    return { stack, client, seen, fleet, getByType };
  }

  it("answers with every instance of a type under the threshold, flagged on GetByType, HTTP, ListServices, the watch and the SDK, and expires none", async () => {
    const { stack, client, seen, fleet, getByType } = await start();
    const billing = await fleet("billing", 10);
    // Below PANIC_MIN_INSTANCES (3): behaves as without panic. Its failures and
    // billing's (9 of 12 probed) stay under MASS_FAILURE_MIN_INSTANCES, so the
    // registry does not suspect its own network.
    const tiny = await fleet("tiny", 2);

    const watch = WatchCursor.open(client, { serviceType: "billing" });
    cleanup.push(() => watch.cancel());
    const snapshot = await readSnapshot(watch);
    expect(snapshot.map((e) => e.panic)).toEqual(Array(10).fill(false));
    const tinyWatch = WatchCursor.open(client, { serviceType: "tiny" });
    cleanup.push(() => tinyWatch.cancel());
    await readSnapshot(tinyWatch);
    const sdk = healthySets(stack);
    await sdk.find((s) => s.ok && s.instances.length === 10, "the SDK's set of ten healthy instances");
    const resolved = resolverUpdates(stack);
    await resolved.find((u) => u.addresses.length === 10, "the resolver's ten addresses");

    // 70 % of billing's backends (and both of tiny's) die.
    const dead = billing.ids.slice(0, 7);
    await Promise.all([...billing.backends.slice(0, 7), ...tiny.backends].map((b) => b.stop()));
    const failed: WatchInstancesResponse[] = [];
    while (failed.length < 7) {
      const event = await watch.next(5000);
      if (event.type === EventType.EVENT_TYPE_HEALTH_CHECK_FAILED) failed.push(event);
    }
    // The flag is the type's state after each event: in panic from the sixth failure (4 of 10 healthy < 50 %).
    expect(failed.map((e) => e.panic)).toEqual([false, false, false, false, false, true, true]);

    const answer = await getByType("billing");
    expect(answer.panic).toBe(true);
    expect(answer.instances.map((i) => i.id).sort()).toEqual([...billing.ids].sort());
    expect(answer.instances.filter((i) => i.health === HealthStatus.HEALTH_STATUS_UNHEALTHY)).toHaveLength(7);
    const http = await fetch(`${stack.httpUrl}/services/billing`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    const httpAnswer = (await http.json()) as { instances: { id: string; health: string }[]; panic: boolean };
    expect(httpAnswer.panic).toBe(true);
    expect(httpAnswer.instances.map((i) => i.id).sort()).toEqual([...billing.ids].sort());
    const sdkClient = new RegistryClient({ addresses: [stack.address], auth: { key: TEST_KEY } });
    cleanup.push(() => sdkClient.close());
    const viaSdk = await sdkClient.getByType("billing");
    expect(viaSdk.panic).toBe(true);
    expect(viaSdk.instances).toHaveLength(10);
    const listed = await call(client, client.listServices, {});
    expect(listed.services.find((s) => s.serviceType === "billing")).toMatchObject({ healthyCount: 3, totalCount: 10, panic: true });
    expect(parseExposition(await stack.metrics.exposition()).value("registry_service_types", { state: "panic" })).toBe(1);
    const again = WatchCursor.open(client, { serviceType: "billing" });
    cleanup.push(() => again.cancel());
    expect((await readSnapshot(again)).map((e) => e.panic)).toEqual(Array(10).fill(true));

    // The SDK and the resolver use every instance while the type is in panic.
    await sdk.find((s) => s.ok && s.panic && s.instances.length === 10, "the SDK's set of all ten instances, in panic");
    await resolved.find((u) => u.panic === true && u.addresses.length === 10, "the resolver's ten addresses, in panic");

    // The small type expires as it always did, and answers healthy instances only.
    await seen.waiter.until(
      () => tiny.ids.every((id) => seen.changes.some((c) => c.kind === "removed" && c.instance.id === id && c.reason === "health_check_expired")),
      "both tiny instances to expire",
      5000,
    );
    const tinyEvents = [await tinyWatch.next(), await tinyWatch.next(), await tinyWatch.next(), await tinyWatch.next()];
    expect(tinyEvents.map((e) => e.type).sort()).toEqual(
      [EventType.EVENT_TYPE_HEALTH_CHECK_FAILED, EventType.EVENT_TYPE_HEALTH_CHECK_FAILED, EventType.EVENT_TYPE_INSTANCE_REMOVED, EventType.EVENT_TYPE_INSTANCE_REMOVED].sort(),
    );
    expect(tinyEvents.map((e) => e.panic), "0 of 2 healthy, but under PANIC_MIN_INSTANCES").toEqual([false, false, false, false]);
    expect((await getByType("tiny")).instances).toEqual([]);
    // Billing's dead instances go on failing well past DEREGISTER_AFTER_MS, and none is removed.
    await seen.waiter.until(
      () => dead.every((id) => (seen.failedAt.get(id) ?? []).some((t) => t >= (seen.unhealthyAt.get(id) ?? Infinity) + DEREGISTER_AFTER_MS + INTERVAL_MS)),
      "every dead billing instance failing for longer than DEREGISTER_AFTER_MS and an interval after turning unhealthy",
      5000,
    );
    expect(seen.changes.filter((c) => c.kind === "removed" && c.instance.serviceType === "billing")).toEqual([]);
    expect((await getByType("billing")).instances).toHaveLength(10);

    // Back above the threshold: healthy instances only, unflagged.
    await Promise.all(billing.backends.slice(0, 7).map((b) => b.resume()));
    const recovered: WatchInstancesResponse[] = [];
    while (recovered.length < 7) {
      const event = await watch.next(5000);
      if (event.type === EventType.EVENT_TYPE_HEALTH_CHECK_PASSED) recovered.push(event);
    }
    // 5 of 10 healthy is not fewer than 50 %: out of panic from the second recovery.
    expect(recovered.map((e) => e.panic)).toEqual([true, false, false, false, false, false, false]);
    const after = await getByType("billing");
    expect(after.panic).toBe(false);
    expect(after.instances).toHaveLength(10);
    expect(parseExposition(await stack.metrics.exposition()).value("registry_service_types", { state: "panic" })).toBe(0);
    await sdk.find((s) => s.ok && !s.panic && s.instances.length === 10, "the SDK's set of ten healthy instances again");
  }, 30_000);

  it("PANIC_THRESHOLD_PERCENT sets the threshold, and 0 turns panic off: dead instances are hidden and expire", async () => {
    const strict = await start({ PANIC_THRESHOLD_PERCENT: "80" });
    const strictFleet = await strict.fleet("search", 4);
    await (strictFleet.backends[0] as HealthServer).stop();
    // 3 of 4 healthy is 75 %, under 80 %.
    await strict.seen.waiter.until(() => strict.seen.changes.some((c) => c.kind === "health"), "one instance to turn unhealthy", 5000);
    const strictAnswer = await strict.getByType("search");
    expect(strictAnswer.panic).toBe(true);
    expect(strictAnswer.instances).toHaveLength(4);

    const off = await start({ PANIC_THRESHOLD_PERCENT: "0" });
    const offFleet = await off.fleet("search", 4);
    await Promise.all(offFleet.backends.slice(0, 3).map((b) => b.stop()));
    await off.seen.waiter.until(
      () => offFleet.ids.slice(0, 3).every((id) => off.seen.changes.some((c) => c.kind === "removed" && c.instance.id === id)),
      "the three dead instances to expire",
      5000,
    );
    const offAnswer = await off.getByType("search");
    expect(offAnswer.panic).toBe(false);
    expect(offAnswer.instances.map((i) => i.id)).toEqual([offFleet.ids[3]]);
  }, 30_000);

  /** Watches the type's healthy set through the SDK (`HealthyInstances`, what the resolver uses). */
  function healthySets(stack: Stack): Log<Extract<HealthySet, { ok: true }>> {
    const client = new RegistryClient({ addresses: [stack.address], auth: { key: TEST_KEY } });
    const sets = new Log<Extract<HealthySet, { ok: true }>>();
    const unsubscribe = new HealthyInstances(client, "billing").subscribe((set) => set.ok && sets.push(set));
    cleanup.push(() => {
      unsubscribe();
      client.close();
    });
    return sets;
  }

  /** The address lists the `registry:///billing` resolver hands a channel. */
  function resolverUpdates(stack: Stack): Log<ResolverUpdate> {
    const client = new RegistryClient({ addresses: [stack.address], auth: { key: TEST_KEY } });
    const updates = new Log<ResolverUpdate>();
    const unregister = registerRegistryResolver({ client, authority: "panic", onUpdate: (u) => updates.push(u) });
    // Any channel on the target starts the resolver; nothing needs to answer on the addresses.
    const Channel = makeGenericClientConstructor({}, "Nothing");
    const channel = new Channel("registry://panic/billing", credentials.createInsecure(), { "grpc.service_config": ROUND_ROBIN_SERVICE_CONFIG });
    channel.getChannel().getConnectivityState(true);
    cleanup.push(() => {
      channel.close();
      unregister();
      client.close();
    });
    return updates;
  }
});


/** Reads a watch's snapshot up to SYNCED; answers the snapshot events. */
async function readSnapshot(watch: WatchCursor): Promise<WatchInstancesResponse[]> {
  const events: WatchInstancesResponse[] = [];
  for (;;) {
    const event = await watch.next();
    if (event.type === EventType.EVENT_TYPE_SYNCED) return events;
    events.push(event);
  }
}



/** A registry on the SQLite data in `dataDir`, probing fast, expiring nothing: reopened to see what a restart keeps. */
async function openProbing(dataDir: string): Promise<ServiceRegistry> {
  const r = new ServiceRegistry({ logger: pino({ level: "silent" }), store: new SqliteStore({ dataDir }), healthCheckInterval: 100, healthCheckTTL: 300, deregisterAfter: 0 });
  await r.start();
  return r;
}

describe("per-type panic threshold across a restart", () => {
  it("a watch resuming on a restarted registry (SQLite) ends its replay on the type's panic as it is now", async () => {
    const dataDir = tempDataDir();
    const backends = await Promise.all([startHealthServer(), startHealthServer(), startHealthServer()]);
    const open = () => openProbing(dataDir);
    try {
      const first = await open();
      for (const b of backends) await first.register({ serviceType: "api", host: "127.0.0.1", port: b.port });
      const resumeFrom = first.revision;
      const epoch = first.epoch;
      // Two of three fail: 33 % healthy, below 50 %.
      const inPanic = new Promise<void>((resolve) => first.on("change", () => first.getByType("api").panic && resolve()));
      backends[0]!.status = 503;
      backends[1]!.status = 503;
      await inPanic;
      await first.close();

      const second = await open();
      try {
        expect(second.getByType("api").panic).toBe(true);
        const watcher = second.watch({ serviceType: "api", sinceRevision: resumeFrom, epoch, everyHealthCheck: false });
        const replayed: boolean[] = [];
        for (;;) {
          const { value: event, done } = await watcher.next();
          if (done || event.type !== "change") break;
          replayed.push(event.panic ?? false);
          if (event.change.revision === second.revision) break;
        }
        watcher.end();
        expect(replayed.at(-1)).toBe(true);
      } finally {
        await second.close();
      }
    } finally {
      for (const b of backends) await b.close();
    }
  });
});

describe("per-type panic threshold on a watch of part of a type", () => {
  it("a selector watch hears of its type's panic moving, by a BOOKMARK, when the changes that moved it were outside its selector", async () => {
    const stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", HEALTH_CHECK_TTL_MS: "300", DEREGISTER_AFTER_MS: "0" });
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    const backends: HealthServer[] = [];
    try {
      const zones = ["eu-1", "eu-1", "eu-2", "eu-2", "eu-2"];
      for (const zone of zones) {
        const b = await startHealthServer();
        backends.push(b);
        await call(client, client.register, { serviceType: "billing", host: "127.0.0.1", port: b.port, metadata: { zone } });
      }
      const watch = WatchCursor.open(client, { serviceType: "billing", selector: { zone: "eu-1" } });
      const snapshot: WatchInstancesResponse[] = [];
      for (let m = await watch.next(10_000); m.type !== EventType.EVENT_TYPE_SYNCED; m = await watch.next(10_000)) snapshot.push(m);
      expect(snapshot).toHaveLength(2);

      // eu-2 fails: 2 of 5 healthy puts billing in panic, with changes the eu-1 watch never gets.
      for (const b of backends.slice(2)) b.status = 503;
      let m = await watch.next(10_000);
      expect(m.type).toBe(EventType.EVENT_TYPE_BOOKMARK);
      expect(m.panic).toBe(true);
      const answer = await call(client, client.getByType, { serviceType: "billing", includeUnhealthy: false, includeDraining: false, selector: { zone: "eu-1" } });
      expect(answer.panic).toBe(true);

      // eu-2 back: out of panic, and the watch hears of it too.
      for (const b of backends.slice(2)) b.status = 200;
      m = await watch.next(10_000);
      expect(m.type).toBe(EventType.EVENT_TYPE_BOOKMARK);
      expect(m.panic).toBe(false);
      watch.cancel();
    } finally {
      client.close();
      await stack.close();
      for (const b of backends) await b.close();
    }
  });
});

describe("per-type panic threshold on a watch of part of a type, after a restart", () => {
  it("a selector watch on a registry restarted with its type in panic hears of the type leaving it", async () => {
    const dataDir = tempDataDir();
    const backends = await Promise.all([0, 1, 2, 3].map(() => startHealthServer()));
    const open = () => openProbing(dataDir);
    try {
      const first = await open();
      const zones = ["eu-1", "eu-2", "eu-2", "eu-2"];
      for (const [i, b] of backends.entries()) await first.register({ serviceType: "api", host: "127.0.0.1", port: b.port, metadata: { zone: zones[i] as string } });
      const inPanic = new Promise<void>((resolve) => first.on("change", () => first.getByType("api").panic && resolve()));
      for (const b of backends.slice(1)) b.status = 503; // 1 of 4 healthy
      await inPanic;
      await first.close();

      const second = await open();
      try {
        expect(second.getByType("api").panic).toBe(true);
        const watcher = second.watch({ serviceType: "api", sinceRevision: 0, epoch: "", everyHealthCheck: false, selector: { zone: "eu-1" } });
        for (let e = await watcher.next(); !e.done && e.value.type !== "synced"; e = await watcher.next());
        for (const b of backends.slice(1)) b.status = 200; // eu-2 back: out of panic, by changes the watch never gets
        const { value } = await watcher.next();
        expect(value).toMatchObject({ type: "bookmark", panic: false });
        watcher.end();
      } finally {
        await second.close();
      }
    } finally {
      for (const b of backends) await b.close();
    }
  });
});
