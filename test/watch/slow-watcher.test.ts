import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import type { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { RESUME_REVISION_TRAILER } from "../../src/server/watch-handler.js";
import type { WatchCursor } from "../support/registry-harness.js";
import { waitFor } from "../support/wait-for.js";
import { bigMetadata, brief, expectRange, isChange, readThrough, readUntil, WatchContext, type Msg } from "./watch-helpers.js";

const {
  EVENT_TYPE_INSTANCE_REGISTERED: REGISTERED,
  EVENT_TYPE_INSTANCE_REMOVED: REMOVED,
  EVENT_TYPE_SYNCED: SYNCED,
  EVENT_TYPE_RESET: RESET,
} = EventType;

/**
 * Registers `count` instances with ~32 KiB of metadata each (and unregisters
 * every fifth), `concurrency` calls at a time. Returns the live ids.
 */
async function churn(ctx: WatchContext, count: number, tag: string, client?: RegistryServiceClient, concurrency = 8): Promise<Set<string>> {
  const live = new Set<string>();
  let next = 0;
  const metadata = bigMetadata(tag);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const r = await ctx.register("api", 20_000 + (i % 40_000), { metadata }, client);
        live.add(r.id);
        if (i % 5 === 4) {
          await ctx.unregister(r.id, client);
          live.delete(r.id);
        }
      }
    }),
  );
  return live;
}

/** Opens a watch, waits for SYNCED, then stops reading it (HTTP/2 flow control backs up to the server). */
async function openStalled(ctx: WatchContext, client: RegistryServiceClient): Promise<WatchCursor> {
  const cursor = ctx.watch({}, client);
  expect(await cursor.next()).toMatchObject({ type: SYNCED });
  cursor.stream.pause();
  return cursor;
}

/** Asserts a gapless, duplicate-free run of changes covering revisions from..to. */
function expectGapless(msgs: readonly Msg[], from: number, to: number): void {
  const changes = msgs.filter(isChange);
  expect(changes.length).toBe(msgs.length);
  expect(changes.map((m) => m.revision)).toEqual(expectRange(from, to));
}

