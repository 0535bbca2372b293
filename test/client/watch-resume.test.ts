import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { WatchDisconnect } from "../../src/client/registry-watch.js";
import type { RegistryWatchEvent } from "../../src/client/watch-events.js";
import { startHealthServer, type HealthServer } from "../support/health-server.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
import { tempDataDir } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";
import { changeRevisions, drain, freePort, Log, startLocalRegistry, type LocalRegistry } from "./helpers.js";

const FAST_BACKOFF = { initialMs: 20, maxMs: 200 };

/** 64 entries of 512 bytes: ~32 KiB per event, so a few fill the HTTP/2 windows. */
function bigMetadata(tag: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, `${tag}-${i}-`.padEnd(512, "x")]));
}

/**
 * Registries here run in this process (the same server code `serve` runs),
 * so restarts take milliseconds; router.test.ts restarts real processes.
 */
describe("RegistryWatch resumes without gap or duplicate", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const track = <T extends { close(): unknown }>(thing: T): T => {
    cleanups.push(() => thing.close());
    return thing;
  };
  const client = (addresses: string[]): RegistryClient =>
    track(new RegistryClient({ addresses, auth: { key: TEST_KEY }, backoff: FAST_BACKOFF, connectTimeoutMs: 500 }));
  const local = async (port: number, dataDir?: string): Promise<LocalRegistry> => {
    const r = await startLocalRegistry(port, dataDir, TEST_KEY);
    cleanups.push(() => r.close());
    return r;
  };

  it("across a stall end: a consumer too slow for the registry's stall timeout gets every change exactly once", async () => {
    const h: Harness = await startHarness({ server: { watchStallTimeoutMs: 300 } });
    cleanups.push(() => h.close());
    const disconnects = new Log<WatchDisconnect>();
    const watch = client([h.address]).watch({ bufferSize: 4, onDisconnect: (d) => disconnects.push(d) });
    expect((await watch.next()).value).toMatchObject({ type: "snapshot", instances: [] });

    // The consumer stops reading; ~1.3 MB of changes overflow every buffer on the way.
    const writer = client([h.address]);
    const metadata = bigMetadata("a");
    for (let i = 0; i < 40; i++) {
      const r = await writer.register({ serviceType: "api", port: 10_000 + i, host: "10.0.0.1", metadata });
      if (i % 4 === 3) await writer.unregister(r.id);
    }
    const last = h.registry.revision;
    await waitFor(() => h.server.watchStreamCount === 0, "the registry to end the stalled stream");

    // Reading again drains what was sent, meets RESOURCE_EXHAUSTED, resumes from history.
    const events: RegistryWatchEvent[] = [];
    for await (const event of watch) {
      events.push(event);
      if (event.revision === last && event.type !== "probe") break;
    }
    expect(changeRevisions(events)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(events.filter((e) => e.type === "reset" || e.type === "snapshot")).toEqual([]);
    expect(disconnects.items[0]?.error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(disconnects.items[0]?.revision).toBeGreaterThan(0);
  });

  it("across a registry restart (SQLite): UNAVAILABLE at shutdown, then the changes made meanwhile, without RESET", async () => {
    const port = await freePort();
    const dataDir = tempDataDir();
    let registry = await local(port, dataDir);
    const writer = client([registry.address]);
    const disconnects = new Log<WatchDisconnect>();
    const log = drain(client([registry.address]).watch({ onDisconnect: (d) => disconnects.push(d) }));
    const revisions: number[] = [];
    const a = await writer.register({ serviceType: "api", port: 1, host: "10.0.0.1" });
    const b = await writer.register({ serviceType: "api", port: 2, host: "10.0.0.2" });
    revisions.push(a.instance.revision, b.instance.revision, (await writer.unregister(a.id)).revision);
    await log.until((e) => changeRevisions(e).includes(revisions.at(-1)!), "the first changes");

    await registry.close();
    await disconnects.find((d) => d.error.code === status.UNAVAILABLE, "UNAVAILABLE from the shutting-down registry");
    registry = await local(port, dataDir);
    // Written as soon as the registry is back, likely before the watch reconnects.
    for (let i = 0; i < 5; i++) revisions.push((await writer.register({ serviceType: "api", port: 10 + i, host: "10.0.0.3" })).instance.revision);
    revisions.push((await writer.unregister(b.id)).revision);
    await log.until((e) => changeRevisions(e).includes(revisions.at(-1)!), "the changes made after the restart", 10_000);

    expect(changeRevisions(log.items)).toEqual(revisions);
    expect(log.items.filter((e) => e.type === "snapshot")).toHaveLength(1); // the first one only
    expect(log.items.some((e) => e.type === "reset")).toBe(false);
  });

  it("fails over to another address holding the same data and resumes there (what replicas on one etcd give)", async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const dataDir = tempDataDir();
    const first = await local(p1, dataDir);
    const addresses = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    const writer = client(addresses);
    const log = drain(client(addresses).watch({ serviceType: "api" }));
    const revisions = [(await writer.register({ serviceType: "api", port: 1, host: "10.0.0.1" })).instance.revision];
    await log.until((e) => changeRevisions(e).includes(revisions[0]!), "the first change");

    await first.close();
    await local(p2, dataDir);
    for (let i = 0; i < 3; i++) revisions.push((await writer.register({ serviceType: "api", port: 2 + i, host: "10.0.0.2" })).instance.revision);
    await log.until((e) => changeRevisions(e).includes(revisions.at(-1)!), "the changes on the second address", 10_000);
    expect(changeRevisions(log.items)).toEqual(revisions);
    expect(log.items.some((e) => e.type === "reset")).toBe(false);
  });

  it("surfaces RESET when the registry lost its data (memory store restarted), then a fresh snapshot replaces the old view", async () => {
    const port = await freePort();
    const registry = await local(port);
    const writer = client([registry.address]);
    const log = drain(client([registry.address]).watch());
    const old = await writer.register({ serviceType: "api", port: 1, host: "10.0.0.1" });
    await log.find((e) => e.type === "instanceRegistered", "the first registration");
    const oldEpoch = log.items[0]!.epoch;

    await registry.close();
    await local(port);
    const fresh = await writer.register({ serviceType: "api", port: 2, host: "10.0.0.2" });
    await log.until((items) => view(items).has(fresh.id), "the new registration", 10_000);

    const reset = log.items.findIndex((e) => e.type === "reset");
    expect(reset).toBeGreaterThan(0);
    expect(log.items[reset + 1]?.type).toBe("snapshot"); // the reset is followed by the fresh snapshot
    expect(log.items[reset + 1]?.epoch).not.toBe(oldEpoch);
    expect([...view(log.items).keys()]).toEqual([fresh.id]); // the old instance is gone from the view
    expect(view(log.items).has(old.id)).toBe(false);
  });

  it("tells per-probe results (everyHealthCheck) from health changes, also when other types move the revision", async () => {
    const health: HealthServer = await startHealthServer();
    cleanups.push(() => health.close());
    const h = await startHarness({ registry: { healthChecks: true, healthCheckInterval: 50, healthCheckTTL: 500 } });
    cleanups.push(() => h.close());
    const writer = client([h.address]);
    const log = drain(client([h.address]).watch({ serviceType: "api", everyHealthCheck: true }));
    const a = await writer.register({ serviceType: "api", port: health.port, host: "127.0.0.1" });
    await writer.register({ serviceType: "other", port: health.port, host: "127.0.0.1" }); // moves the revision past a's
    await log.until((e) => e.filter((x) => x.type === "probe" && x.passed).length >= 3, "passing probes");
    health.status = 503;
    await log.find((e) => e.type === "healthCheckFailed", "the transition to unhealthy");
    await log.until((e) => e.filter((x) => x.type === "probe" && !x.passed).length >= 2, "failing probes");

    const changes = log.items.filter((e) => e.type !== "probe" && e.type !== "snapshot");
    expect(changes.map((e) => e.type)).toEqual(["instanceRegistered", "healthCheckFailed"]);
    const failed = changes[1] as Extract<RegistryWatchEvent, { type: "healthCheckFailed" }>;
    expect(failed.revision).toBeGreaterThan(a.instance.revision + 1);
    expect(failed.revision).toBe(failed.instance.revision);
    const failedProbe = log.items.find((e) => e.type === "probe" && !e.passed);
    expect(failedProbe).toMatchObject({ instance: { id: a.id, health: "unhealthy" }, failureReason: expect.stringMatching(/503/) });
  });
});

/** The instances a consumer holds after applying `events` (snapshot replaces, changes patch). */
function view(events: readonly RegistryWatchEvent[]): Map<string, RegistryWatchEvent> {
  const held = new Map<string, RegistryWatchEvent>();
  for (const e of events) {
    if (e.type === "snapshot") {
      held.clear();
      for (const i of e.instances) held.set(i.id, e);
    } else if (e.type === "instanceRemoved") {
      held.delete(e.instance.id);
    } else if (e.type === "instanceRegistered" || e.type === "healthCheckPassed" || e.type === "healthCheckFailed") {
      held.set(e.instance.id, e);
    }
  }
  return held;
}
