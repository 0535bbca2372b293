import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import type { WatchCursor } from "../support/registry-harness.js";
import { brief, readUntil, WatchContext, type Msg } from "./watch-helpers.js";

const {
  EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED,
  EVENT_TYPE_INSTANCE_REMOVED: REMOVED,
  EVENT_TYPE_SYNCED: SYNCED,
  EVENT_TYPE_RESET: RESET,
} = EventType;

/** Reads RESET, a snapshot and SYNCED; returns the snapshot's instance ids. */
async function expectResetAndSnapshot(ctx: WatchContext, watch: WatchCursor): Promise<Set<string>> {
  const { epoch, revision } = ctx.h.registry;
  const msgs = await readUntil(watch, (m) => m.type === SYNCED);
  expect(msgs.map(brief)[0]).toBe(`RESET@${revision}`);
  expect(msgs[0]).toMatchObject({ type: RESET, revision, epoch });
  expect(msgs[0]?.instance).toBeUndefined();
  const snapshot = msgs.slice(1, -1);
  expect(snapshot.every((m) => m.type === REGISTERED && m.snapshot && m.revision === revision && m.epoch === epoch)).toBe(true);
  expect(msgs.at(-1)).toMatchObject({ type: SYNCED, revision, epoch });
  const ids = new Set(snapshot.map((m) => m.instance!.id));
  expect(ids.size).toBe(snapshot.length);
  expect(ids).toEqual(new Set(ctx.h.registry.listServices().services.flatMap((s) => ctx.h.registry.getByType(s.serviceType, true).instances.map((i) => i.id))));
  return ids;
}

describe("WatchInstances: resuming", () => {
  let ctx: WatchContext;
  afterEach(async () => {
    await ctx?.close();
  });

  it("replays exactly the missed changes in order after a disconnect, then goes live", async () => {
    ctx = await WatchContext.start();
    const a = await ctx.register("api", 9001); // 1
    const first = ctx.watch({});
    const seen: Msg[] = await first.take(2); // snapshot a, SYNCED@1
    expect(seen.map((m) => [m.type, m.revision, m.snapshot])).toEqual([
      [REGISTERED, 1, true],
      [SYNCED, 1, false],
    ]);
    const b = await ctx.register("db", 5432); // 2
    const c = await ctx.register("api", 9002); // 3
    seen.push(...(await first.take(2)));
    const lastSeen = seen.at(-1)!.revision;
    const epoch = seen.at(-1)!.epoch;
    expect(lastSeen).toBe(3);
    first.cancel();
    await expect(first.status()).resolves.toMatchObject({ code: 1 }); // CANCELLED

    // Changes while disconnected.
    await ctx.unregister(a.id); // 4
    const d = await ctx.register("api", 9003); // 5
    await ctx.unregister(b.id); // 6

    const resumed = ctx.watch({ sinceRevision: lastSeen, epoch });
    const missed = await resumed.take(3);
    expect(missed.map((m) => [m.type, m.revision, m.instance?.id, m.snapshot, m.epoch])).toEqual([
      [REMOVED, 4, a.id, false, epoch],
      [REGISTERED, 5, d.id, false, epoch],
      [REMOVED, 6, b.id, false, epoch],
    ]);

    // Then live, with nothing repeated or inserted in between.
    await ctx.unregister(c.id); // 7
    expect(await resumed.next()).toMatchObject({ type: REMOVED, revision: 7, instance: { id: c.id } });
  });

  it("resuming from the current revision replays nothing", async () => {
    ctx = await WatchContext.start();
    await ctx.register("api", 9001);
    await ctx.register("api", 9002);
    const { revision, epoch } = ctx.h.registry;
    const watch = ctx.watch({ sinceRevision: revision, epoch });
    const e = await ctx.register("db", 5432);
    const next = await watch.next();
    expect(next).toMatchObject({ type: REGISTERED, revision: 3, snapshot: false, epoch });
    expect(next.instance?.id).toBe(e.id);
  });

  it("resumes from any point inside the history window, up to its floor", async () => {
    ctx = await WatchContext.start({ registry: { historySize: 5 } });
    for (let i = 0; i < 12; i++) await ctx.register("api", 9000 + i); // history holds 8..12, floor 7
    const epoch = ctx.h.registry.epoch;
    const watch = ctx.watch({ sinceRevision: 7, epoch });
    const replay = await watch.take(5);
    expect(replay.map((m) => [m.type, m.revision])).toEqual([8, 9, 10, 11, 12].map((r) => [REGISTERED, r]));
    await ctx.register("api", 9999);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 13 });
  });

  it("resumes with a type filter: only that type's missed changes, then live ones", async () => {
    ctx = await WatchContext.start();
    const a = await ctx.register("api", 9001); // 1
    await ctx.register("db", 5432); // 2
    const first = ctx.watch({ serviceType: "api" });
    const initial = await first.take(2);
    expect(initial.map((m) => [m.type, m.revision, m.snapshot, m.instance?.revision])).toEqual([
      [REGISTERED, 2, true, 1], // a snapshot entry carries the snapshot revision; the instance its own
      [SYNCED, 2, false, undefined],
    ]);
    first.cancel();

    const b = await ctx.register("api", 9002); // 3
    await ctx.register("db", 5433); // 4
    await ctx.unregister(a.id); // 5
    await ctx.register("cache", 6379); // 6

    const resumed = ctx.watch({ serviceType: "api", sinceRevision: 2, epoch: ctx.h.registry.epoch });
    const missed = await resumed.take(2);
    expect(missed.map((m) => [m.type, m.revision, m.instance?.id])).toEqual([
      [REGISTERED, 3, b.id],
      [REMOVED, 5, a.id],
    ]);
    await ctx.register("db", 5434); // 7, filtered
    const c = await ctx.register("api", 9003); // 8
    expect(await resumed.next()).toMatchObject({ type: REGISTERED, revision: 8, instance: { id: c.id } });
  });
  it("at shutdown a stream ends with UNAVAILABLE and x-resume-revision = the last revision sent", async () => {
    ctx = await WatchContext.start();
    await ctx.register("api", 9001); // 1
    const watch = ctx.watch({});
    await watch.take(2); // snapshot, SYNCED@1
    await ctx.register("api", 9002); // 2
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 2 });
    await ctx.h.server.shutdown();
    const err = await watch.status();
    expect(err.code).toBe(14); // UNAVAILABLE
    expect(err.metadata.get("x-resume-revision")).toEqual(["2"]);
  });
});

