import { afterEach, describe, expect, it } from "vitest";
import { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change, StoredInstance } from "../../src/registry/types.js";
import type { SharedStore, StoreState } from "../../src/registry/registry-store.js";

/** A shared store driven by the test: it feeds changes and progress marks as etcd's watch would. */
class FeedStore implements SharedStore {
  readonly plannedBy = "store";
  change: (change: Change) => void = () => {};
  progress: (revision: number) => void = () => {};

  onProgress(listener: (revision: number) => void): void {
    this.progress = listener;
  }
  async open(onChange: (change: Change) => void): Promise<StoreState> {
    this.change = onChange;
    return { epoch: "e1", revision: 4, instances: [], history: [], historyFloor: 0 };
  }
  commitBatch(): Promise<Change>[] {
    throw new Error("not used");
  }
  async close(): Promise<void> {}
}

function registered(revision: number, id: string): Change {
  const instance: StoredInstance = {
    id,
    serviceType: "api",
    host: "10.0.0.1",
    port: 80,
    metadata: {},
    healthCheckPath: "/health",
    health: "healthy", draining: false, drainingSince: 0,
    registeredAt: 0,
    updatedAt: 0,
    revision,
    tokenHash: "",
  };
  return { kind: "registered", revision, instance };
}

const watchFrom = (registry: ServiceRegistry, sinceRevision: number) =>
  registry.watch({ serviceType: "", sinceRevision, epoch: "e1", everyHealthCheck: false, selector: {} });

describe("progress marks from a shared store (writes to keys that are not instances)", () => {
  const registries: ServiceRegistry[] = [];
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.close();
  });

  async function start(): Promise<{ registry: ServiceRegistry; store: FeedStore }> {
    const store = new FeedStore();
    const registry = new ServiceRegistry({ store, healthChecks: false, bookmarkInterval: 20, resumeWait: 2000, logger: { info() {}, warn() {}, error() {} } as never });
    registries.push(registry);
    await registry.start();
    return { registry, store };
  }

  it("move the revision, BOOKMARKs and a waiting resume on, with no history entry", async () => {
    const { registry, store } = await start();
    store.change(registered(5, "a"));
    const live = watchFrom(registry, 5);
    // A resume point from a replica that has seen the progress: this one waits for it...
    let reached = false;
    const waiting = registry.reach("e1", 9).then(() => (reached = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(reached).toBe(false);
    store.progress(9); // e.g. a membership put at etcd revision 9
    await waiting; // ...and is released by it.
    expect(registry.revision).toBe(9);
    expect(await live.next()).toEqual({ done: false, value: { type: "bookmark", revision: 9 } });
    live.end();

    // Resuming from the progress revision (or from before it) is exact: no RESET.
    const fromNine = watchFrom(registry, 9);
    const fromFive = watchFrom(registry, 5);
    store.change(registered(11, "b"));
    for (const w of [fromNine, fromFive]) {
      const first = (await w.next()).value;
      expect(first).toMatchObject({ type: "change", change: { revision: 11 } });
      w.end();
    }
  });

  it("never overtakes a change queued before it, even when fed from inside an apply", async () => {
    const { registry, store } = await start();
    const applied: number[] = [];
    let nested = false;
    registry.on("change", (change) => {
      applied.push(change.revision);
      if (nested) return;
      nested = true;
      store.change(registered(6, "b"));
      store.progress(8);
    });
    store.change(registered(5, "a"));
    expect(applied).toEqual([5, 6]);
    expect(registry.revision).toBe(8);
    expect(registry.getByType("api").instances.map((i) => i.id).sort()).toEqual(["a", "b"]);
    store.progress(7); // an older mark changes nothing
    expect(registry.revision).toBe(8);
  });
});
