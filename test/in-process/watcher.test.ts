import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ProbeEvent } from "../../src/registry/types.js";
import { Watcher, type WatcherFeed, type WatcherLimits, type WatchOptions } from "../../src/registry/watcher.js";
import { brief, drain, instance, TestSource, watchOptions } from "./watch-source.js";

/** A feed the test drives by hand: it publishes by pushing and moving `publishedRevision`. */
class TestFeed implements WatcherFeed {
  publishedRevision = 0;
  resets = 0;
  readonly closedWatchers: Watcher[] = [];
  closed(watcher: Watcher): void {
    this.closedWatchers.push(watcher);
  }
  reset(): void {
    this.resets++;
  }
}

const LIMITS: WatcherLimits = { queueLimit: 100, catchUpBatch: 10, bookmarkIntervalMs: 1000 };

let source: TestSource;
let feed: TestFeed;
let opened: Watcher[];

function open(options: Partial<WatchOptions> = {}, limits: Partial<WatcherLimits> = {}): Watcher {
  const watcher = new Watcher(source, watchOptions(source, options), { ...LIMITS, ...limits }, feed);
  opened.push(watcher);
  return watcher;
}

/** Commits a registration of `serviceType` and offers it to `watchers`, as the hub would route it. */
function commitAndPush(serviceType: string, ...watchers: Watcher[]): void {
  const change = source.register(serviceType);
  for (const w of watchers) w.pushChange(change);
  feed.publishedRevision = change.revision;
}

function probe(id: string, serviceType: string): ProbeEvent {
  return { instance: instance(id, serviceType, 1), passed: true, revision: source.revision };
}

beforeEach(() => {
  vi.useFakeTimers();
  source = new TestSource();
  feed = new TestFeed();
  opened = [];
});

