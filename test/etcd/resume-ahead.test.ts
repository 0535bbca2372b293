import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventType } from "../../gen/registry/v1/registry.js";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { waitFor } from "../support/wait-for.js";
import { WatchContext } from "../watch/watch-helpers.js";
import { etcdPresent } from "./etcd-suite.js";

/**
 * A watcher resuming on a replica that is behind its resume point (another
 * replica served it newer changes) waits for the replica to catch up rather
 * than get RESET and a snapshot older than what it has seen. Only a shared
 * store has replicas that can be ahead: a registry on a store of its own
 * process answers RESET at once (test/watch/resume-and-reset.test.ts).
 */
describe.skipIf(!etcdPresent)("WatchInstances resuming ahead of a replica on etcd", () => {
  let etcd: EtcdProcess;
  let ctx: WatchContext | undefined;
  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    await ctx?.close();
    ctx = undefined;
    await etcd.close();
  });

  const start = (resumeWait?: number) =>
    WatchContext.start({ registry: { store: new EtcdStore({ endpoints: [etcd.endpoint], prefix: "/resume-ahead/" }), ...(resumeWait ? { resumeWait } : {}) } });

  /**
   * A Register, and then etcd's deletion of its fence key when the fence
   * lease expires (a second or two later), which moves the revision too: a
   * resume point taken after both is reached only by the test's own changes.
   */
  async function settledRegister(c: WatchContext): Promise<void> {
    const registered = await c.register("api", 9001);
    await waitFor(() => c.h.registry.revision > registered.revision, "the Register's fence key to expire", 10_000, 50);
  }

  it("a since_revision ahead of the replica, same epoch, waits until the replica reaches it: no RESET, no older snapshot", async () => {
    ctx = await start();
    await settledRegister(ctx);
    const ahead = ctx.h.registry.revision + 1;
    const watch = ctx.watch({ sinceRevision: ahead, epoch: ctx.h.registry.epoch });
    await expect.poll(() => ctx?.h.registry.resumesWaiting).toBe(1);
    const seen = await ctx.register("cache", 6379); // the change the client already has
    expect(seen.revision).toBe(ahead);
    const next = await ctx.register("cache", 6380);
    expect(await watch.next()).toMatchObject({ type: EventType.EVENT_TYPE_INSTANCE_REGISTERED, revision: next.revision, snapshot: false, instance: { id: next.id } });
    expect(ctx.h.registry.watchStats().resets).toBe(0);
  });

  it("a since_revision ahead of the replica that it does not reach in time ends with UNAVAILABLE, not an older snapshot", async () => {
    ctx = await start(200);
    await ctx.register("api", 9001);
    const watch = ctx.watch({ sinceRevision: ctx.h.registry.revision + 5, epoch: ctx.h.registry.epoch });
    const err = await watch.status();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toMatch(/has not reached revision \d+ yet .* resume on another replica/);
    expect(ctx.h.registry.watchStats().resets).toBe(0);
  });
});
