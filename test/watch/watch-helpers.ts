import type { StreamCursor } from "../support/stream-cursor.js";
import { credentials } from "@grpc/grpc-js";
import {
  EventType,
  RegistryServiceClient,
  type RegisterRequest,
  type WatchInstancesResponse,
} from "../../gen/registry/v1/registry.js";
import type { Watcher } from "../../src/registry/watcher.js";
import { call, startHarness, WatchCursor, type Harness, type HarnessOptions } from "../support/registry-harness.js";

export type Msg = WatchInstancesResponse;

/** Event types that are committed changes (when not part of a snapshot). */
const CHANGE_TYPES = new Set<EventType>([
  EventType.EVENT_TYPE_INSTANCE_REGISTERED,
  EventType.EVENT_TYPE_INSTANCE_REMOVED,
  EventType.EVENT_TYPE_HEALTH_CHECK_PASSED,
  EventType.EVENT_TYPE_HEALTH_CHECK_FAILED,
]);

/** A live or replayed change (not a snapshot entry, not a marker). */
export function isChange(m: Msg): boolean {
  return CHANGE_TYPES.has(m.type) && !m.snapshot;
}

/** A short readable form of a message, for assertion diffs. */
export function brief(m: Msg): string {
  const name = EventType[m.type]?.replace("EVENT_TYPE_", "") ?? String(m.type);
  return `${name}@${m.revision}${m.snapshot ? "(snap)" : ""}${m.instance ? `:${m.instance.id.slice(0, 8)}` : ""}`;
}

/** Reads messages until one matches `done` (included); fails after `timeoutMs` in total. */
export async function readUntil(cursor: StreamCursor<Msg>, done: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg[]> {
  const deadline = Date.now() + timeoutMs;
  const out: Msg[] = [];
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`condition not met within ${timeoutMs} ms; got ${out.slice(-5).map(brief).join(", ")}`);
    const m = await cursor.next(left);
    out.push(m);
    if (done(m)) return out;
  }
}

/** Reads messages until a change with revision >= `revision` arrives. */
export function readThrough(cursor: WatchCursor, revision: number, timeoutMs = 5000): Promise<Msg[]> {
  return readUntil(cursor, (m) => isChange(m) && m.revision >= revision, timeoutMs);
}

/** Asserts `revisions` is exactly from..to, step 1 (the memory store's revisions are contiguous). */
export function expectRange(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** 64 entries of 512 bytes: ~32 KiB per instance, so a few events fill HTTP/2 windows. */
export function bigMetadata(tag: string): Record<string, string> {
  const md: Record<string, string> = {};
  for (let i = 0; i < 64; i++) md[`k${i}`] = `${tag}-${i}-`.padEnd(512, "x");
  return md;
}

/**
 * Test context: a harness plus everything opened against it, all closed in
 * `close()` (call it from afterEach).
 */
export class WatchContext {
  private readonly cursors: WatchCursor[] = [];
  private readonly clients: RegistryServiceClient[] = [];
  /** Core watchers opened by the server, in opening order. */
  readonly watchers: Watcher[] = [];

  private constructor(readonly h: Harness) {
    // Record the core watcher behind each stream, to observe parking and resume points.
    const registry = h.registry;
    const original = registry.watch.bind(registry);
    registry.watch = (options) => {
      const w = original(options);
      this.watchers.push(w);
      return w;
    };
  }

  static async start(options: HarnessOptions = {}): Promise<WatchContext> {
    return new WatchContext(await startHarness(options));
  }

  /**
   * A client on its own HTTP/2 connection (grpc-js otherwise shares one
   * connection per target, and so one connection-level flow-control window).
   */
  isolatedClient(): RegistryServiceClient {
    const c = new RegistryServiceClient(this.h.address, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    this.clients.push(c);
    return c;
  }

  watch(request: Parameters<typeof WatchCursor.open>[1] = {}, client: RegistryServiceClient = this.h.client): WatchCursor {
    const cursor = WatchCursor.open(client, request);
    cursor.stream.on("error", () => {}); // errors are read through the cursor
    this.cursors.push(cursor);
    return cursor;
  }

  async register(
    serviceType: string,
    port: number,
    extra: Partial<RegisterRequest> = {},
    client: RegistryServiceClient = this.h.client,
  ): Promise<{ id: string; revision: number }> {
    const res = await call(client, client.register, { serviceType, port, host: "127.0.0.1", metadata: {}, ...extra });
    return { id: res.serviceId, revision: res.instance?.revision ?? 0 };
  }

  async unregister(id: string, client: RegistryServiceClient = this.h.client): Promise<number> {
    const res = await call(client, client.unregister, { instanceId: id });
    return res.revision;
  }

  async close(): Promise<void> {
    for (const c of this.cursors) {
      c.stream.resume();
      c.cancel();
    }
    for (const c of this.clients) c.close();
    await this.h.close();
  }
}
