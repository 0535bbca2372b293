import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Change, ProbeEvent } from "../../src/registry/types.js";
import { WatchHub } from "../../src/registry/watch-hub.js";
import type { Watcher, WatcherLimits, WatchOptions } from "../../src/registry/watcher.js";
import { drain, instance, TestSource, watchOptions } from "./watch-source.js";

const LIMITS: WatcherLimits = { queueLimit: 100, catchUpBatch: 10, bookmarkIntervalMs: 1000 };

let source: TestSource;
let hub: WatchHub;

function makeHub(limits: Partial<WatcherLimits> = {}): WatchHub {
  return new WatchHub(source, { ...LIMITS, ...limits });
}

/** Opens a watcher and takes its snapshot, so what follows is live. */
function openLive(options: Partial<WatchOptions> = {}): Watcher {
  const watcher = hub.open(watchOptions(source, options));
  drain(watcher);
  return watcher;
}

/** Commits registrations of the given types, one per revision, and returns them unpublished. */
function commit(...types: string[]): Change[] {
  return types.map((t) => source.register(t));
}

function probe(id: string, serviceType: string): ProbeEvent {
  return { instance: instance(id, serviceType, 1), passed: false, revision: source.revision };
}

beforeEach(() => {
  vi.useFakeTimers();
  source = new TestSource();
  hub = makeHub();
});

