import type { Change, ProbeEvent } from "./types.js";
import { WatcherGroup } from "./watcher-group.js";
import { Watcher, type WatcherFeed, type WatchOptions, type WatchSource, type WatcherLimits } from "./watcher.js";

/** Counters a metrics exporter can read. */
export interface WatchHubStats {
  readonly watchers: number;
  readonly parked: number;
  readonly resets: number;
}

/**
 * Fans committed changes and probe results out to the watchers they concern:
 * a change of one service type reaches that type's watchers and the
 * every-type ones whose selector (if any) its instance matches, never the
 * others. A push is O(1) per watcher and never waits for a consumer, so one
 * slow watcher cannot slow the registry or another watcher.
 */
export class WatchHub {
  /** Every open watcher: progress, shutdown and stats reach them all. */
  private readonly watchers = new Set<Watcher>();
  private readonly changeGroup = new WatcherGroup();
  /** Only the watchers asking for every health check: most never want a probe. */
  private readonly probeGroup = new WatcherGroup();
  private resets = 0;
  /** Each type's panic after the last change published of it (absent: not in panic, or not seen yet). */
  private readonly panicking = new Set<string>();
  private published: number;
  private readonly feed: WatcherFeed;

  constructor(
    private readonly source: WatchSource,
    private readonly limits: WatcherLimits,
  ) {
    // Everything up to the revision the source opened at is in its snapshot or history, not to be published.
    this.published = source.revision;
    // Types loaded in panic: their first change out of it is a move, to be signalled too.
    for (const type of source.panicTypes?.("") ?? []) this.panicking.add(type);
    const hub = this;
    this.feed = {
      get publishedRevision() {
        return hub.published;
      },
      closed: (watcher) => this.forget(watcher),
      reset: () => this.resets++,
    };
  }

  /** Opens a watcher; end it with `watcher.end()` or by ending the iteration. */
  open(options: WatchOptions): Watcher {
    const watcher = new Watcher(this.source, options, this.limits, this.feed);
    this.watchers.add(watcher);
    this.changeGroup.add(watcher);
    if (options.everyHealthCheck) this.probeGroup.add(watcher);
    return watcher;
  }

  /**
   * Publishes a batch of committed changes, in revision order, once the
   * source's history holds them. Each reaches the watchers of its service
   * type and the every-type watchers, those with a selector only if its
   * instance matches; the others take the batch's revisions as passed over.
   *
   * @example hub.publishChanges(committed) // once per committed batch
   */
  publishChanges(changes: readonly Change[]): void {
    for (const change of changes) {
      // One event object for every watcher; its flag as catch-up from history gives it too.
      const event = { type: "change", change, panic: this.source.panicAfter?.(change) ?? false } as const;
      this.changeGroup.forEachConcerned(change.instance, (watcher) => watcher.pushChange(change, event));
      // After the push, not before: a watcher parked by this change resumes from just below it.
      if (change.revision > this.published) this.published = change.revision;
      const type = change.instance.serviceType;
      if (event.panic !== this.panicking.has(type)) {
        if (event.panic) this.panicking.add(type);
        else this.panicking.delete(type);
        // Watchers of a subset of the type may not have had this change: tell them the type's panic moved.
        this.changeGroup.forEachSelectiveOfType(type, (watcher) => watcher.pushPanicMoved());
      }
    }
  }


  /** Every change up to `revision` has been published: watchers' resume points (and BOOKMARKs) move on to it. */
  publishProgress(revision: number): void {
    if (revision > this.published) this.published = revision;
    for (const watcher of this.watchers) watcher.pushProgress(revision);
  }

  /** Offers a probe result to the watchers of its type (and of every type) that ask for every health check and whose selector it matches. */
  publishProbe(probe: ProbeEvent): void {
    this.probeGroup.forEachConcerned(probe.instance, (watcher) => watcher.pushProbe(probe));
  }

  /** Ends every watcher, with `error` if given (as at shutdown). */
  endAll(error?: Error): void {
    for (const watcher of [...this.watchers]) watcher.end(error);
  }

  stats(): WatchHubStats {
    let parked = 0;
    for (const watcher of this.watchers) if (watcher.isParked) parked++;
    return { watchers: this.watchers.size, parked, resets: this.resets };
  }

  private forget(watcher: Watcher): void {
    this.watchers.delete(watcher);
    this.changeGroup.delete(watcher);
    this.probeGroup.delete(watcher);
  }
}