describe("WatchInstances: a watcher that cannot keep up", () => {
  let ctx: WatchContext;
  afterEach(async () => {
    await ctx?.close();
  });

  it("parks a stalled watcher without delaying others, then catches it up from history with no gap or duplicate", async () => {
    ctx = await WatchContext.start({ registry: { watchQueueLimit: 8 } });
    const stalled = await openStalled(ctx, ctx.isolatedClient());
    const normal = ctx.watch({}, ctx.isolatedClient());
    expect(await normal.next()).toMatchObject({ type: SYNCED });
    const [stalledWatcher, normalWatcher] = ctx.watchers;

    const writer = ctx.isolatedClient();
    const total = 300 + 60;
    const normalRead = readThrough(normal, total, 10_000); // reads along with the writes
    const live = await churn(ctx, 300, "a", writer); // ~10 MB of events
    const churnDone = Date.now();
    expect(ctx.h.registry.revision).toBe(total);

    // The normal watcher gets every event promptly (it keeps pace), while the stalled one is still paused.
    const normalMsgs = await normalRead;
    expect(Date.now() - churnDone).toBeLessThan(1000);
    expectGapless(normalMsgs, 1, total);
    expect(stalled.stream.isPaused()).toBe(true);

    // The stalled watcher is parked: it takes no more pushes, so its memory stays bounded.
    await waitFor(() => ctx.h.registry.watchStats().parked === 1, "the stalled watcher to be parked");
    expect(stalledWatcher?.isParked).toBe(true);
    expect(normalWatcher?.isParked).toBe(false);
    const frozenAt = stalledWatcher!.resumeRevision;
    expect(frozenAt).toBeLessThan(total);
    expect(frozenAt).toBeLessThan(total / 2); // parked early: transport buffers fill, then 8 queued
    await churn(ctx, 10, "b", writer);
    const total2 = ctx.h.registry.revision;
    const normalMsgs2 = await readThrough(normal, total2);
    expectGapless(normalMsgs2, total + 1, total2);
    expect(stalledWatcher!.resumeRevision).toBe(frozenAt); // pushes stopped
    expect(ctx.h.registry.watchStats()).toMatchObject({ watchers: 2, parked: 1, resets: 0 });

    // Resumed, it catches up from history: every change exactly once, in order.
    stalled.stream.resume();
    const caughtUp = await readThrough(stalled, total2, 10_000);
    expectGapless(caughtUp, 1, total2);
    expect(caughtUp.map(brief)).toEqual([...normalMsgs, ...normalMsgs2].map(brief)); // the same events as the normal watcher
    await waitFor(() => ctx.h.registry.watchStats().parked === 0, "the caught-up watcher to go live");

    // And then it is live again.
    const after = await ctx.register("api", 9999);
    expect(await stalled.next()).toMatchObject({ type: REGISTERED, revision: total2 + 1, instance: { id: after.id } });
    expect(await normal.next()).toMatchObject({ type: REGISTERED, revision: total2 + 1 });
    expect(live.size).toBe(240);
  });

  it("a stalled watcher that falls out of the history window gets RESET, a fresh snapshot, SYNCED, then live events", async () => {
    ctx = await WatchContext.start({ registry: { watchQueueLimit: 8, historySize: 5 } });
    const stalled = await openStalled(ctx, ctx.isolatedClient());
    const live = await churn(ctx, 120, "a", ctx.isolatedClient());
    const total = ctx.h.registry.revision;
    await waitFor(() => ctx.h.registry.watchStats().parked === 1, "the stalled watcher to be parked");

    stalled.stream.resume();
    const msgs = await readUntil(stalled, (m) => m.type === SYNCED, 10_000);
    const resetAt = msgs.findIndex((m) => m.type === RESET);
    expect(resetAt, msgs.slice(-3).map(brief).join(", ")).toBeGreaterThan(0);
    // What it got before the RESET was a gapless prefix of the changes.
    expectGapless(msgs.slice(0, resetAt), 1, resetAt);
    expect(msgs[resetAt]).toMatchObject({ type: RESET, revision: total, epoch: ctx.h.registry.epoch });
    const snapshot = msgs.slice(resetAt + 1, -1);
    expect(snapshot.every((m) => m.type === REGISTERED && m.snapshot && m.revision === total)).toBe(true);
    expect(new Set(snapshot.map((m) => m.instance!.id))).toEqual(live);
    expect(msgs.at(-1)).toMatchObject({ type: SYNCED, revision: total });
    expect(ctx.h.registry.watchStats()).toMatchObject({ parked: 0, resets: 1 });

    const a = await ctx.register("api", 9999);
    await ctx.unregister(a.id);
    const liveMsgs = await stalled.take(2);
    expect(liveMsgs.map((m) => [m.type, m.revision])).toEqual([
      [REGISTERED, total + 1],
      [REMOVED, total + 2],
    ]);
  });

  it("ends a stream that accepts nothing for watchStallTimeoutMs with RESOURCE_EXHAUSTED and the revision to resume from", async () => {
    ctx = await WatchContext.start({ server: { watchStallTimeoutMs: 300 } });
    const stalled = await openStalled(ctx, ctx.isolatedClient());
    const writer = ctx.isolatedClient();
    expect(ctx.h.server.watchStreamCount).toBe(1);
    await churn(ctx, 40, "a", writer); // ~1.3 MB: far more than the HTTP/2 windows
    const started = Date.now();
    await waitFor(() => ctx.h.server.watchStreamCount === 0, "the stalled stream to be ended", 3000);
    expect(Date.now() - started).toBeLessThan(2000);

    // The client sees the status once it reads again.
    stalled.stream.resume();
    const received: Msg[] = [];
    let err;
    for (;;) {
      try {
        received.push(await stalled.next(3000));
      } catch (e) {
        err = e as { code?: number; details?: string; metadata?: { get(k: string): unknown[] } };
        break;
      }
    }
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    const match = /since_revision=(\d+)/.exec(err?.details ?? "");
    expect(match, err?.details).not.toBeNull();
    const resumeFrom = Number(match![1]);
    expect(err?.metadata?.get(RESUME_REVISION_TRAILER)).toEqual([String(resumeFrom)]);
    expect(resumeFrom).toBeGreaterThan(0);
    expect(resumeFrom).toBeLessThan(ctx.h.registry.revision);
    const lastSeen = received.filter(isChange).at(-1)?.revision ?? 0;
    expectGapless(received, 1, lastSeen);
    // The advertised resume point is what the client actually holds: resuming there loses nothing.
    expect(resumeFrom).toBe(lastSeen);

    const total = ctx.h.registry.revision;
    const resumed = ctx.watch({ sinceRevision: resumeFrom, epoch: ctx.h.registry.epoch }, writer);
    expectGapless(await readThrough(resumed, total), resumeFrom + 1, total);
  });

  it("ends a stalled stream as soon as its watcher ends (the registry closing), not after the stall timeout", async () => {
    ctx = await WatchContext.start({ registry: { watchQueueLimit: 8 } });
    const stalled = await openStalled(ctx, ctx.isolatedClient());
    await churn(ctx, 40, "a", ctx.isolatedClient());
    await waitFor(() => ctx.h.registry.watchStats().parked === 1, "the stalled watcher to be parked");
    // The core ends every watcher (as on losing a shared store); the gRPC server stays up.
    await ctx.h.registry.close();
    await waitFor(() => ctx.h.server.watchStreamCount === 0, "the stalled stream to be ended", 2000);
    stalled.stream.resume();
    let err: { code?: number; metadata?: { get(k: string): unknown[] } } | undefined;
    for (;;) {
      try {
        await stalled.next(3000);
      } catch (e) {
        err = e as typeof err;
        break;
      }
    }
    expect(err?.code).toBe(status.UNAVAILABLE);
    expect(err?.metadata?.get(RESUME_REVISION_TRAILER)).toHaveLength(1);
  });

  it("releases the stream of a stalled client that cancels", async () => {
    ctx = await WatchContext.start({ registry: { watchQueueLimit: 8 } });
    const stalled = await openStalled(ctx, ctx.isolatedClient());
    await churn(ctx, 40, "a", ctx.isolatedClient());
    await waitFor(() => ctx.h.registry.watchStats().parked === 1, "the stalled watcher to be parked");
    expect(ctx.h.server.watchStreamCount).toBe(1);
    stalled.cancel();
    await waitFor(() => ctx.h.registry.watchStats().watchers === 0, "the core watcher to be closed", 2000);
    // The handler must stop waiting for 'drain' on a cancelled call, not hold the
    // call and its write buffers until watchStallTimeoutMs (default 60 s) passes.
    await waitFor(() => ctx.h.server.watchStreamCount === 0, "the cancelled stream to leave watchStreamCount", 2000);
  });
});
