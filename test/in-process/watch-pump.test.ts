import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WatchPump, type WatchSink } from "../../src/api/watch-pump.js";
import { RegistryError } from "../../src/registry/registry-error.js";
import type { WatchEvent } from "../../src/registry/types.js";
import { Watcher, type WatcherFeed } from "../../src/registry/watcher.js";
import { brief, TestSource, watchOptions } from "./watch-source.js";

/** A transport stream with a buffer of `room` events, drained by the test. */
class TestSink implements WatchSink {
  readonly written: string[] = [];
  ended: { error: unknown } | undefined;
  gone = false;
  throwOn: string | undefined;
  private resume: (() => void) | undefined;

  constructor(private room: number) {}

  write(event: WatchEvent): boolean {
    if (this.throwOn !== undefined && brief(event).startsWith(this.throwOn)) throw new Error("cannot encode");
    this.written.push(brief(event));
    return --this.room > 0;
  }
  whenDrained(resume: () => void): void {
    this.resume = resume;
  }
  end(error?: unknown): void {
    if (this.ended) throw new Error("ended twice");
    this.ended = { error };
  }
  /** The client read everything: room for `room` more. */
  drain(room: number): void {
    this.room = room;
    const resume = this.resume;
    this.resume = undefined;
    resume?.();
  }
}

const feed: WatcherFeed = { publishedRevision: 0, closed: () => {}, reset: () => {} };
const LIMITS = { queueLimit: 100, catchUpBatch: 10, bookmarkIntervalMs: 60_000 };
let source: TestSource;
let watcher: Watcher;

function publish(serviceType = "api"): void {
  const change = source.register(serviceType);
  watcher.pushChange(change);
  (feed as { publishedRevision: number }).publishedRevision = change.revision;
}

beforeEach(() => {
  vi.useFakeTimers();
  source = new TestSource();
  source.register("api", "a1");
  watcher = new Watcher(source, watchOptions(source), LIMITS, feed);
});
afterEach(() => {
  watcher.end();
  vi.useRealTimers();
});

describe("WatchPump", () => {
  it("writes what the watcher has, stops on a full buffer and goes on once it drains", () => {
    const sink = new TestSink(2);
    const pump = new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, 0);
    pump.start();
    expect(sink.written).toEqual(["snapshot@1:a1", "synced@1"]);
    expect(pump.blocked).toBe(true);
    publish();
    expect(sink.written).toHaveLength(2);
    sink.drain(10);
    expect(sink.written).toEqual(["snapshot@1:a1", "synced@1", "registered@2:api2"]);
    expect(pump.blocked).toBe(false);
    expect(pump.resumeRevision).toBe(2);
    publish();
    expect(sink.written.at(-1)).toBe("registered@3:api3");
    expect(sink.ended).toBeUndefined();
  });

  it("ends a stream that takes nothing for the stall timeout with RESOURCE_EXHAUSTED naming where to resume", () => {
    const sink = new TestSink(2);
    const pump = new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "sinceRevision" }, 0);
    pump.start();
    vi.advanceTimersByTime(999);
    expect(sink.ended).toBeUndefined();
    vi.advanceTimersByTime(1);
    const error = sink.ended?.error as RegistryError;
    expect(error).toBeInstanceOf(RegistryError);
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toBe("watch stream accepted nothing for 1000 ms; resume with sinceRevision=1");
    // Still blocked while its owner ends the stream: a status would queue behind what the client does not read.
    expect(pump.blocked).toBe(true);
    expect(watcher.closed).toBe(true);
    sink.drain(10);
    expect(sink.written).toHaveLength(2);
  });

  it("ends the stream with the watcher's error when the watcher ends, even while it waits for the drain", () => {
    const sink = new TestSink(1);
    new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, 0).start();
    const error = new RegistryError("unavailable", "registry is shutting down");
    watcher.end(error);
    expect(sink.ended).toEqual({ error });
    vi.advanceTimersByTime(5000); // no stall end after it
  });

  it("ends the stream with no error when the watcher ends cleanly, and writes nothing once the client has gone", () => {
    const sink = new TestSink(10);
    new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, 0).start();
    sink.gone = true;
    publish();
    expect(sink.written).toEqual(["snapshot@1:a1", "synced@1"]);
    expect(sink.ended).toEqual({ error: undefined });
    expect(watcher.closed).toBe(true);
  });

  it("ends only its own stream when a write throws, and the publish goes on", () => {
    const sink = new TestSink(10);
    new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, 0).start();
    const other = new Watcher(source, watchOptions(source, { sinceRevision: source.revision }), LIMITS, feed);
    const otherSink = new TestSink(10);
    new WatchPump(other, otherSink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, source.revision).start();
    sink.throwOn = "registered";
    const change = source.register("api");
    watcher.pushChange(change);
    other.pushChange(change);
    expect((sink.ended?.error as Error).message).toBe("cannot encode");
    expect(otherSink.written).toEqual(["registered@2:api2"]);
    other.end();
  });

  it("stop() ends the watcher and writes nothing more; the stream is its owner's to end", () => {
    const sink = new TestSink(10);
    const pump = new WatchPump(watcher, sink, { stallTimeoutMs: 1000, resumeParameter: "since_revision" }, 0);
    pump.start();
    pump.stop();
    publish();
    expect(sink.written).toEqual(["snapshot@1:a1", "synced@1"]);
    expect(watcher.closed).toBe(true);
    expect(sink.ended).toBeUndefined();
  });
});