afterEach(() => {
  for (const w of opened) w.end();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe("Watcher: snapshot and live", () => {
  it("delivers the snapshot at the source's revision, SYNCED, then live changes", () => {
    source.register("a");
    source.register("b");
    feed.publishedRevision = 2;
    const w = open();
    expect(drain(w)).toEqual(["snapshot@2:a1", "snapshot@2:b2", "synced@2"]);
    expect(w.resumeRevision).toBe(2);
    commitAndPush("a", w);
    expect(drain(w)).toEqual(["registered@3:a3"]);
    expect(w.resumeRevision).toBe(3);
  });

  it("snapshots only its own type", () => {
    source.register("a");
    source.register("b");
    const w = open({ serviceType: "b" });
    expect(drain(w)).toEqual(["snapshot@2:b2", "synced@2"]);
  });

  it("passes over a pushed change already in its snapshot", () => {
    source.register("a");
    const w = open();
    w.pushChange(source.history.after(0, 1)![0]!); // revision 1: already snapshotted
    expect(drain(w)).toEqual(["snapshot@1:a1", "synced@1"]);
  });

  it("takes changes it was never offered (other types) as passed over, from the feed's published revision", () => {
    const w = open({ serviceType: "a" });
    drain(w);
    commitAndPush("b"); // routed elsewhere
    commitAndPush("b");
    expect(w.resumeRevision).toBe(2);
    expect(drain(w)).toEqual([]);
  });
});

describe("Watcher: resume", () => {
  it("resumes from a revision in history with exactly the changes after it, then goes live", () => {
    for (const t of ["a", "b", "a", "b", "a"]) source.register(t);
    feed.publishedRevision = 5;
    const w = open({ sinceRevision: 2 });
    expect(w.isParked).toBe(true); // replays through catch-up
    expect(drain(w)).toEqual(["registered@3:a3", "registered@4:b4", "registered@5:a5"]);
    expect(w.isParked).toBe(false);
    expect(w.resumeRevision).toBe(5);
    commitAndPush("b", w);
    expect(drain(w)).toEqual(["registered@6:b6"]);
    expect(feed.resets).toBe(0);
  });

  it("replays only its own type from history, and its resume point passes the others", () => {
    for (const t of ["a", "b", "a", "b", "b"]) source.register(t);
    const w = open({ serviceType: "a", sinceRevision: 1 });
    expect(drain(w)).toEqual(["registered@3:a3"]);
    expect(w.resumeRevision).toBe(5);
  });

  it("replays in catch-up batches when more than one batch was missed", () => {
    for (let i = 0; i < 7; i++) source.register("a");
    const w = open({ sinceRevision: 1 }, { catchUpBatch: 3 });
    expect(drain(w)).toEqual([2, 3, 4, 5, 6, 7].map((r) => `registered@${r}:a${r}`));
    expect(w.isParked).toBe(false);
  });

  it("gets RESET and a fresh snapshot when resuming below the history floor", () => {
    source = new TestSource(3);
    for (let i = 0; i < 5; i++) source.register("a");
    expect(source.history.floor).toBe(2);
    const w = open({ sinceRevision: 1 });
    expect(drain(w)).toEqual([
      "reset@5",
      ...[1, 2, 3, 4, 5].map((r) => `snapshot@5:a${r}`),
      "synced@5",
    ]);
    expect(feed.resets).toBe(1);
    // At the floor itself every later change is still held: no RESET.
    const atFloor = open({ sinceRevision: 2 });
    expect(drain(atFloor)).toEqual(["registered@3:a3", "registered@4:a4", "registered@5:a5"]);
    expect(feed.resets).toBe(1);
  });

  it("gets RESET when resuming a revision of another epoch", () => {
    source.register("a");
    source.register("a");
    const w = open({ sinceRevision: 1, epoch: "epoch-0" });
    expect(drain(w)).toEqual(["reset@2", "snapshot@2:a1", "snapshot@2:a2", "synced@2"]);
    expect(feed.resets).toBe(1);
  });

  it("gets RESET when resuming a revision the source has not reached", () => {
    source.register("a");
    const w = open({ sinceRevision: 9 });
    expect(drain(w)).toEqual(["reset@1", "snapshot@1:a1", "synced@1"]);
    expect(feed.resets).toBe(1);
  });
});

describe("Watcher: queue limit", () => {
  it("parks when its queue is full, freezes its resume point, then catches up from history in order", () => {
    const w = open({}, { queueLimit: 2, catchUpBatch: 2 });
    expect(drain(w)).toEqual(["synced@0"]);
    commitAndPush("a", w);
    commitAndPush("a", w);
    expect(w.isParked).toBe(false);
    commitAndPush("a", w); // the third does not fit
    expect(w.isParked).toBe(true);
    expect(w.resumeRevision).toBe(2);
    commitAndPush("a", w); // ignored while parked
    w.pushProgress(9);
    expect(w.resumeRevision).toBe(2);
    expect(drain(w)).toEqual([1, 2, 3, 4].map((r) => `registered@${r}:a${r}`));
    expect(w.isParked).toBe(false);
    expect(w.resumeRevision).toBe(4);
    expect(feed.resets).toBe(0);
  });

  it("a parked watcher whose missed changes left the history gets RESET and a fresh snapshot", () => {
    source = new TestSource(3);
    const w = open({}, { queueLimit: 1 });
    drain(w);
    commitAndPush("a", w);
    commitAndPush("a", w); // parks at 1
    for (let i = 0; i < 4; i++) commitAndPush("a", w); // history now holds 4..6
    expect(w.isParked).toBe(true);
    expect(drain(w)).toEqual([
      "registered@1:a1",
      "reset@6",
      ...[1, 2, 3, 4, 5, 6].map((r) => `snapshot@6:a${r}`),
      "synced@6",
    ]);
    expect(feed.resets).toBe(1);
    expect(w.isParked).toBe(false);
  });

  it("drops probes that do not fit, without parking", () => {
    const w = open({ everyHealthCheck: true }, { queueLimit: 1 });
    drain(w);
    w.pushProbe(probe("a1", "a"));
    w.pushProbe(probe("a2", "a"));
    expect(w.isParked).toBe(false);
    expect(drain(w)).toEqual(["probe:a1:passed"]);
  });
});

describe("Watcher: bookmarks and progress", () => {
  it("delivers a BOOKMARK after an idle interval, with the current resume point", () => {
    vi.spyOn(Math, "random").mockReturnValue(0); // no jitter: exactly the interval
    const w = open({ serviceType: "a" });
    let wakes = 0;
    w.consume(() => wakes++);
    expect(drain(w)).toEqual(["synced@0"]);
    commitAndPush("b"); // another type's change moves the resume point
    vi.advanceTimersByTime(999);
    expect(wakes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(wakes).toBe(1);
    expect(drain(w)).toEqual(["bookmark@1"]);
    // The next one comes a whole interval later, carrying progress made meanwhile.
    w.pushProgress(7);
    vi.advanceTimersByTime(999);
    expect(wakes).toBe(1);
    vi.advanceTimersByTime(1);
    expect(drain(w)).toEqual(["bookmark@7"]);
  });

  it("sends no BOOKMARK to a watcher kept busy, and one a whole interval after it last went idle", () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const w = open({ serviceType: "a" });
    let wakes = 0;
    w.consume(() => wakes++);
    drain(w);
    // An event every 600 ms: never idle for a whole interval.
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(600);
      commitAndPush("a", w);
      expect(drain(w)).toEqual([`registered@${i + 1}:a${i + 1}`]);
    }
    const wakesWhileBusy = wakes;
    vi.advanceTimersByTime(999);
    expect(wakes).toBe(wakesWhileBusy);
    vi.advanceTimersByTime(1);
    expect(wakes).toBe(wakesWhileBusy + 1);
    expect(drain(w)).toEqual(["bookmark@5"]);
  });

  it("jitters the bookmark delay up to a tenth over the interval, never under it", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999);
    const w = open();
    let wakes = 0;
    w.consume(() => wakes++);
    drain(w);
    vi.advanceTimersByTime(1099);
    expect(wakes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(wakes).toBe(1);
    expect(drain(w)).toEqual(["bookmark@0"]);
  });

  it("sends no BOOKMARK to a consumer that is not waiting (held up by its transport)", () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const w = open();
    drain(w); // waiting: the timer runs
    commitAndPush("a", w);
    commitAndPush("a", w);
    expect(brief(w.poll()!)).toBe("registered@1:a1"); // took one, stopped polling
    vi.advanceTimersByTime(5000);
    expect(drain(w)).toEqual(["registered@2:a2"]);
  });

  it("progress moves a live watcher's resume point, never back", () => {
    const w = open();
    drain(w);
    w.pushProgress(10);
    expect(w.resumeRevision).toBe(10);
    w.pushProgress(4);
    expect(w.resumeRevision).toBe(10);
  });
});

