import type { EventHistory } from "./event-history.js";
import { RegistryError } from "./registry-error.js";
import { matchesSelector } from "./selector.js";
import type { Change, Instance, ProbeEvent, Selector, WatchEvent } from "./types.js";

/** What a watcher asks for. */
export interface WatchOptions {
  /** Only this service type; empty for all. */
  readonly serviceType: string;
  /** 0 for a snapshot first; otherwise resume after this revision. */
  readonly sinceRevision: number;
  /** The epoch `sinceRevision` belongs to. */
  readonly epoch: string;
  /** Also deliver every probe result, not only health transitions. */
  readonly everyHealthCheck: boolean;
  /**
   * Only instances whose metadata matches (checked: see `validSelector`);
   * absent or empty for every instance. Their snapshot, changes and probes
   * alone are delivered; the resume point still moves past the others.
   */
  readonly selector?: Selector | undefined;
}

/** The registry state a watcher reads from. */
export interface WatchSource {
  readonly epoch: string;
  /** Latest applied revision. */
  readonly revision: number;
  readonly history: EventHistory;
  /** Current instances of a type (all for ""). */
  snapshot(serviceType: string): readonly Instance[];
  /** True when `change` left its type in panic: the event's `panic` flag. Absent: never. */
  panicAfter?(change: Change): boolean;
  /** The types in panic now, of `serviceType` (all for ""). Absent: none. */
  panicTypes?(serviceType: string): ReadonlySet<string>;
}

/** Tunables of a watcher, set by the hub. */
export interface WatcherLimits {
  /** Live events buffered before the watcher is parked and catches up from history. */
  readonly queueLimit: number;
  /** Changes read from history per catch-up step. */
  readonly catchUpBatch: number;
  /** Idle time before a BOOKMARK is delivered. */
  readonly bookmarkIntervalMs: number;
}

/**
 * The hub a watcher is fed by: it offers a watcher only the changes (and, to
 * watchers of every health check, the probes) of the watcher's type and
 * selector, and tells it how far it has published so a watcher can take its
 * resume point past the changes it was never offered.
 */
export interface WatcherFeed {
  /** Revision up to which every change has been offered to the watchers it concerns. */
  readonly publishedRevision: number;
  /** The watcher ended: stop feeding it. */
  closed(watcher: Watcher): void;
  /** The watcher was told RESET (counted for metrics). */
  reset(): void;
}

/**
 * One subscriber's view of the change stream, consumed either synchronously
 * (`consume` + `poll`: the gRPC handler writes each event from inside the
 * publish, as a bare server stream would) or as an async iterator.
 *
 * Live changes are pushed into a bounded queue without ever blocking the
 * publisher. When the queue is full the watcher is parked: it stops taking
 * pushes and, once its consumer has drained the queue, reads what it missed
 * from the shared history in batches, going live again when it has caught up.
 * If what it missed has left the history window it gets RESET and a fresh
 * snapshot. `resumeRevision` is always the revision up to which every change
 * has been queued or passed over. A live watcher is offered only changes of
 * its own type (and selector), so it counts the others as passed over by
 * reading how far its feed has published, rather than being told of each.
 */
export class Watcher implements AsyncIterableIterator<WatchEvent> {
  private readonly queue: WatchEvent[] = [];
  private queueHead = 0;
  private snapshotItems: readonly Instance[] | undefined;
  /** The types in panic when the snapshot was taken. */
  private snapshotPanic: ReadonlySet<string> | undefined;
  private snapshotCursor = 0;
  private snapshotRevision = 0;
  /** Set when a RESET is due before the next snapshot. */
  private resetRevision: number | undefined;
  private position = 0;
  private parked = false;
  private ended: { error?: Error } | undefined;
  /** Told whenever `poll()` may have something new: set by `consume()`, or by a pending `next()`. */
  private wake: (() => void) | undefined;
  /** True from a `poll()` that found nothing until the next one that finds something. */
  private waiting = false;
  /** The consumer has waited a whole bookmark interval: its next `poll()` answers a BOOKMARK. */
  private bookmarkDue = false;
  /** One timer per watcher, re-armed at each idle wait rather than created anew per event. */
  private bookmarkTimer: NodeJS.Timeout | undefined;
  /** When the consumer last started waiting for work (epoch ms). */
  private idleSince = 0;
  /**
   * This watcher's idle time before a BOOKMARK: the interval plus up to a
   * tenth more, drawn once. Watchers opened together (every router
   * reconnecting to a restarted replica) would otherwise all come due
   * together, interval after interval. Never less than the interval, so a
   * client's idle timeout set from it still holds.
   */
  private readonly bookmarkDelayMs: number;
  /**
   * The selector, if it selects anything less than every instance: the feed
   * routes by it. A frozen copy, so a caller changing its object later cannot
   * move the watcher within the feed's index.
   */
  readonly selector: Selector | undefined;

