import type { Change } from "./types.js";

/** The per-type panic threshold (Envoy's panic threshold, Eureka's self-preservation). */
export interface PanicThreshold {
  /** A type with fewer than this percent of its instances healthy is in panic; 0 turns panic off. */
  readonly percent: number;
  /** Types with fewer instances than this are never in panic. */
  readonly minInstances: number;
}

/**
 * Whether a type with `healthy` of `total` instances (those not draining:
 * the ones that take new calls) is in panic.
 *
 * Below `minInstances` never: the seed's contract is that GetByType answers
 * healthy instances only, and for a type of one or two instances panic would
 * break it for good: a one-instance type whose instance died is 0 % healthy,
 * so it would be answered (dead) and, with expiry paused, never removed.
 */
export function inPanic(threshold: PanicThreshold, healthy: number, total: number): boolean {
  return threshold.percent > 0 && total >= threshold.minInstances && healthy * 100 < threshold.percent * total;
}

/**
 * Which service types are in panic, as committed changes move them in and
 * out: which changes left their type in panic (the watch stream flags those
 * events, from history too), and when each type last left panic (expiry
 * counts from there, see `ExpiryClock`). The index says whether a type is in
 * panic now; this remembers what that was after each change.
 *
 * @example
 * index.apply(change);
 * const moved = panics.afterChange(change, index.inPanic(type), Date.now()); // "entered" | "left" | undefined
 */
export class TypePanic {
  private readonly panicking = new Set<string>();
  private readonly leftAt = new Map<string, number>();
  /** Changes after which their type was in panic; entries die with the history that holds them. */
  private readonly flagged = new WeakSet<Change>();

  /** Records the type's panic state after `change` was applied, and answers whether it moved. */
  afterChange(change: Change, panic: boolean, now: number): "entered" | "left" | undefined {
    if (panic) this.flagged.add(change);
    return this.set(change.instance.serviceType, panic, now);
  }

  /**
   * Flags a change loaded from a store as leaving its type in panic: at
   * start-up, each type in panic gets its latest loaded change flagged, so a
   * client replaying history ends on the type's state now (its flag is what
   * the SDK keeps).
   */
  flagLoaded(change: Change): void {
    this.flagged.add(change);
  }

  /** Sets a type's state (after loading a store); answers whether it moved. */
  set(serviceType: string, panic: boolean, now: number): "entered" | "left" | undefined {
    if (panic === this.panicking.has(serviceType)) return undefined;
    if (panic) {
      this.panicking.add(serviceType);
      return "entered";
    }
    this.panicking.delete(serviceType);
    this.leftAt.set(serviceType, now);
    return "left";
  }

  /** The type has no instance left: nothing to remember for it. */
  forget(serviceType: string): void {
    this.panicking.delete(serviceType);
    this.leftAt.delete(serviceType);
  }

  /** True when `change` left its type in panic (of changes loaded at start, only each type's latest is known). */
  flaggedAfter(change: Change): boolean {
    return this.flagged.has(change);
  }

  /** The types in panic now: all of them for "", else that type's, if it is. */
  types(serviceType: string): ReadonlySet<string> {
    if (serviceType === "") return new Set(this.panicking);
    return this.panicking.has(serviceType) ? new Set([serviceType]) : EMPTY;
  }

  /** See `ExpiryClock`: undefined while the type is in panic, else when it last left panic (0: never). */
  expiryFrom(serviceType: string): number | undefined {
    return this.panicking.has(serviceType) ? undefined : (this.leftAt.get(serviceType) ?? 0);
  }
}

const EMPTY: ReadonlySet<string> = new Set();
