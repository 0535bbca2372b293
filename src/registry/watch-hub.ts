import type { Change, ProbeEvent } from "./types.js";
import { Watcher, type WatchOptions, type WatchSource, type WatcherLimits } from "./watcher.js";

/** Counters a metrics exporter can read. */
export interface WatchHubStats {
  readonly watchers: number;
  readonly parked: number;
  readonly resets: number;
}

/**
 * Fans committed changes and probe results out to every open watcher. A push
 * is O(1) per watcher and never waits for a consumer, so one slow watcher
 * cannot slow the registry or another watcher.
 */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private resets = 0;

  constructor(
    private readonly source: WatchSource,
    private readonly limits: WatcherLimits,
  ) {}

  /** Opens a watcher; end it with `watcher.end()` or by ending the iteration. */
  open(options: WatchOptions): Watcher {
    const watcher = new Watcher(
      this.source,
      options,
      this.limits,
      (w) => this.watchers.delete(w),
      () => this.resets++,
    );
    this.watchers.add(watcher);
    return watcher;
  }

  /** Publishes one committed batch of changes, in revision order. */
  publishChanges(changes: readonly Change[]): void {
    for (const change of changes) {
      const event = { type: "change", change } as const; // one event object for every watcher
      for (const watcher of this.watchers) watcher.pushChange(change, event);
    }
  }

  /** Every change up to `revision` has been published: watchers' resume points (and BOOKMARKs) move on to it. */
  publishProgress(revision: number): void {
    for (const watcher of this.watchers) watcher.pushProgress(revision);
  }

  publishProbe(probe: ProbeEvent): void {
    for (const watcher of this.watchers) watcher.pushProbe(probe);
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
}
