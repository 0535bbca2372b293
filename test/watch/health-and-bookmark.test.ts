import { afterEach, describe, expect, it } from "vitest";
import { EventType, HealthStatus } from "../../gen/registry/v1/registry.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { brief, readUntil, WatchContext } from "./watch-helpers.js";

const {
  EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED,
  EVENT_TYPE_INSTANCE_REMOVED: REMOVED,
  EVENT_TYPE_HEALTH_CHECK_PASSED: PASSED,
  EVENT_TYPE_HEALTH_CHECK_FAILED: FAILED,
  EVENT_TYPE_SYNCED: SYNCED,
  EVENT_TYPE_BOOKMARK: BOOKMARK,
} = EventType;

const HEALTH_OPTIONS = { healthChecks: true, healthCheckInterval: 50, healthCheckTTL: 1000 } as const;

/** Waits until the health server has answered `n` more probes (with its current status). */
async function probes(health: HealthServer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await health.nextRequest(3000);
}

describe("WatchInstances: health events", () => {
  let ctx: WatchContext;
  let health: HealthServer | undefined;
  afterEach(async () => {
    await ctx?.close();
    await health?.close();
    health = undefined;
  });

  it("streams health transitions only: 200→503→200 gives exactly FAILED then PASSED, each with a new revision", async () => {
    health = await startHealthServer();
    ctx = await WatchContext.start({ registry: HEALTH_OPTIONS });
    const watch = ctx.watch({});
    expect(await watch.next()).toMatchObject({ type: SYNCED, revision: 0 });

    const a = await ctx.register("api", health.port);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 1, instance: { id: a.id } });
    await probes(health, 3); // passing probes of a healthy instance are not changes

    health.status = 503;
    const failed = await readUntil(watch, (m) => m.type !== BOOKMARK);
    expect(failed.map(brief)).toEqual([`HEALTH_CHECK_FAILED@2:${a.id.slice(0, 8)}`]);
    expect(failed[0]).toMatchObject({
      type: FAILED,
      revision: 2,
      snapshot: false,
      epoch: ctx.h.registry.epoch,
      instance: { id: a.id, health: HealthStatus.HEALTH_STATUS_UNHEALTHY, revision: 2 },
    });
    expect(failed[0]?.failureReason).toMatch(/503/);
    await probes(health, 3); // still failing: no further events

    health.status = 200;
    const passed = await watch.next();
    expect(passed).toMatchObject({
      type: PASSED,
      revision: 3,
      snapshot: false,
      failureReason: "",
      instance: { id: a.id, health: HealthStatus.HEALTH_STATUS_HEALTHY, revision: 3 },
    });
    await probes(health, 3); // healthy again: no further events

    // Nothing was streamed in between: the next event is the removal.
    const removedAt = await ctx.unregister(a.id);
    expect(removedAt).toBe(4);
    expect(await watch.next()).toMatchObject({ type: REMOVED, revision: 4, instance: { id: a.id } });
    expect(ctx.h.registry.revision).toBe(4);
  });

  it("every_health_check also streams each probe result at the current revision; others still get transitions only", async () => {
    health = await startHealthServer();
    ctx = await WatchContext.start({ registry: HEALTH_OPTIONS });
    const every = ctx.watch({ everyHealthCheck: true });
    const transitions = ctx.watch({});
    expect(await every.next()).toMatchObject({ type: SYNCED });
    expect(await transitions.next()).toMatchObject({ type: SYNCED });

    const a = await ctx.register("api", health.port);
    expect(await every.next()).toMatchObject({ type: REGISTERED, revision: 1 });
    expect(await transitions.next()).toMatchObject({ type: REGISTERED, revision: 1 });

    // Several PASSED probe results while nothing changes: all at revision 1.
    const perProbe = await every.take(3, 3000);
    for (const m of perProbe) {
      expect(m).toMatchObject({
        type: PASSED,
        revision: 1,
        snapshot: false,
        epoch: ctx.h.registry.epoch,
        instance: { id: a.id, health: HealthStatus.HEALTH_STATUS_HEALTHY, revision: 1 },
      });
    }
    expect(ctx.h.registry.revision).toBe(1); // probe results are not changes

    // A transition is still a change with a new revision, and failing probes stream as FAILED.
    health.status = 503;
    const untilTransition = await readUntil(every, (m) => m.type === FAILED && m.revision === 2);
    expect(untilTransition.slice(0, -1).every((m) => m.type === PASSED && m.revision === 1)).toBe(true);
    expect(untilTransition.at(-1)?.failureReason).toMatch(/503/);
    const failingProbes = await every.take(2, 3000);
    for (const m of failingProbes) {
      expect(m).toMatchObject({ type: FAILED, revision: 2, instance: { id: a.id, health: HealthStatus.HEALTH_STATUS_UNHEALTHY } });
      expect(m.failureReason).toMatch(/503/);
    }

    // The transitions-only watcher saw just the change.
    await ctx.unregister(a.id);
    const rest = await readUntil(transitions, (m) => m.type === REMOVED);
    expect(rest.map((m) => [m.type, m.revision])).toEqual([
      [FAILED, 2],
      [REMOVED, 3],
    ]);
  });

  it("probe results are not replayed on resume", async () => {
    health = await startHealthServer();
    ctx = await WatchContext.start({ registry: HEALTH_OPTIONS });
    const first = ctx.watch({ everyHealthCheck: true });
    expect(await first.next()).toMatchObject({ type: SYNCED, revision: 0 });
    const a = await ctx.register("api", health.port); // 1
    const seen = await first.take(3, 3000); // REGISTERED@1, then probe results at 1
    expect(seen.map((m) => [m.type, m.revision])).toEqual([
      [REGISTERED, 1],
      [PASSED, 1],
      [PASSED, 1],
    ]);
    const epoch = seen[0]!.epoch;
    first.cancel();

    await probes(health, 3); // more probe results while disconnected
    await ctx.unregister(a.id); // 2

    const resumed = ctx.watch({ sinceRevision: 1, epoch, everyHealthCheck: true });
    expect(await resumed.next()).toMatchObject({ type: REMOVED, revision: 2, instance: { id: a.id } });
    // The next message is live, not a replayed probe result.
    const b = await ctx.register("api", health.port); // 3
    expect(await resumed.next()).toMatchObject({ type: REGISTERED, revision: 3, instance: { id: b.id } });
    expect(await resumed.next(3000)).toMatchObject({ type: PASSED, revision: 3, instance: { id: b.id } });
  });
});

