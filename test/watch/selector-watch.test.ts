import { status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { brief, isChange, readThrough, readUntil, WatchContext, type Msg } from "./watch-helpers.js";

const {
  EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED,
  EVENT_TYPE_INSTANCE_REMOVED: REMOVED,
  EVENT_TYPE_HEALTH_CHECK_PASSED: PASSED,
  EVENT_TYPE_SYNCED: SYNCED,
  EVENT_TYPE_BOOKMARK: BOOKMARK,
} = EventType;

const EU = { zone: "eu-1" };
const US = { zone: "us-1" };

/** The instance ids a run of messages is about, in order. */
function ids(msgs: readonly Msg[]): string[] {
  return msgs.flatMap((m) => (m.instance ? [m.instance.id] : []));
}

describe("WatchInstances with a selector (filtered at the source)", () => {
  let ctx: WatchContext;
  const healths: HealthServer[] = [];
  afterEach(async () => {
    await ctx?.close();
    for (const h of healths.splice(0)) await h.close();
  });

  it("sends the snapshot and live changes of its zone only", async () => {
    ctx = await WatchContext.start();
    const euA = await ctx.register("api", 9001, { metadata: EU }); // 1
    await ctx.register("api", 9002, { metadata: US }); // 2
    await ctx.register("api", 9003); // 3: no zone
    const euDb = await ctx.register("db", 5432, { metadata: EU }); // 4

    const typed = ctx.watch({ serviceType: "api", selector: EU });
    const everyType = ctx.watch({ selector: EU });
    const snapshot = await readUntil(typed, (m) => m.type === SYNCED);
    expect(snapshot.map(brief)).toEqual([`INSTANCE_REGISTERED@4(snap):${euA.id.slice(0, 8)}`, "SYNCED@4"]);
    const everySnapshot = await readUntil(everyType, (m) => m.type === SYNCED);
    expect(new Set(ids(everySnapshot))).toEqual(new Set([euA.id, euDb.id]));

    const usB = await ctx.register("api", 9004, { metadata: US }); // 5
    const euC = await ctx.register("api", 9005, { metadata: { ...EU, tier: "web" } }); // 6
    await ctx.register("db", 5433, { metadata: US }); // 7
    await ctx.unregister(usB.id); // 8
    await ctx.unregister(euA.id); // 9
    const live = await readThrough(typed, 9);
    expect(live.map((m) => [m.type, m.revision, m.instance?.id])).toEqual([
      [REGISTERED, 6, euC.id],
      [REMOVED, 9, euA.id],
    ]);
    const everyLive = await readThrough(everyType, 9);
    expect(everyLive.map((m) => [m.type, m.revision, m.instance?.id])).toEqual([
      [REGISTERED, 6, euC.id],
      [REMOVED, 9, euA.id],
    ]);
    expect(everyLive.every((m) => m.instance?.metadata.zone === "eu-1")).toBe(true);
  });

  it("on resume replays only its zone's missed changes, then goes live without a gap or repeat", async () => {
    ctx = await WatchContext.start();
    const eu1 = await ctx.register("api", 9001, { metadata: EU }); // 1
    const first = ctx.watch({ serviceType: "api", selector: EU });
    const seen = await readUntil(first, (m) => m.type === SYNCED);
    const { revision: lastSeen, epoch } = seen.at(-1)!;
    expect(lastSeen).toBe(1);
    first.cancel();

    const us1 = await ctx.register("api", 9002, { metadata: US }); // 2
    const eu2 = await ctx.register("api", 9003, { metadata: EU }); // 3
    await ctx.unregister(us1.id); // 4
    await ctx.unregister(eu1.id); // 5
    await ctx.register("api", 9004, { metadata: US }); // 6

    const resumed = ctx.watch({ serviceType: "api", selector: EU, sinceRevision: lastSeen, epoch });
    const missed = await resumed.take(2);
    expect(missed.map((m) => [m.type, m.revision, m.instance?.id, m.snapshot])).toEqual([
      [REGISTERED, 3, eu2.id, false],
      [REMOVED, 5, eu1.id, false],
    ]);
    await ctx.register("api", 9005, { metadata: US }); // 7
    const eu3 = await ctx.register("api", 9006, { metadata: EU }); // 8
    expect(await resumed.next()).toMatchObject({ type: REGISTERED, revision: 8, instance: { id: eu3.id } });
  });

  it("a BOOKMARK moves the resume point past other zones' changes; resuming there misses and repeats nothing", async () => {
    ctx = await WatchContext.start({ registry: { bookmarkInterval: 100 } });
    await ctx.register("api", 9001, { metadata: EU }); // 1
    const watch = ctx.watch({ serviceType: "api", selector: EU });
    await readUntil(watch, (m) => m.type === SYNCED);
    await ctx.register("api", 9002, { metadata: US }); // 2
    await ctx.register("api", 9003, { metadata: US }); // 3
    const untilBookmark = await readUntil(watch, (m) => m.type === BOOKMARK && m.revision === 3);
    expect(untilBookmark.filter(isChange)).toEqual([]);
    const { revision, epoch } = untilBookmark.at(-1)!;
    watch.cancel();

    await ctx.register("api", 9004, { metadata: US }); // 4
    const eu = await ctx.register("api", 9005, { metadata: EU }); // 5
    const resumed = ctx.watch({ serviceType: "api", selector: EU, sinceRevision: revision, epoch });
    expect(await resumed.next()).toMatchObject({ type: REGISTERED, revision: 5, snapshot: false, instance: { id: eu.id } });
  });

  it("with every_health_check, streams probe results of its zone's instances only", async () => {
    const euHealth = await startHealthServer();
    const usHealth = await startHealthServer();
    healths.push(euHealth, usHealth);
    ctx = await WatchContext.start({ registry: { healthChecks: true, healthCheckInterval: 50, healthCheckTTL: 1000 } });
    const watch = ctx.watch({ serviceType: "api", everyHealthCheck: true, selector: EU });
    await readUntil(watch, (m) => m.type === SYNCED);
    const eu = await ctx.register("api", euHealth.port, { metadata: EU });
    await ctx.register("api", usHealth.port, { metadata: US });
    // The next probe of an instance starts after the last one was published: four requests, three results out.
    for (let i = 0; i < 4; i++) await usHealth.nextRequest(3000);
    for (let i = 0; i < 4; i++) await euHealth.nextRequest(3000);
    await ctx.unregister(eu.id);
    const msgs = await readUntil(watch, (m) => m.type === REMOVED);
    const probes = msgs.filter((m) => m.type === PASSED);
    expect(probes.length).toBeGreaterThanOrEqual(3);
    expect(new Set(ids(msgs))).toEqual(new Set([eu.id]));
  });

  it("a malformed selector ends the stream with INVALID_ARGUMENT naming selector", async () => {
    ctx = await WatchContext.start();
    const watch = ctx.watch({ serviceType: "api", selector: { "bad key": "x" } });
    await expect(watch.next(3000)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((watch.error as ServiceError).details).toContain("selector");
  });
});
