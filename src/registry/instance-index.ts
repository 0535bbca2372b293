import type { Change, ServiceSummary, StoredInstance } from "./types.js";

/**
 * The in-memory view of the live instances, by id and by service type. It is
 * changed only by applying committed changes, so it always equals the store
 * at the last applied revision.
 */
export class InstanceIndex {
  private readonly byId = new Map<string, StoredInstance>();
  private readonly byType = new Map<string, Map<string, StoredInstance>>();

  /** Adds, replaces or removes the instance a committed change names. */
  apply(change: Change): void {
    if (change.kind === "removed") this.delete(change.instance.id);
    else this.put(change.instance);
  }

  /** Loads an instance from a stored state. */
  put(instance: StoredInstance): void {
    this.byId.set(instance.id, instance);
    let ofType = this.byType.get(instance.serviceType);
    if (!ofType) this.byType.set(instance.serviceType, (ofType = new Map()));
    ofType.set(instance.id, instance);
  }

  get(id: string): StoredInstance | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Instances of one type (or all, for an empty type), in registration order. */
  list(serviceType: string): StoredInstance[] {
    if (serviceType === "") return [...this.byId.values()];
    const ofType = this.byType.get(serviceType);
    return ofType ? [...ofType.values()] : [];
  }

  /** Counts per service type, sorted by type. */
  summaries(): ServiceSummary[] {
    const summaries: ServiceSummary[] = [];
    for (const [serviceType, ofType] of this.byType) {
      let healthyCount = 0;
      for (const instance of ofType.values()) if (instance.health === "healthy") healthyCount++;
      summaries.push({ serviceType, healthyCount, totalCount: ofType.size });
    }
    return summaries.sort((a, b) => (a.serviceType < b.serviceType ? -1 : 1));
  }

  private delete(id: string): void {
    const instance = this.byId.get(id);
    if (!instance) return;
    this.byId.delete(id);
    const ofType = this.byType.get(instance.serviceType);
    ofType?.delete(id);
    if (ofType?.size === 0) this.byType.delete(instance.serviceType);
  }
}
