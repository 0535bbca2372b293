import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EtcdStore } from "../../src/store/etcd/etcd-store.js";
import { startEtcd, type EtcdProcess } from "../support/etcd-process.js";
import { etcdPresent } from "./etcd-suite.js";

describe.skipIf(!etcdPresent)("the etcd store", () => {
  let etcd: EtcdProcess;
  let store: EtcdStore | undefined;
  beforeEach(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    await store?.close();
    await etcd.close();
  });

  it("stays available for many times its call timeout: the deadline is for unary calls, not the watch stream", async () => {
    const callTimeoutMs = 200;
    store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: "/store-test/", callTimeoutMs });
    const changes: string[] = [];
    store.onAvailabilityChange((available, reason) => changes.push(`${available}: ${reason}`));
    await store.open(() => {});
    // Commits back to back across 6 deadlines; with the deadline on the watch
    // stream the store flapped to unavailable every 200 ms.
    const started = Date.now();
    let committed = 0;
    // A commit etcd itself takes longer than 200 ms over (an fsync on a loaded machine) runs out
    // its own deadline: that says nothing of the watch stream, which is what the store's availability follows.
    const ownDeadline = (err: unknown) => {
      if (!/DEADLINE_EXCEEDED/.test(String((err as Error).cause))) throw err;
    };
    for (let port = 1; Date.now() - started < 6 * callTimeoutMs; port++) {
      await store.commit({
        op: "register",
        instance: {
          id: `00000000-0000-7000-8000-${String(port).padStart(12, "0")}`,
          serviceType: "api",
          host: "127.0.0.1",
          port,
          metadata: {},
          healthCheckPath: "/health",
          health: "healthy", draining: false, drainingSince: 0,
          registeredAt: Date.now(),
          updatedAt: Date.now(),
          tokenHash: "h".repeat(32),
        },
      }).then(() => committed++, ownDeadline);
    }
    expect(committed).toBeGreaterThan(0);
    expect(changes).toEqual([]);
  }, 30_000);
});
