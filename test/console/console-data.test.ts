import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { SseEventEncoder } from "../../src/http/sse-event-encoder.js";
import { startHealthServer } from "../support/health-server.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

const AUTH = { authorization: `Bearer ${TEST_KEY}` };

/** One server-sent event as parsed from the stream. */
interface Sse {
  readonly id?: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** Reads `GET /watch` with fetch (as the console does): `next()` waits for the next event. */
class SseReader {
  private buffer = "";
  private readonly events: Sse[] = [];
  private waiting: (() => void) | undefined;
  ended = false;
  constructor(private readonly response: Response, private readonly controller: AbortController) {
    void this.read();
  }
  private async read(): Promise<void> {
    const reader = (this.response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.buffer += decoder.decode(value, { stream: true });
        for (let end = this.buffer.indexOf("\n\n"); end >= 0; end = this.buffer.indexOf("\n\n")) {
          const record = this.buffer.slice(0, end);
          this.buffer = this.buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of record.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(": ");
            if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
          }
          if (fields.event) this.events.push({ ...(fields.id ? { id: fields.id } : {}), event: fields.event, data: JSON.parse(fields.data ?? "{}") as Record<string, unknown> });
        }
        this.waiting?.();
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.waiting?.();
  }
  async next(timeoutMs = 5000): Promise<Sse> {
    const until = Date.now() + timeoutMs;
    while (this.events.length === 0) {
      if (this.ended) throw new Error("the event stream ended");
      if (Date.now() > until) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.events.shift() as Sse;
  }
  close(): void {
    this.controller.abort();
  }
}

/** The next event named `event`, dropping others (keepalive-driven bookmarks and the like). */
async function nextOf(reader: SseReader, event: string): Promise<Sse> {
  for (;;) {
    const e = await reader.next();
    if (e.event === event) return e;
  }
}

describe("the console's data: GET /watch (server-sent events) and /console/*", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(env: Record<string, string> = {}) {
    const stack = await startStack(env);
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const register = (serviceType: string, port: number) => call(client, client.register, { serviceType, host: "127.0.0.1", port, metadata: {} });
    /** Opens `/watch` with the key, or with `headers` in its place when given. */
    const watch = async (query = "", headers: Record<string, string> = AUTH) => {
      const controller = new AbortController();
      const response = await fetch(`${stack.httpUrl}/watch${query}`, { headers, signal: controller.signal });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const reader = new SseReader(response, controller);
      cleanup.push(() => reader.close());
      return reader;
    };
    return { stack, client, register, watch };
  }

  it("streams a snapshot, synced, then every change with the revision as its id; a reconnect resumes with no gap and no repeat", async () => {
    const { stack, client, register, watch } = await setup();
    const a = await register("billing", 9001);
    const first = await watch("?serviceType=billing");
    const snap = await first.next();
    expect(snap).toMatchObject({ event: "registered", data: { snapshot: true, instance: { id: a.serviceId, health: "HEALTHY" } } });
    expect(snap.id).toBeUndefined(); // a snapshot is a resume point only once synced came
    const synced = await first.next();
    expect(synced.event).toBe("synced");
    const epoch = synced.data.epoch as string;

    const b = await register("billing", 9002);
    const live = await first.next();
    expect(live).toMatchObject({ event: "registered", id: String(stack.registry.revision), data: { instance: { id: b.serviceId } } });
    first.close();

    // While away: a drain and an unregister. Resuming from the last id sees both, in order, and nothing before.
    await call(client, client.drain, { instanceId: a.serviceId });
    await call(client, client.unregister, { instanceId: b.serviceId });
    const resumed = await watch(`?serviceType=billing&sinceRevision=${live.id}&epoch=${epoch}`);
    const missed = [await resumed.next(), await resumed.next()];
    expect(missed.map((e) => [e.event, Number(e.id)])).toEqual([
      ["draining", Number(live.id) + 1],
      ["removed", Number(live.id) + 2],
    ]);
    expect(missed[1]?.data).toMatchObject({ removalReason: "UNREGISTERED" });

    // The Last-Event-ID header (what EventSource sends) resumes the same way.
    const byHeader = await watch(`?serviceType=billing&epoch=${epoch}`, { ...AUTH, "last-event-id": String(Number(live.id) + 1) });
    expect(await byHeader.next()).toMatchObject({ event: "removed", id: String(Number(live.id) + 2) });
  });

  it("serialises a change once: every /watch stream writes the same bytes (the same Buffer)", async () => {
    const { stack, register, watch } = await setup();
    const encoded: { revision: number; bytes: Buffer | undefined }[] = [];
    const original = SseEventEncoder.prototype.encode;
    cleanup.push(() => vi.restoreAllMocks());
    vi.spyOn(SseEventEncoder.prototype, "encode").mockImplementation(function (this: SseEventEncoder, event) {
      const bytes = original.call(this, event);
      if (event.type === "change") encoded.push({ revision: event.change.revision, bytes });
      return bytes;
    });
    const streams = [await watch(), await watch(), await watch("?serviceType=billing")];
    for (const s of streams) expect((await s.next()).event).toBe("synced");

    const a = await register("billing", 9001);
    const received = await Promise.all(streams.map((s) => nextOf(s, "registered")));
    for (const e of received) expect(e).toMatchObject({ id: String(stack.registry.revision), data: { instance: { id: a.serviceId } } });
    expect(received[1]).toEqual(received[0]);
    expect(received[2]).toEqual(received[0]);
    expect(encoded).toHaveLength(3);
    expect(encoded[1]?.bytes).toBe(encoded[0]?.bytes);
    expect(encoded[2]?.bytes).toBe(encoded[0]?.bytes);
  });

  it("refuses a wrong key with 401 and a bad resume point with 400; ends streams with an error event at shutdown", async () => {
    const { stack, watch } = await setup();
    const wrong = await fetch(`${stack.httpUrl}/watch`, { headers: { authorization: "Bearer not-the-key-at-all-0000000" } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { message: string } }).error.message).toMatch(/registration key/);
    const bad = await fetch(`${stack.httpUrl}/watch?sinceRevision=-1`, { headers: AUTH });
    expect(bad.status).toBe(400);

    const all = await watch();
    expect((await all.next()).event).toBe("synced");
    const closing = stack.close();
    const error = await all.next();
    expect(error).toMatchObject({ event: "error", data: { code: "UNAVAILABLE" } });
    await closing;
  });

