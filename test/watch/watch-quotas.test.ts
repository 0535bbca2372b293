import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import { RegistryMetrics } from "../../src/observability/registry-metrics.js";
import { waitFor } from "../support/wait-for.js";
import { WatchContext } from "./watch-helpers.js";

const { EVENT_TYPE_SYNCED: SYNCED } = EventType;

/** The value of `registry_quota_refusals_total{quota="..."}` (0 when absent). */
async function refusals(metrics: RegistryMetrics, quota: string): Promise<number> {
  const line = (await metrics.exposition()).split("\n").find((l) => l.startsWith(`registry_quota_refusals_total{quota="${quota}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

async function statusOf(cursor: { next(ms?: number): Promise<unknown> }): Promise<{ code?: number; details?: string }> {
  try {
    const got = await cursor.next(3000);
    throw new Error(`expected the watch to be refused, got ${JSON.stringify(got)}`);
  } catch (err) {
    return err as { code?: number; details?: string };
  }
}

describe("watch-stream quotas", () => {
  let ctx: WatchContext | undefined;
  afterEach(async () => {
    await ctx?.close();
    ctx = undefined;
  });

  it("refuses a watch over MAX_WATCH_STREAMS_PER_CONNECTION or MAX_WATCH_STREAMS with RESOURCE_EXHAUSTED naming the quota, and counts it", async () => {
    const metrics = new RegistryMetrics({ defaultMetrics: false });
    ctx = await WatchContext.start({ server: { maxWatchStreams: 3, maxWatchStreamsPerConnection: 2, metrics } });
    const a = ctx.isolatedClient();
    const b = ctx.isolatedClient();
    for (let i = 0; i < 2; i++) expect(await ctx.watch({}, a).next()).toMatchObject({ type: SYNCED });

    const thirdOnA = await statusOf(ctx.watch({}, a));
    expect(thirdOnA.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(thirdOnA.details).toBe("MAX_WATCH_STREAMS_PER_CONNECTION reached (2 open on this connection)");
    expect(await refusals(metrics, "MAX_WATCH_STREAMS_PER_CONNECTION")).toBe(1);

    // Another connection still has room, up to the total.
    const onB = ctx.watch({}, b);
    expect(await onB.next()).toMatchObject({ type: SYNCED });
    const fourth = await statusOf(ctx.watch({}, b));
    expect(fourth.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(fourth.details).toBe("MAX_WATCH_STREAMS reached (3 open)");
    expect(await refusals(metrics, "MAX_WATCH_STREAMS")).toBe(1);
    expect(ctx.h.server.watchStreamCount).toBe(3);

    // A stream that ends gives its place back.
    onB.cancel();
    await waitFor(() => ctx!.h.server.watchStreamCount === 2, "the cancelled stream to be let go");
    expect(await ctx.watch({}, b).next()).toMatchObject({ type: SYNCED });
  });
});