describe("Watcher: ending", () => {
  it("end() finishes a pending iteration and tells the feed", async () => {
    const w = open();
    expect(await w.next()).toEqual({ done: false, value: { type: "synced", revision: 0 } });
    const pending = w.next();
    w.end();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(w.closed).toBe(true);
    expect(w.endError).toBeUndefined();
    expect(feed.closedWatchers).toEqual([w]);
    commitAndPush("a", w);
    expect(w.poll()).toBeUndefined();
  });

  it("end(error) rejects a pending and every later next() with the error", async () => {
    const w = open();
    await w.next();
    const pending = w.next();
    const error = new Error("shutting down");
    w.end(error);
    await expect(pending).rejects.toBe(error);
    await expect(w.next()).rejects.toBe(error);
    expect(w.endError).toBe(error);
  });

  it("leaving a for-await loop ends the watcher", async () => {
    source.register("a");
    const w = open();
    const seen: string[] = [];
    for await (const event of w) {
      seen.push(brief(event));
      break;
    }
    expect(seen).toEqual(["snapshot@1:a1"]);
    expect(w.closed).toBe(true);
    expect(feed.closedWatchers).toEqual([w]);
  });

  it("an ended watcher keeps the resume point it ended at", () => {
    const w = open({ serviceType: "a" });
    drain(w);
    commitAndPush("b");
    w.end();
    commitAndPush("b");
    expect(w.resumeRevision).toBe(1);
  });
});