  it("ends a /watch stream when the key that opened it is reloaded away, or the instance whose credentials did is removed", async () => {
    const { stack, client, register, watch } = await setup();
    const instance = await register("billing", 9201);
    const byInstance = await watch("", { "x-service-id": instance.serviceId, "x-service-token": instance.token });
    const byKey = await watch();
    for (const w of [byInstance, byKey]) while ((await w.next()).event !== "synced");
    await call(client, client.unregister, { instanceId: instance.serviceId });
    const instanceEnd = await nextOf(byInstance, "error");
    expect(instanceEnd.data).toMatchObject({ code: "UNAUTHENTICATED", message: expect.stringMatching(/instance/) });
    expect(stack.reloadKeys("another-registration-key-0123456789")).toBe(true);
    const keyEnd = await nextOf(byKey, "error");
    expect(keyEnd.data).toMatchObject({ code: "UNAUTHENTICATED", message: expect.stringMatching(/key/) });
  });

  it("prefers Last-Event-ID over sinceRevision (an EventSource reconnects to its first URL), and answers HEAD with headers only", async () => {
    const { stack, register, watch } = await setup();
    await register("billing", 9211);
    const first = await watch("?serviceType=billing");
    await first.next();
    const epoch = (await first.next()).data.epoch as string;
    await register("billing", 9212);
    await register("billing", 9213);
    const latest = stack.registry.revision;
    const resumed = await watch(`?serviceType=billing&sinceRevision=1&epoch=${epoch}`, { ...AUTH, "last-event-id": String(latest - 1) });
    expect(await resumed.next()).toMatchObject({ event: "registered", id: String(latest) });
    // A bad header is named as the header, not as the query parameter it overrides.
    const junk = await fetch(`${stack.httpUrl}/watch?sinceRevision=1`, { headers: { ...AUTH, "last-event-id": "abc" }, signal: AbortSignal.timeout(5000) });
    expect(junk.status).toBe(400);
    expect(((await junk.json()) as { error: { message: string } }).error.message).toBe("Last-Event-ID: must be a revision (a non-negative integer)");
    const badQuery = await fetch(`${stack.httpUrl}/watch?sinceRevision=-1`, { headers: AUTH, signal: AbortSignal.timeout(5000) });
    expect(((await badQuery.json()) as { error: { message: string } }).error.message).toBe("sinceRevision: must be a revision (a non-negative integer)");
    const head = await fetch(`${stack.httpUrl}/watch`, { method: "HEAD", headers: AUTH, signal: AbortSignal.timeout(5000) });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toMatch(/^text\/event-stream/);
  });

