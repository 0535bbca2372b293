import { afterEach, describe, expect, it, vi } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import { RegistryMetrics } from "../../src/observability/registry-metrics.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { parseExposition } from "../support/prometheus-text.js";
import { readUntil, WatchContext } from "./watch-helpers.js";

const { EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED, EVENT_TYPE_SYNCED: SYNCED, EVENT_TYPE_BOOKMARK: BOOKMARK, EVENT_TYPE_RESET: RESET } = EventType;

/** registry_watch_events_sent_total as a scrape reads it, by type. */
async function eventsSent(metrics: RegistryMetrics, type: string): Promise<number | undefined> {
  return parseExposition(await metrics.exposition()).value("registry_watch_events_sent_total", { type });
}

describe("registry_watch_events_sent_total", () => {
  let ctx: WatchContext | undefined;
  let health: HealthServer | undefined;
  afterEach(async () => {
    await ctx?.close();
    await health?.close();
    ctx = health = undefined;
  });

  async function start(options: Parameters<typeof WatchContext.start>[0] = {}) {
    const metrics = new RegistryMetrics({ defaultMetrics: false });
    const sent = vi.spyOn(metrics, "onWatchEventsSent");
    ctx = await WatchContext.start({ ...options, server: { metrics } });
    return { ctx, metrics, sent };
  }

  it("counts a publish written to every stream it concerns in one call, with the number of streams", async () => {
    const { ctx, metrics, sent } = await start();
    const streams = Array.from({ length: 5 }, () => ctx.watch({ serviceType: "api" }));
    const other = ctx.watch({ serviceType: "web" });
    for (const s of [...streams, other]) expect(await s.next()).toMatchObject({ type: SYNCED });
    expect(await eventsSent(metrics, "synced")).toBe(6);
    sent.mockClear();

    await ctx.register("api", 8001);
    for (const s of streams) expect(await s.next()).toMatchObject({ type: REGISTERED });
    expect(sent.mock.calls).toEqual([["registered", 5]]);
    expect(await eventsSent(metrics, "registered")).toBe(5);
  });

  it("counts the events written outside a publish: snapshot, SYNCED, BOOKMARK, RESET", async () => {
    const { ctx, metrics, sent } = await start({ registry: { bookmarkInterval: 100 } });
    for (const port of [8001, 8002, 8003]) await ctx.register("api", port);
    const watch = ctx.watch({ serviceType: "api" });
    await readUntil(watch, (m) => m.type === SYNCED);
    expect(sent.mock.calls).toEqual([["snapshot", 3], ["synced", 1]]);
    await readUntil(watch, (m) => m.type === BOOKMARK);
    expect(await eventsSent(metrics, "bookmark")).toBeGreaterThanOrEqual(1);

    const reset = ctx.watch({ serviceType: "api", sinceRevision: 1, epoch: "another-epoch" });
    expect((await reset.next()).type).toBe(RESET);
    await readUntil(reset, (m) => m.type === SYNCED);
    expect(await eventsSent(metrics, "reset")).toBe(1);
    expect(await eventsSent(metrics, "snapshot")).toBe(6);
    expect(await eventsSent(metrics, "synced")).toBe(2);
  });

  it("counts probe results streamed to every_health_check watchers", async () => {
    health = await startHealthServer();
    const { ctx, metrics } = await start({ registry: { healthChecks: true, healthCheckInterval: 50, healthCheckTTL: 1000 } });
    const every = ctx.watch({ everyHealthCheck: true });
    expect(await every.next()).toMatchObject({ type: SYNCED });
    await ctx.register("api", health.port);
    await every.take(3, 3000); // REGISTERED, then a probe result at each probe
    expect(await eventsSent(metrics, "probe")).toBeGreaterThanOrEqual(2);
  });
});