  constructor(
    private readonly source: WatchSource,
    readonly options: WatchOptions,
    private readonly limits: WatcherLimits,
    private readonly feed: WatcherFeed,
  ) {
    this.bookmarkDelayMs = Math.round(limits.bookmarkIntervalMs * (1 + Math.random() / 10));
    const selector = options.selector;
    this.selector = selector !== undefined && Object.keys(selector).length > 0 ? Object.freeze({ ...selector }) : undefined;
    const { sinceRevision, epoch } = options;
    if (sinceRevision === 0) {
      this.startSnapshot();
    } else if (epoch !== source.epoch || sinceRevision > source.revision || !source.history.covers(sinceRevision)) {
      this.resync();
    } else {
      this.position = sinceRevision;
      this.parked = true; // replay from history through the catch-up path
    }
  }

  /** True while the watcher is catching up from history instead of taking pushes. */
  get isParked(): boolean {
    return this.parked;
  }

  /** Revision up to which this watcher has seen everything it asked for. */
  get resumeRevision(): number {
    // Live, it has been offered every change of its type published so far and
    // passes over the rest; parked or ended, it has stopped taking changes.
    if (this.parked || this.ended) return this.position;
    return Math.max(this.position, this.feed.publishedRevision);
  }

  /** True once the watcher has ended; `poll()` then answers nothing and `endError` says why. */
  get closed(): boolean {
    return this.ended !== undefined;
  }

  /** The error the watcher ended with, if it ended with one. */
  get endError(): Error | undefined {
    return this.ended?.error;
  }

  /**
   * Consumes synchronously: `wake` is called, from inside whatever call made
   * it so (a publish, the bookmark timer, `end`), whenever `poll()` may have
   * something new. The consumer then polls until `poll()` answers undefined,
   * or until its own transport is full (it polls again once that drains: the
   * watcher parks meanwhile if its queue fills). `wake` must not throw.
   */
  consume(wake: () => void): void {
    this.wake = wake;
  }

  /**
   * The next event, or undefined when there is none yet (or the watcher has
   * ended: see `closed`). Finding nothing starts the idle wait after which a
   * BOOKMARK is due.
   */
  poll(): WatchEvent | undefined {
    if (this.ended) return undefined;
    const event = this.take() ?? this.takeBookmark();
    if (event) {
      this.waiting = false;
      return event;
    }
    this.waitForWork();
    return undefined;
  }

  /**
   * Offers a committed change of this watcher's type (or of any type, for an
   * every-type watcher) and selector: the feed routes by both, so this does
   * not filter.
   * Never blocks. `event` lets a publisher share one event object among
   * watchers. A change at or below the resume point (already in the snapshot
   * or read from history) is passed over.
   */
  pushChange(change: Change, event: WatchEvent = { type: "change", change }): void {
    if (this.ended || this.parked || change.revision <= this.position) return;
    if (this.queuedCount() >= this.limits.queueLimit) {
      // Freeze the resume point where the feed stood before this change: catch-up starts there.
      this.position = this.resumeRevision;
      this.parked = true;
      return;
    }
    this.enqueue(event);
    this.position = change.revision;
  }

  /**
   * The registry reached `revision` with no change after the last one pushed:
   * a live watcher has seen everything up to it. A parked one takes the
   * registry's revision when it catches up.
   */
  pushProgress(revision: number): void {
    if (this.ended || this.parked) return;
    if (revision > this.position) this.position = revision;
  }

  /**
   * Offers a probe result of this watcher's type and selector; the feed
   * offers probes only to watchers asking for every health check. Dropped
   * when the watcher is behind: probes are not changes and are never replayed.
   */
  pushProbe(probe: ProbeEvent): void {
    if (this.ended || this.parked || this.queuedCount() >= this.limits.queueLimit) return;
    this.enqueue({ type: "probe", probe });
  }

  /** Ends the stream; a pending or later `next()` rejects with `error`, if given. */
  end(error?: Error): void {
    if (this.ended) return;
    this.position = this.resumeRevision;
    this.ended = error ? { error } : {};
    clearTimeout(this.bookmarkTimer);
    this.bookmarkTimer = undefined;
    this.queue.length = 0;
    this.snapshotItems = this.snapshotPanic = undefined;
    this.feed.closed(this);
    this.notify();
  }

