import { matchesSelector } from "./selector.js";
import type { Instance } from "./types.js";
import type { Watcher } from "./watcher.js";

/** Watchers with a selector, of one service type: by the selector's index key, then by its value there. */
type SelectiveWatchers = Map<string, Map<string, Set<Watcher>>>;

/**
 * Watchers grouped by the service type they watch, the every-type watchers
 * (serviceType "") in a group of their own. A change of one type is then
 * offered only to the watchers it concerns, instead of to every watcher for
 * each to filter: with many routers each watching its own type, the cost of a
 * change follows that type's watchers, not the registry's. This is etcd's
 * `watcher_group.go` idea (single-key watchers apart from range watchers).
 *
 * Watchers with a metadata selector are kept apart, so a change costs the
 * watchers without one nothing more. They are indexed by one entry of their
 * selector (its first key in sorted order, and that key's value): a change
 * reaches only the watchers whose indexed entry its instance's metadata has,
 * and is offered to those whose whole selector it matches. Routers of one
 * type split by zone then cost a change only its own zone's watchers. An
 * instance's metadata never changes, so whether a watcher wants an
 * instance's changes is settled at its registration.
 */
export class WatcherGroup {
  private readonly byType = new Map<string, Set<Watcher>>();
  private readonly selectiveByType = new Map<string, SelectiveWatchers>();

  add(watcher: Watcher): void {
    const type = watcher.options.serviceType;
    const selector = watcher.selector;
    if (selector === undefined) {
      let set = this.byType.get(type);
      if (!set) this.byType.set(type, (set = new Set()));
      set.add(watcher);
      return;
    }
    const key = indexKey(selector);
    let byKey = this.selectiveByType.get(type);
    if (!byKey) this.selectiveByType.set(type, (byKey = new Map()));
    let byValue = byKey.get(key);
    if (!byValue) byKey.set(key, (byValue = new Map()));
    const value = selector[key] as string;
    let set = byValue.get(value);
    if (!set) byValue.set(value, (set = new Set()));
    set.add(watcher);
  }

  delete(watcher: Watcher): void {
    const type = watcher.options.serviceType;
    const selector = watcher.selector;
    if (selector === undefined) {
      const set = this.byType.get(type);
      if (!set?.delete(watcher)) return;
      // Types come and go (one per deployed service): forget a type nobody watches.
      if (set.size === 0) this.byType.delete(type);
      return;
    }
    const key = indexKey(selector);
    const value = selector[key] as string;
    const byKey = this.selectiveByType.get(type);
    const byValue = byKey?.get(key);
    const set = byValue?.get(value);
    if (!byKey || !byValue || !set?.delete(watcher)) return;
    // Selectors are the callers' choice: keep no empty entry behind for one no longer used.
    if (set.size > 0) return;
    byValue.delete(value);
    if (byValue.size > 0) return;
    byKey.delete(key);
    if (byKey.size === 0) this.selectiveByType.delete(type);
  }

  /**
   * Calls `visit` for each watcher of `instance`'s type, then each every-type
   * watcher, leaving out the watchers whose selector `instance` does not
   * match. A watcher removed during the walk (one ended from its consumer's
   * wake-up) is not visited after its removal.
   */
  forEachConcerned(instance: Instance, visit: (watcher: Watcher) => void): void {
    const serviceType = instance.serviceType;
    const typed = this.byType.get(serviceType);
    if (typed) for (const watcher of typed) visit(watcher);
    if (this.selectiveByType.size !== 0) visitSelective(this.selectiveByType.get(serviceType), instance, visit);
    if (serviceType === "") return; // the every-type group was that one
    const everyType = this.byType.get("");
    if (everyType) for (const watcher of everyType) visit(watcher);
    if (this.selectiveByType.size !== 0) visitSelective(this.selectiveByType.get(""), instance, visit);
  }

  /** Calls `visit` for each watcher of `serviceType` that has a selector. */
  forEachSelectiveOfType(serviceType: string, visit: (watcher: Watcher) => void): void {
    const byKey = this.selectiveByType.get(serviceType);
    if (!byKey) return;
    for (const byValue of byKey.values()) for (const set of byValue.values()) for (const watcher of [...set]) visit(watcher);
  }
}

/** Visits the watchers in `byKey` whose whole selector `instance` matches. */
function visitSelective(byKey: SelectiveWatchers | undefined, instance: Instance, visit: (watcher: Watcher) => void): void {
  if (!byKey) return;
  const metadata = instance.metadata;
  for (const [key, byValue] of byKey) {
    if (!Object.hasOwn(metadata, key)) continue;
    const set = byValue.get(metadata[key] as string);
    if (!set) continue;
    for (const watcher of set) if (matchesSelector(instance, watcher.selector)) visit(watcher);
  }
}

/** The selector entry a watcher is indexed by: any fixed choice works; the first key sorted is stable across equal selectors. */
function indexKey(selector: Readonly<Record<string, string>>): string {
  let first: string | undefined;
  for (const key in selector) if (first === undefined || key < first) first = key;
  return first as string;
}