afterEach(() => {
  hub.endAll();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("WatchHub: routing by service type", () => {
  it("a change reaches the watchers of its type and the every-type watchers, no others", () => {
    const a = openLive({ serviceType: "a" });
    const b = openLive({ serviceType: "b" });
    const all = openLive();
    hub.publishChanges(commit("a", "b", "a", "c"));
    expect(drain(a)).toEqual(["registered@1:a1", "registered@3:a3"]);
    expect(drain(b)).toEqual(["registered@2:b2"]);
    expect(drain(all)).toEqual(["registered@1:a1", "registered@2:b2", "registered@3:a3", "registered@4:c4"]);
    // Each has seen (or passed over) everything published.
    expect([a.resumeRevision, b.resumeRevision, all.resumeRevision]).toEqual([4, 4, 4]);
  });

  it("does not offer a change to a watcher of another type at all", () => {
    const a = openLive({ serviceType: "a" });
    const offered = vi.spyOn(a, "pushChange");
    hub.publishChanges(commit("b", "b"));
    expect(offered).not.toHaveBeenCalled();
    hub.publishChanges([commit("a")[0]!]);
    expect(offered).toHaveBeenCalledTimes(1);
  });

  it("a probe reaches only the every-health-check watchers of its type and of every type", () => {
    const aProbes = openLive({ serviceType: "a", everyHealthCheck: true });
    const aChanges = openLive({ serviceType: "a" });
    const bProbes = openLive({ serviceType: "b", everyHealthCheck: true });
    const allProbes = openLive({ everyHealthCheck: true });
    const allChanges = openLive();
    hub.publishProbe(probe("a1", "a"));
    hub.publishProbe(probe("b1", "b"));
    expect(drain(aProbes)).toEqual(["probe:a1:failed"]);
    expect(drain(aChanges)).toEqual([]);
    expect(drain(bProbes)).toEqual(["probe:b1:failed"]);
    expect(drain(allProbes)).toEqual(["probe:a1:failed", "probe:b1:failed"]);
    expect(drain(allChanges)).toEqual([]);
  });

  it("an idle watcher's BOOKMARK carries revisions of other types' changes", () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const a = openLive({ serviceType: "a" });
    hub.publishChanges(commit("b", "b", "b"));
    vi.advanceTimersByTime(1000);
    expect(drain(a)).toEqual(["bookmark@3"]);
  });

  it("publishChange is a batch of one", () => {
    const all = openLive();
    const [first, second] = commit("a", "b");
    hub.publishChanges([first!]);
    hub.publishChanges([second!]);
    expect(drain(all)).toEqual(["registered@1:a1", "registered@2:b2"]);
  });

  it("a watcher opened after a change was committed but before it was published gets it once", () => {
    const batch = commit("a", "a");
    const late = openLive(); // snapshot at 2
    hub.publishChanges(batch);
    expect(drain(late)).toEqual([]);
    hub.publishChanges(commit("a"));
    expect(drain(late)).toEqual(["registered@3:a3"]);
  });
});

describe("WatchHub: selectors", () => {
  /** Commits a registration of `serviceType` with `metadata`, unpublished. */
  function commitWith(serviceType: string, metadata: Record<string, string>): Change {
    return source.register(serviceType, undefined, metadata);
  }

  it("a watcher with a selector gets the snapshot and changes of matching instances only; its resume point passes the others", () => {
    commitWith("a", { zone: "eu-1" }); // a1
    commitWith("a", { zone: "us-1" }); // a2
    commitWith("b", { zone: "eu-1" }); // b3
    const eu = hub.open(watchOptions(source, { serviceType: "a", selector: { zone: "eu-1" } }));
    expect(drain(eu)).toEqual(["snapshot@3:a1", "synced@3"]);
    hub.publishChanges([
      commitWith("a", { zone: "us-1" }), // a4
      commitWith("a", { zone: "eu-1", tier: "web" }), // a5
      commitWith("b", { zone: "eu-1" }), // b6
      source.remove("a2"), // 7
      source.remove("a1"), // 8
      commitWith("a", { tier: "web" }), // a9: no zone at all
    ]);
    expect(drain(eu)).toEqual(["registered@5:a5", "removed@8:a1"]);
    expect(eu.resumeRevision).toBe(9);
  });

  it("does not offer a change to a watcher whose selector its instance does not match", () => {
    const eu = hub.open(watchOptions(source, { serviceType: "a", selector: { zone: "eu-1" } }));
    drain(eu);
    const offered = vi.spyOn(eu, "pushChange");
    hub.publishChanges([commitWith("a", { zone: "us-1" }), commitWith("a", {}), commitWith("a", { region: "eu-1" })]);
    expect(offered).not.toHaveBeenCalled();
    hub.publishChanges([commitWith("a", { zone: "eu-1" })]);
    expect(offered).toHaveBeenCalledTimes(1);
  });

  it("several keys are ANDed, whichever key a watcher is indexed by", () => {
    const both = openLive({ serviceType: "a", selector: { zone: "eu-1", tier: "web" } });
    const tier = openLive({ serviceType: "a", selector: { tier: "web" } });
    hub.publishChanges([
      commitWith("a", { zone: "eu-1" }), // a1
      commitWith("a", { tier: "web" }), // a2
      commitWith("a", { zone: "eu-1", tier: "web", extra: "x" }), // a3
      commitWith("a", { zone: "us-1", tier: "web" }), // a4
    ]);
    expect(drain(both)).toEqual(["registered@3:a3"]);
    expect(drain(tier)).toEqual(["registered@2:a2", "registered@3:a3", "registered@4:a4"]);
  });

  it("an every-type watcher with a selector gets matching instances of every type; one without a selector gets all", () => {
    const eu = openLive({ selector: { zone: "eu-1" } });
    const all = openLive();
    const empty = openLive({ selector: {} });
    hub.publishChanges([commitWith("a", { zone: "eu-1" }), commitWith("b", { zone: "us-1" }), commitWith("c", { zone: "eu-1" })]);
    expect(drain(eu)).toEqual(["registered@1:a1", "registered@3:c3"]);
    expect(drain(all)).toEqual(["registered@1:a1", "registered@2:b2", "registered@3:c3"]);
    expect(drain(empty)).toEqual(["registered@1:a1", "registered@2:b2", "registered@3:c3"]);
  });

  it("probes reach every-health-check watchers only for instances their selector matches", () => {
    const eu = openLive({ serviceType: "a", everyHealthCheck: true, selector: { zone: "eu-1" } });
    const euEveryType = openLive({ everyHealthCheck: true, selector: { zone: "eu-1" } });
    const probeOf = (id: string, zone: string): ProbeEvent => ({ instance: instance(id, "a", 1, { zone }), passed: true, revision: source.revision });
    hub.publishProbe(probeOf("a1", "us-1"));
    hub.publishProbe(probeOf("a2", "eu-1"));
    expect(drain(eu)).toEqual(["probe:a2:passed"]);
    expect(drain(euEveryType)).toEqual(["probe:a2:passed"]);
  });

  it("resuming from history replays only matching changes, and ends at the registry's revision", () => {
    commitWith("a", { zone: "eu-1" }); // a1
    const { epoch } = source;
    commitWith("a", { zone: "us-1" }); // a2
    commitWith("a", { zone: "eu-1" }); // a3
    source.remove("a2"); // 4
    const resumed = hub.open(watchOptions(source, { serviceType: "a", sinceRevision: 1, epoch, selector: { zone: "eu-1" } }));
    expect(drain(resumed)).toEqual(["registered@3:a3"]);
    expect(resumed.resumeRevision).toBe(4);
    hub.publishChanges([commitWith("a", { zone: "us-1" }), commitWith("a", { zone: "eu-1" })]);
    expect(drain(resumed)).toEqual(["registered@6:a6"]);
    expect(resumed.resumeRevision).toBe(6);
  });

  it("a parked watcher with a selector catches up on matching changes only, with no gap or duplicate", () => {
    hub = makeHub({ queueLimit: 1, catchUpBatch: 2 });
    const eu = openLive({ serviceType: "a", selector: { zone: "eu-1" } });
    hub.publishChanges([
      commitWith("a", { zone: "eu-1" }), // a1 queued
      commitWith("a", { zone: "us-1" }), // a2 not offered
      commitWith("a", { zone: "eu-1" }), // a3 parks
      commitWith("a", { zone: "us-1" }), // a4
      commitWith("a", { zone: "eu-1" }), // a5
    ]);
    expect(eu.isParked).toBe(true);
    expect(eu.resumeRevision).toBe(2);
    expect(drain(eu)).toEqual(["registered@1:a1", "registered@3:a3", "registered@5:a5"]);
    expect(eu.resumeRevision).toBe(5);
  });

  it("an idle watcher's BOOKMARK carries revisions of changes its selector left out", () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const eu = openLive({ serviceType: "a", selector: { zone: "eu-1" } });
    hub.publishChanges([commitWith("a", { zone: "us-1" }), commitWith("a", { zone: "us-1" })]);
    vi.advanceTimersByTime(1000);
    expect(drain(eu)).toEqual(["bookmark@2"]);
  });

  it("an ended watcher with a selector is offered nothing more, and the others of its index entry still are", () => {
    const first = openLive({ serviceType: "a", selector: { zone: "eu-1" } });
    const second = openLive({ serviceType: "a", selector: { zone: "eu-1" } });
    const offered = vi.spyOn(first, "pushChange");
    first.end();
    hub.publishChanges([commitWith("a", { zone: "us-1" }), commitWith("a", { zone: "eu-1" })]);
    expect(offered).not.toHaveBeenCalled();
    expect(drain(second)).toEqual(["registered@2:a2"]);
    second.end();
    expect(hub.stats().watchers).toBe(0);
  });
});