  async next(): Promise<IteratorResult<WatchEvent>> {
    for (;;) {
      if (this.ended) {
        if (this.ended.error) throw this.ended.error;
        return { done: true, value: undefined };
      }
      const event = this.poll();
      if (event) return { done: false, value: event };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<WatchEvent>> {
    this.end();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private take(): WatchEvent | undefined {
    if (this.resetRevision !== undefined) {
      const revision = this.resetRevision;
      this.resetRevision = undefined;
      return { type: "reset", revision };
    }
    if (this.snapshotItems) {
      const instance = this.snapshotItems[this.snapshotCursor++];
      if (instance) return { type: "snapshot", instance, revision: this.snapshotRevision, panic: this.snapshotPanic?.has(instance.serviceType) ?? false };
      this.snapshotItems = undefined;
      return { type: "synced", revision: this.snapshotRevision };
    }
    if (this.queueHead < this.queue.length) {
      const event = this.queue[this.queueHead] as WatchEvent;
      this.queue[this.queueHead++] = undefined as unknown as WatchEvent;
      if (this.queueHead === this.queue.length) this.queue.length = this.queueHead = 0;
      // A consumer that stays a little behind never empties the queue: drop
      // the consumed prefix now and then so the array stays near queueLimit.
      else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      return event;
    }
    if (this.parked) {
      this.catchUp();
      return this.take();
    }
    return undefined;
  }

  /** Reads the next batch of missed changes from history (or resyncs). */
  private catchUp(): void {
    const batch = this.source.history.after(this.position, this.limits.catchUpBatch);
    if (!batch) {
      this.resync();
      return;
    }
    for (const change of batch) {
      if (this.matches(change.instance)) this.enqueue({ type: "change", change, panic: this.source.panicAfter?.(change) ?? false });
      this.position = change.revision;
    }
    if (batch.length < this.limits.catchUpBatch) {
      this.position = Math.max(this.position, this.source.revision);
      this.parked = false;
    }
  }

  private resync(): void {
    this.queue.length = this.queueHead = 0;
    this.resetRevision = this.source.revision;
    this.feed.reset();
    this.startSnapshot();
  }

  private startSnapshot(): void {
    const items = this.source.snapshot(this.options.serviceType);
    const selector = this.selector;
    this.snapshotItems = selector === undefined ? items : items.filter((i) => matchesSelector(i, selector));
    this.snapshotPanic = this.source.panicTypes?.(this.options.serviceType);
    this.snapshotCursor = 0;
    this.snapshotRevision = this.position = this.source.revision;
    this.parked = false;
    this.notify();
  }

  /**
   * Starts (or restarts) the idle wait: a bookmark comes due if nothing is
   * taken for a whole interval. The timer is not re-armed at every wait (a
   * busy watcher waits once per event): it fires once an interval and, if
   * the consumer has not been idle that long, waits out what is left.
   */
  private waitForWork(): void {
    this.waiting = true;
    this.idleSince = Date.now();
    if (!this.bookmarkTimer) this.armBookmarkTimer(this.bookmarkDelayMs);
  }

  private armBookmarkTimer(ms: number): void {
    this.bookmarkTimer = setTimeout(this.onBookmarkTimer, ms);
    this.bookmarkTimer.unref();
  }

  /**
   * The bookmark timer fired: a bookmark is due only if the consumer has been
   * waiting all along for a whole interval (a consumer held up by its
   * transport is not waiting; its next wait arms the timer again).
   */
  private readonly onBookmarkTimer = (): void => {
    this.bookmarkTimer = undefined;
    if (!this.waiting || this.ended) return;
    const left = this.idleSince + this.bookmarkDelayMs - Date.now();
    if (left > 0) {
      this.armBookmarkTimer(left);
      return;
    }
    this.bookmarkDue = true;
    this.notify();
  };

  private takeBookmark(): WatchEvent | undefined {
    if (!this.bookmarkDue) return undefined;
    this.bookmarkDue = false;
    const type = this.options.serviceType;
    if (type === "") return { type: "bookmark", revision: this.resumeRevision };
    return { type: "bookmark", revision: this.resumeRevision, panic: this.source.panicTypes?.(type).has(type) ?? false };
  }

  /**
   * Its type's panic state moved with a change its selector left out: a
   * BOOKMARK (which carries the type's panic) is sent as soon as the
   * consumer has taken what is queued, so a router of a subset of the type
   * routes as GetByType answers.
   */
  pushPanicMoved(): void {
    if (this.ended) return;
    this.bookmarkDue = true;
    this.notify();
  }

  private enqueue(event: WatchEvent): void {
    this.queue.push(event);
    this.notify();
  }

  private notify(): void {
    this.wake?.();
  }

  private queuedCount(): number {
    return this.queue.length - this.queueHead;
  }

  /** History holds every type: catch-up filters what the feed would have routed. */
  private matches(instance: Instance): boolean {
    const type = this.options.serviceType;
    if (type !== "" && type !== instance.serviceType) return false;
    return this.selector === undefined || matchesSelector(instance, this.selector);
  }
}

/** The error ending every stream when the registry shuts down. */
export function shuttingDown(): RegistryError {
  return new RegistryError("unavailable", "registry is shutting down; reconnect to another replica or retry");
}

/** The revision a client holding every event sent so far should resume from (gRPC's since_revision, SSE's last event id). */
export function resumePoint(event: WatchEvent, previous: number): number {
  switch (event.type) {
    case "change":
      return event.change.revision;
    case "reset":
      return 0; // the old resume point is void; a fresh snapshot is needed
    case "snapshot":
    case "probe":
      return previous; // a snapshot is a resume point only once SYNCED arrives
    default:
      return event.revision;
  }
}
