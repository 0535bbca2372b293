import { credentials, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { RegistryMetrics } from "../../src/observability/registry-metrics.js";
import { parseExposition } from "../support/prometheus-text.js";
import { call, instanceAuth, keyAuth, WatchCursor } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { readUntil, WatchContext } from "./watch-helpers.js";

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

  it("holds one instance's credentials to MAX_WATCH_STREAMS_PER_INSTANCE over every connection, gRPC and HTTP apart; the key is not held to it", async () => {
    const stack = await startStack({ MAX_WATCH_STREAMS_PER_INSTANCE: "2" });
    const clients: RegistryServiceClient[] = [];
    const cursors: WatchCursor[] = [];
    const streams = new AbortController();
    try {
      /** A client on a connection of its own: the quota is not a per-connection one. */
      const client = (): RegistryServiceClient => {
        const c = new RegistryServiceClient(stack.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
        clients.push(c);
        return c;
      };
      const registrar = client();
      const { serviceId, token } = await call(registrar, registrar.register, { serviceType: "router", host: "127.0.0.1", port: 9801, metadata: {} });
      const watch = (metadata = instanceAuth(serviceId, token)): WatchCursor => {
        const cursor = WatchCursor.open(client(), {}, metadata);
        cursor.stream.on("error", () => {}); // read through the cursor
        cursors.push(cursor);
        return cursor;
      };
      const synced = (cursor: WatchCursor) => readUntil(cursor, (m) => m.type === EventType.EVENT_TYPE_SYNCED);
      const first = watch();
      await synced(first);
      await synced(watch());
      const third = await watch().status();
      expect(third.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(third.details).toBe("MAX_WATCH_STREAMS_PER_INSTANCE reached (2 open with this instance's credentials)");
      await synced(watch(keyAuth())); // routers share the key: no per-key quota

      // GET /watch counts apart from gRPC: two more, then a 429 before the stream starts.
      const headers = { "x-service-id": serviceId, "x-service-token": token };
      const sse = () => fetch(`${stack.httpUrl}/watch`, { headers, signal: streams.signal });
      for (let i = 0; i < 2; i++) expect((await sse()).status).toBe(200);
      const refused = await sse();
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({
        error: { code: "RESOURCE_EXHAUSTED", message: "MAX_WATCH_STREAMS_PER_INSTANCE reached (2 open with this instance's credentials over HTTP)" },
      });
      const refusals = parseExposition(await (await fetch(`${stack.httpUrl}/metrics`)).text()).value("registry_quota_refusals_total", {
        quota: "MAX_WATCH_STREAMS_PER_INSTANCE",
      });
      expect(refusals).toBe(2);

      // A stream that ends gives its place back.
      first.cancel();
      await waitFor(async () => {
        const again = watch();
        try {
          await synced(again);
          return true;
        } catch {
          return false;
        }
      }, "the cancelled stream's place to be given back");
    } finally {
      streams.abort();
      for (const c of cursors) c.cancel();
      for (const c of clients) c.close();
      await stack.close();
    }
  });
});