  it("shutdown ends /watch streams at once, not at the end of the HTTP grace period", async () => {
    const { stack, watch } = await setup({ SHUTDOWN_GRACE_MS: "5000" });
    const all = await watch();
    expect((await all.next()).event).toBe("synced");
    const started = Date.now();
    const closing = stack.close();
    expect((await all.next()).event).toBe("error");
    expect(Date.now() - started).toBeLessThan(2500);
    await closing;
  });

  it("refuses GET /watch streams past MAX_WATCH_STREAMS with 429, and takes new ones once one ends", async () => {
    const { stack, watch } = await setup({ MAX_WATCH_STREAMS: "1" });
    const bad = await fetch(`${stack.httpUrl}/watch?sinceRevision=x`, { headers: AUTH });
    expect(bad.status).toBe(400);
    const first = await watch(); // the refused request left no place taken
    expect((await first.next()).event).toBe("synced");
    const refused = await fetch(`${stack.httpUrl}/watch`, { headers: AUTH });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe("MAX_WATCH_STREAMS reached (1 open over HTTP)");
    // The quota is checked before anything of the request is read: a full server answers 429 to a bad resume point too, and a bad one takes no place.
    const refusedBad = await fetch(`${stack.httpUrl}/watch?sinceRevision=-1`, { headers: AUTH });
    expect(refusedBad.status).toBe(429);
    await refusedBad.body?.cancel();
    first.close();
    await waitFor(async () => {
      const again = await fetch(`${stack.httpUrl}/watch`, { headers: AUTH });
      await again.body?.cancel();
      return again.status === 200;
    }, "a stream to be taken again");
  });

  it("GET /console/services/:type shows every instance with its latest failure reason and probe", async () => {
    const { stack, register } = await setup({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", HEALTH_CHECK_TTL_MS: "300" });
    const backend = await startHealthServer();
    cleanup.push(() => backend.close());
    const reg = await register("billing", backend.port);
    backend.status = 503;
    const read = async () =>
      (await (await fetch(`${stack.httpUrl}/console/services/billing`, { headers: AUTH })).json()) as {
        instances: { id: string; health: string; failureReason?: string; lastProbe?: { ms: number; ok: boolean } }[];
      };
    await waitFor(async () => (await read()).instances[0]?.health === "UNHEALTHY", "the instance to turn unhealthy");
    const [instance] = (await read()).instances;
    expect(instance).toMatchObject({ id: reg.serviceId, health: "UNHEALTHY", failureReason: "HTTP 503", lastProbe: { ok: false } });
    expect(instance?.lastProbe?.ms).toBeGreaterThanOrEqual(0);
    expect((await fetch(`${stack.httpUrl}/console/services/billing`)).status).toBe(401);
  });

  it("GET /console/series has healthy instances per type and the prober's lag, and needs the key", async () => {
    const { stack, register } = await setup({ CONSOLE_SAMPLE_INTERVAL_MS: "100" });
    await register("billing", 9101);
    const before = (await (await fetch(`${stack.httpUrl}/console/series`, { headers: AUTH })).json()) as { intervalMs: number; samples: unknown[] };
    expect(before.intervalMs).toBeGreaterThan(0);
    expect(before.samples.length).toBeGreaterThanOrEqual(1); // one taken at start-up
    expect((await fetch(`${stack.httpUrl}/console/series`)).status).toBe(401);
    // Only the types asked for (or the largest few): an hour of every type would be megabytes.
    for (let i = 0; i < 8; i++) await register(`type-${i}`, 9300 + i);
    const series = async (query: string) =>
      ((await (await fetch(`${stack.httpUrl}/console/series${query}`, { headers: AUTH })).json()) as { samples: { healthy: Record<string, number> }[] }).samples.at(-1)?.healthy;
    await waitFor(async () => Object.hasOwn((await series("?types=type-7")) ?? {}, "type-7"), "a sample with every type");
    expect(Object.keys((await series("?types=type-3,billing")) ?? {}).sort()).toEqual(["billing", "type-3"]);
    expect(Object.keys((await series("")) ?? {})).toHaveLength(6);
    expect((await fetch(`${stack.httpUrl}/console/series?types=${Array.from({ length: 21 }, (_, i) => `t${i}`).join(",")}`, { headers: AUTH })).status).toBe(400);
    // A name no type can have is refused, not charted as an empty line.
    for (const [types, named] of [["billing,,type-3", '""'], ["billing,BAD", '"BAD"']]) {
      const refused = await fetch(`${stack.httpUrl}/console/series?types=${types}`, { headers: AUTH });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: { code: "INVALID_ARGUMENT", message: `types: ${named} is not a service type name` } });
    }
  });
});
