import type { Watcher } from "./watcher.js";

/**
 * Watchers grouped by the service type they watch, the every-type watchers
 * (serviceType "") in a group of their own. A change of one type is then
 * offered only to the watchers it concerns, instead of to every watcher for
 * each to filter: with many routers each watching its own type, the cost of a
 * change follows that type's watchers, not the registry's. This is etcd's
 * `watcher_group.go` idea (single-key watchers apart from range watchers).
 */
export class WatcherGroup {
  private readonly byType = new Map<string, Set<Watcher>>();

  add(watcher: Watcher): void {
    const type = watcher.options.serviceType;
    let set = this.byType.get(type);
    if (!set) this.byType.set(type, (set = new Set()));
    set.add(watcher);
  }

  delete(watcher: Watcher): void {
    const type = watcher.options.serviceType;
    const set = this.byType.get(type);
    if (!set?.delete(watcher)) return;
    // Types come and go (one per deployed service): forget a type nobody watches.
    if (set.size === 0) this.byType.delete(type);
  }

  /**
   * Calls `visit` for each watcher of `serviceType`, then each every-type
   * watcher. A watcher removed during the walk (one ended from its consumer's
   * wake-up) is not visited after its removal.
   */
  forEachConcerned(serviceType: string, visit: (watcher: Watcher) => void): void {
    const typed = this.byType.get(serviceType);
    if (typed) for (const watcher of typed) visit(watcher);
    if (serviceType === "") return; // the every-type group was that one
    const everyType = this.byType.get("");
    if (everyType) for (const watcher of everyType) visit(watcher);
  }
}
