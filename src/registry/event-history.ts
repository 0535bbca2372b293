import type { Change } from "./types.js";

/**
 * The bounded window of recent changes that watchers resume from. Revisions
 * rise but need not be contiguous (a shared store's revisions count other keys
 * too), so lookups search by revision rather than by offset.
 */
export class EventHistory {
  /** Ring buffer; `start` is the oldest entry. */
  private readonly ring: (Change | undefined)[];
  private start = 0;
  private length = 0;
  /** Every change after this revision is held. */
  private floorRevision: number;

  constructor(
    readonly capacity: number,
    initial: { readonly changes: readonly Change[]; readonly floor: number },
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("history capacity must be >= 1");
    this.ring = new Array(capacity);
    this.floorRevision = initial.floor;
    for (const change of initial.changes) this.append(change);
  }

  /** The lowest revision a watcher can resume from. */
  get floor(): number {
    return this.floorRevision;
  }

  /** Appends a committed change, evicting the oldest when full. */
  append(change: Change): void {
    if (this.length === this.capacity) {
      const evicted = this.ring[this.start];
      this.ring[this.start] = undefined;
      this.start = (this.start + 1) % this.capacity;
      this.length--;
      if (evicted) this.floorRevision = evicted.revision;
    }
    this.ring[(this.start + this.length) % this.capacity] = change;
    this.length++;
  }

  /** True when every change after `revision` is still held. */
  covers(revision: number): boolean {
    return revision >= this.floorRevision;
  }

  /**
   * Up to `limit` changes with a revision above `after`, oldest first, or
   * `undefined` when some of them have left the window.
   */
  after(after: number, limit: number): Change[] | undefined {
    if (!this.covers(after)) return undefined;
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).revision <= after) lo = mid + 1;
      else hi = mid;
    }
    const out: Change[] = [];
    for (let i = lo; i < this.length && out.length < limit; i++) out.push(this.at(i));
    return out;
  }

  private at(offset: number): Change {
    return this.ring[(this.start + offset) % this.capacity] as Change;
  }
}