describe("WatchInstances: RESET", () => {
  let ctx: WatchContext;
  afterEach(async () => {
    await ctx?.close();
  });

  async function seed(c: WatchContext): Promise<void> {
    const a = await c.register("api", 9001);
    await c.register("db", 5432);
    await c.register("api", 9002);
    await c.unregister(a.id);
  }

  it("a foreign epoch gets RESET, a fresh snapshot and SYNCED, then live events", async () => {
    ctx = await WatchContext.start();
    await seed(ctx);
    const watch = ctx.watch({ sinceRevision: 2, epoch: "some-other-registry-epoch" });
    await expectResetAndSnapshot(ctx, watch);
    const e = await ctx.register("cache", 6379);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: e.revision, snapshot: false, instance: { id: e.id } });
  });

  it("a since_revision ahead of a registry on a store of its own process, same epoch, gets RESET and a fresh snapshot at once", async () => {
    // No replica is further ahead: the client's revision is from a history
    // this registry no longer has (a power failure lost its last commits). Waiting
    // would let later, different changes reach it unseen. (On etcd the
    // watch waits for a replica that is behind: test/etcd/resume-ahead.test.ts.)
    ctx = await WatchContext.start({ registry: { resumeWait: 60_000 } });
    await seed(ctx);
    const watch = ctx.watch({ sinceRevision: ctx.h.registry.revision + 1, epoch: ctx.h.registry.epoch });
    await expectResetAndSnapshot(ctx, watch);
    expect(ctx.h.registry.resumesWaiting).toBe(0);
    const e = await ctx.register("cache", 6379); // the revision the client claimed: delivered, not skipped
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: e.revision, snapshot: false, instance: { id: e.id } });
    expect(ctx.h.registry.watchStats().resets).toBe(1);
  });

  it("a since_revision that left the history window gets RESET, a fresh snapshot and SYNCED", async () => {
    ctx = await WatchContext.start({ registry: { historySize: 5 } });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await ctx.register("api", 9000 + i)).id);
    for (const id of ids.slice(0, 2)) await ctx.unregister(id); // revision 12; history holds 8..12, floor 7
    const watch = ctx.watch({ sinceRevision: 6, epoch: ctx.h.registry.epoch });
    const snapshot = await expectResetAndSnapshot(ctx, watch);
    expect(snapshot).toEqual(new Set(ids.slice(2)));
    const e = await ctx.register("api", 9999);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 13, instance: { id: e.id } });
    expect(ctx.h.registry.watchStats().resets).toBe(1);
  });

  it("since_revision > 0 with an empty epoch is a foreign epoch: RESET and a fresh snapshot", async () => {
    // src/registry/watcher.ts compares the request's epoch with the registry's; "" never matches.
    ctx = await WatchContext.start();
    await seed(ctx);
    const watch = ctx.watch({ sinceRevision: 1, epoch: "" });
    await expectResetAndSnapshot(ctx, watch);
  });

  it("RESET on an empty registry is followed directly by SYNCED", async () => {
    ctx = await WatchContext.start();
    // A resume point from another data set (a restarted memory store): RESET, then the (empty) snapshot.
    const watch = ctx.watch({ sinceRevision: 3, epoch: "an-older-epoch" });
    const msgs = await watch.take(2);
    expect(msgs.map((m) => [m.type, m.revision, m.epoch])).toEqual([
      [RESET, 0, ctx.h.registry.epoch],
      [SYNCED, 0, ctx.h.registry.epoch],
    ]);
  });
});