describe("WatchHub: parking within a batch", () => {
  it("a watcher parked mid-batch resumes from just below the change that did not fit, with no gap or duplicate", () => {
    hub = makeHub({ queueLimit: 1, catchUpBatch: 2 });
    const a = openLive({ serviceType: "a" });
    hub.publishChanges(commit("a", "b", "a", "a", "b"));
    expect(a.isParked).toBe(true);
    expect(a.resumeRevision).toBe(2); // where the hub stood before a3
    expect(hub.stats()).toEqual({ watchers: 1, parked: 1, resets: 0 });
    expect(drain(a)).toEqual(["registered@1:a1", "registered@3:a3", "registered@4:a4"]);
    expect(a.resumeRevision).toBe(5);
    expect(hub.stats().parked).toBe(0);
    hub.publishChanges(commit("a"));
    expect(drain(a)).toEqual(["registered@6:a6"]);
  });
});

describe("WatchHub: progress", () => {
  it("reaches every live watcher, whatever its type", () => {
    const a = openLive({ serviceType: "a" });
    const all = openLive();
    hub.publishProgress(12);
    expect([a.resumeRevision, all.resumeRevision]).toEqual([12, 12]);
  });

  it("does not move a parked watcher, which takes the revision when it catches up", () => {
    hub = makeHub({ queueLimit: 1 });
    const a = openLive({ serviceType: "a" });
    hub.publishChanges(commit("a", "a"));
    source.revision = 12; // a shared store moved on with no change of ours
    hub.publishProgress(12);
    expect(a.resumeRevision).toBe(1);
    expect(drain(a)).toEqual(["registered@1:a1", "registered@2:a2"]);
    expect(a.resumeRevision).toBe(12);
  });
});

describe("WatchHub: ending and stats", () => {
  it("counts open, parked and reset watchers", () => {
    source = new TestSource(2);
    hub = makeHub({ queueLimit: 1 });
    const a = openLive({ serviceType: "a" });
    const b = openLive({ serviceType: "b" });
    expect(hub.stats()).toEqual({ watchers: 2, parked: 0, resets: 0 });
    hub.publishChanges(commit("a", "a", "a", "a")); // a parks; history keeps 3..4
    expect(hub.stats()).toEqual({ watchers: 2, parked: 1, resets: 0 });
    expect(drain(a)[1]).toBe("reset@4");
    expect(hub.stats()).toEqual({ watchers: 2, parked: 0, resets: 1 });
    hub.open(watchOptions(source, { sinceRevision: 1, epoch: "other" })); // RESET at open
    expect(hub.stats()).toEqual({ watchers: 3, parked: 0, resets: 2 });
    b.end();
    expect(hub.stats()).toEqual({ watchers: 2, parked: 0, resets: 2 });
  });

  it("an ended watcher is offered nothing more", () => {
    const a = openLive({ serviceType: "a" });
    const offered = vi.spyOn(a, "pushChange");
    a.end();
    hub.publishChanges(commit("a"));
    expect(offered).not.toHaveBeenCalled();
  });

  it("a watcher ended from its consumer's wake-up mid-publish does not stop the others", () => {
    const first = openLive({ serviceType: "a" });
    const second = openLive({ serviceType: "a" });
    first.consume(() => first.end());
    hub.publishChanges(commit("a", "a"));
    expect(first.closed).toBe(true);
    expect(drain(second)).toEqual(["registered@1:a1", "registered@2:a2"]);
    expect(hub.stats().watchers).toBe(1);
  });

  it("endAll(error) ends every iteration with the error", async () => {
    const a = openLive({ serviceType: "a" });
    const all = openLive();
    const pending = [a.next(), all.next()];
    const error = new Error("registry is shutting down");
    hub.endAll(error);
    for (const p of pending) await expect(p).rejects.toBe(error);
    expect(hub.stats()).toEqual({ watchers: 0, parked: 0, resets: 0 });
  });
});