describe("WatchInstances: BOOKMARK", () => {
  let ctx: WatchContext;
  afterEach(async () => {
    await ctx?.close();
  });

  it("sends BOOKMARK with the current revision and the epoch on an idle stream", async () => {
    ctx = await WatchContext.start({ registry: { bookmarkInterval: 100 } });
    await ctx.register("api", 9001);
    await ctx.register("api", 9002);
    const watch = ctx.watch({});
    const start = await watch.take(3);
    expect(start.at(-1)).toMatchObject({ type: SYNCED, revision: 2 });

    const bookmark = await watch.next(2000);
    expect(bookmark).toMatchObject({ type: BOOKMARK, revision: 2, epoch: ctx.h.registry.epoch, snapshot: false });
    expect(bookmark.instance).toBeUndefined();

    // After more changes the next bookmark carries the new revision.
    await ctx.register("db", 5432);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 3 });
    expect(await watch.next(2000)).toMatchObject({ type: BOOKMARK, revision: 3 });
  });

  it("a filtered idle watcher's BOOKMARK still advances past other types' changes", async () => {
    ctx = await WatchContext.start({ registry: { bookmarkInterval: 100 } });
    const watch = ctx.watch({ serviceType: "api" });
    expect(await watch.next()).toMatchObject({ type: SYNCED, revision: 0 });
    await ctx.register("db", 5432);
    await ctx.register("db", 5433);
    const bookmark = await readUntil(watch, (m) => m.type === BOOKMARK && m.revision === 2, 2000);
    expect(bookmark.every((m) => m.type === BOOKMARK)).toBe(true);

    // Resuming from the bookmark gets what came after, nothing before.
    const resumed = ctx.watch({ serviceType: "api", sinceRevision: 2, epoch: ctx.h.registry.epoch });
    const a = await ctx.register("api", 9001);
    expect(await resumed.next()).toMatchObject({ type: REGISTERED, revision: 3, instance: { id: a.id } });
  });
});

describe("BOOKMARK timing across watchers", () => {
  it("spreads the bookmarks of watchers opened together, never earlier than the interval", async () => {
    const registry = new ServiceRegistry({ healthChecks: false, bookmarkInterval: 200, logger: { info() {}, warn() {}, error() {}, debug() {} } as never });
    await registry.start();
    try {
      const opened = Date.now();
      const firstBookmarks = await Promise.all(
        Array.from({ length: 20 }, () => {
          const watcher = registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false });
          return new Promise<number>((resolve) => {
            watcher.consume(() => {
              for (let e = watcher.poll(); e !== undefined; e = watcher.poll()) {
                if (e.type === "bookmark") {
                  watcher.end();
                  resolve(Date.now() - opened);
                }
              }
            });
            // Drain the snapshot now; later wake-ups come from the watcher.
            for (let e = watcher.poll(); e !== undefined; e = watcher.poll());
          });
        }),
      );
      expect(Math.min(...firstBookmarks)).toBeGreaterThanOrEqual(195);
      expect(Math.max(...firstBookmarks) - Math.min(...firstBookmarks)).toBeGreaterThanOrEqual(5);
    } finally {
      await registry.close();
    }
  });
});
