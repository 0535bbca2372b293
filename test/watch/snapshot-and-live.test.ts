import { afterEach, describe, expect, it, vi } from "vitest";
import { EventType, RemovalReason } from "../../gen/registry/v1/registry.js";
import type { Change, StoredInstance } from "../../src/registry/types.js";
import { WatchEventEncoder } from "../../src/server/watch-encoder.js";
import { WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { brief, expectRange, isChange, readThrough, WatchContext, type Msg } from "./watch-helpers.js";

const { EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED, EVENT_TYPE_INSTANCE_REMOVED: REMOVED, EVENT_TYPE_SYNCED: SYNCED } =
  EventType;

describe("WatchInstances: snapshot, SYNCED and live events", () => {
  let ctx: WatchContext;
  afterEach(async () => {
    await ctx?.close();
    vi.restoreAllMocks();
  });

  it("streams the current instances with snapshot=true, then SYNCED with the snapshot revision and the epoch", async () => {
    ctx = await WatchContext.start();
    const a = await ctx.register("api", 9001);
    const b = await ctx.register("db", 5432);
    const c = await ctx.register("api", 9002);
    await ctx.unregister(b.id); // revision 4; the snapshot holds a and c only
    const epoch = ctx.h.registry.epoch;
    expect(epoch).not.toBe("");

    const watch = ctx.watch({});
    const msgs = await watch.take(3);
    const [s1, s2, synced] = msgs;
    for (const s of [s1, s2]) {
      expect(s).toMatchObject({ type: REGISTERED, snapshot: true, revision: 4, epoch });
    }
    expect(new Set([s1?.instance?.id, s2?.instance?.id])).toEqual(new Set([a.id, c.id]));
    expect(synced).toMatchObject({ type: SYNCED, revision: 4, epoch, snapshot: false });
    expect(synced?.instance).toBeUndefined();

    // Live events follow SYNCED and carry the epoch too, with snapshot=false.
    const d = await ctx.register("db", 5433);
    const removed = await ctx.unregister(a.id);
    const live = await watch.take(2);
    expect(removed).toBe(6);
    expect(live[0]).toMatchObject({ type: REGISTERED, revision: d.revision, snapshot: false, epoch });
    expect(live[0]?.instance?.id).toBe(d.id);
    expect(live[1]).toMatchObject({
      type: REMOVED,
      revision: 6,
      snapshot: false,
      epoch,
      removalReason: RemovalReason.REMOVAL_REASON_UNREGISTERED,
    });
    expect(live[1]?.instance?.id).toBe(a.id);
  });

  it("sends SYNCED at once for an empty registry", async () => {
    ctx = await WatchContext.start();
    const watch = ctx.watch({});
    const first = await watch.next();
    expect(first).toMatchObject({ type: SYNCED, revision: 0, epoch: ctx.h.registry.epoch, snapshot: false });

    const a = await ctx.register("api", 9001);
    expect(await watch.next()).toMatchObject({ type: REGISTERED, revision: 1, snapshot: false, epoch: ctx.h.registry.epoch });
    expect(a.revision).toBe(1);
  });

  it("delivers a burst of concurrent Registers/Unregisters from several clients in strictly increasing revision order", async () => {
    ctx = await WatchContext.start();
    const watchAll = ctx.watch({});
    const watchApi = ctx.watch({ serviceType: "api" });
    expect(await watchAll.next()).toMatchObject({ type: SYNCED, revision: 0 });
    expect(await watchApi.next()).toMatchObject({ type: SYNCED, revision: 0 });

    const clients = [ctx.h.client, ctx.isolatedClient(), ctx.isolatedClient(), ctx.isolatedClient()];
    await Promise.all(
      clients.map(async (client, ci) => {
        const types = ["api", "db", "cache"];
        await Promise.all(
          Array.from({ length: 15 }, async (_, i) => {
            const r = await ctx.register(types[(ci + i) % 3]!, 10_000 + ci * 100 + i, {}, client);
            if (i % 3 === 0) await ctx.unregister(r.id, client);
          }),
        );
      }),
    );
    const final = ctx.h.registry.revision;
    expect(final).toBe(4 * 15 + 4 * 5); // 60 registers, 20 unregisters

    const all = await readThrough(watchAll, final);
    const revisions = all.map((m) => m.revision);
    expect(revisions).toEqual(expectRange(1, final));
    expect(all.every(isChange)).toBe(true);

    // Replaying the stream gives exactly the registry's live set.
    const live = new Map<string, string>();
    for (const m of all) {
      if (m.type === REGISTERED) live.set(m.instance!.id, m.instance!.serviceType);
      else if (m.type === REMOVED) live.delete(m.instance!.id);
    }
    const { instances } = ctx.h.registry.getByType("api", true);
    expect([...live].filter(([, t]) => t === "api").map(([id]) => id).sort()).toEqual(instances.map((i) => i.id).sort());
    expect(live.size).toBe(ctx.h.registry.size);

    // The filtered watcher: only api events, still strictly increasing.
    const apiEvents = all.filter((m) => m.instance?.serviceType === "api");
    const lastApi = apiEvents.at(-1)!.revision;
    const api = await readThrough(watchApi, lastApi);
    expect(api.map(brief)).toEqual(apiEvents.map(brief));
    for (let i = 1; i < api.length; i++) expect(api[i]!.revision).toBeGreaterThan(api[i - 1]!.revision);
  });

  it("filters by service type in the snapshot and in live events", async () => {
    ctx = await WatchContext.start();
    const a1 = await ctx.register("api", 9001);
    await ctx.register("db", 5432);
    const a2 = await ctx.register("api", 9002);

    const watch = ctx.watch({ serviceType: "api" });
    const snap = await watch.take(3);
    expect(snap.slice(0, 2).every((m) => m.type === REGISTERED && m.snapshot && m.instance?.serviceType === "api")).toBe(true);
    expect(new Set(snap.slice(0, 2).map((m) => m.instance?.id))).toEqual(new Set([a1.id, a2.id]));
    expect(snap[2]).toMatchObject({ type: SYNCED, revision: 3 });

    const d2 = await ctx.register("db", 5433); // 4, filtered out
    const a3 = await ctx.register("api", 9003); // 5
    await ctx.unregister(d2.id); // 6, filtered out
    await ctx.unregister(a1.id); // 7
    await ctx.register("cache", 6379); // 8, filtered out
    const a4 = await ctx.register("api", 9004); // 9

    const live = await readThrough(watch, 9);
    expect(live.map((m) => [m.type, m.revision, m.instance?.id])).toEqual([
      [REGISTERED, 5, a3.id],
      [REMOVED, 7, a1.id],
      [REGISTERED, 9, a4.id],
    ]);
    expect(live.every((m) => m.instance?.serviceType === "api" && m.epoch === ctx.h.registry.epoch)).toBe(true);
  });

  it("encodes a live event once: every watcher gets the same bytes (the same Buffer)", async () => {
    ctx = await WatchContext.start();
    const encoded: { type: string; revision: number; bytes: Buffer }[] = [];
    const original = WatchEventEncoder.prototype.encode;
    vi.spyOn(WatchEventEncoder.prototype, "encode").mockImplementation(function (this: WatchEventEncoder, event) {
      const bytes = original.call(this, event);
      encoded.push({ type: event.type, revision: "change" in event ? event.change.revision : 0, bytes });
      return bytes;
    });

    const watches = [ctx.watch({}), ctx.watch({}, ctx.isolatedClient()), ctx.watch({ serviceType: "api" })];
    for (const w of watches) expect(await w.next()).toMatchObject({ type: SYNCED });

    const a = await ctx.register("api", 9001, { metadata: { zone: "eu-1" } });
    const received: Msg[] = [];
    for (const w of watches) received.push(await w.next());
    // Byte-identical on the wire.
    const wire = received.map((m) => Buffer.from(WatchInstancesResponse.encode(m).finish()));
    expect(wire[1]!.equals(wire[0]!)).toBe(true);
    expect(wire[2]!.equals(wire[0]!)).toBe(true);
    expect(received[0]?.instance?.id).toBe(a.id);

    // Encoded once: all three streams wrote the very same Buffer.
    const forChange = encoded.filter((e) => e.type === "change" && e.revision === a.revision);
    expect(forChange).toHaveLength(3);
    expect(forChange[1]!.bytes).toBe(forChange[0]!.bytes);
    expect(forChange[2]!.bytes).toBe(forChange[0]!.bytes);
    expect(WatchInstancesResponse.decode(forChange[0]!.bytes)).toEqual(received[0]);
  });

  it("WatchEventEncoder returns the same Buffer instance for the same change object", () => {
    const encoder = new WatchEventEncoder(() => "epoch-1");
    const instance: StoredInstance = {
      id: "00000000-0000-4000-8000-000000000001",
      serviceType: "api",
      host: "127.0.0.1",
      port: 9001,
      metadata: { zone: "eu-1" },
      healthCheckPath: "/health",
      health: "healthy", draining: false, drainingSince: 0,
      registeredAt: 1_700_000_000_000,
      updatedAt: 1_700_000_000_000,
      revision: 7,
      tokenHash: "\0".repeat(32),
    };
    const change: Change = { kind: "registered", revision: 7, instance };
    const first = encoder.encode({ type: "change", change });
    const second = encoder.encode({ type: "change", change }); // a different event object, same change
    expect(second).toBe(first);

    // An equal but distinct change object is encoded again, to equal bytes.
    const copy = encoder.encode({ type: "change", change: { ...change } });
    expect(copy).not.toBe(first);
    expect(copy.equals(first)).toBe(true);

    const decoded = WatchInstancesResponse.decode(first);
    expect(decoded).toMatchObject({ type: REGISTERED, revision: 7, epoch: "epoch-1", snapshot: false });
    expect(decoded.instance?.id).toBe(instance.id);
  });
});
