import { canonicalHost } from "./instance-address.js";
import { inPanic, type PanicThreshold } from "./type-panic.js";
import type { Change, ServiceSummary, StoredInstance } from "./types.js";

/** One service type's instances, with its lists built once per change of the type. */
interface TypeEntry {
  /** The type's name as its first instance brought it, shared by the instances after it (see `sharedType`). */
  readonly serviceType: string;
  readonly members: Map<string, StoredInstance>;
  /**
   * The type's instances by canonical host: the instance itself while a host
   * has one (the common case, no array), else all of them (several ports).
   * Keyed by the instance's own host string when it is canonical.
   */
  readonly byHost: Map<string, StoredInstance | StoredInstance[]>;
  all: readonly StoredInstance[] | undefined;
  /** Healthy and not draining: what GetByType answers by default. */
  serving: readonly StoredInstance[] | undefined;
  /** Not draining, whatever their health: what GetByType answers for a type in panic. */
  undrained: readonly StoredInstance[] | undefined;
  /** Counts kept as instances come and go, so panic and summaries need no scan. */
  healthy: number;
  draining: number;
  /** Healthy and not draining. */
  servingCount: number;
}

const NONE: readonly StoredInstance[] = Object.freeze([]);

/**
 * The in-memory view of the live instances, by id and by service type. It is
 * changed only by applying committed changes, so it always equals the store
 * at the last applied revision.
 *
 * A type's lists are built on first read after a change of that type and then
 * shared, frozen, by every reader until the next change: a steady GetByType
 * copies and filters nothing, and the same array object tells an answer cache
 * that nothing changed.
 */
export class InstanceIndex {
  private readonly byId = new Map<string, StoredInstance>();
  private readonly byType = new Map<string, TypeEntry>();
  /** Live instances per registration key id (instances that carry one). */
  private readonly byKey = new Map<string, number>();

  /** `panic` judges the types (default: none is ever in panic). */
  constructor(private readonly panic: PanicThreshold = { percent: 0, minInstances: 1 }) {}

  /** Adds, replaces or removes the instance a committed change names. */
  apply(change: Change): void {
    if (change.kind === "removed") this.delete(change.instance.id);
    else this.put(change.instance);
  }

  /** Loads an instance from a stored state. */
  put(instance: StoredInstance): void {
    const old = this.byId.get(instance.id);
    if (instance.keyId !== undefined && !old) this.byKey.set(instance.keyId, (this.byKey.get(instance.keyId) ?? 0) + 1);
    this.byId.set(instance.id, instance);
    let entry = this.byType.get(instance.serviceType);
    if (!entry) {
      entry = {
        serviceType: instance.serviceType, members: new Map(), byHost: new Map(),
        all: undefined, serving: undefined, undrained: undefined, healthy: 0, draining: 0, servingCount: 0,
      };
      this.byType.set(instance.serviceType, entry);
    }
    const replaced = entry.members.get(instance.id);
    if (replaced) count(entry, replaced, -1);
    entry.members.set(instance.id, instance);
    count(entry, instance, 1);
    placeByHost(entry.byHost, instance);
    entry.all = entry.serving = entry.undrained = undefined;
  }

  /**
   * Instances that share their address with a newer one (data written
   * before addresses were unique): every one but the latest registered of
   * each address.
   */
  shadowed(): StoredInstance[] {
    const out: StoredInstance[] = [];
    for (const entry of this.byType.values()) {
      for (const slot of entry.byHost.values()) {
        if (!Array.isArray(slot)) continue;
        const newest = new Map<number, StoredInstance>();
        for (const i of slot) {
          const other = newest.get(i.port);
          if (!other) newest.set(i.port, i);
          else if (registeredLater(i, other)) {
            out.push(other);
            newest.set(i.port, i);
          } else out.push(i);
        }
      }
    }
    return out;
  }

  /**
   * The live instance of `serviceType` at `host`:`port` (hosts compared as
   * `canonicalHost` does). Should a data set from before addresses were
   * unique hold two, the latest registered.
   */
  atAddress(serviceType: string, host: string, port: number): StoredInstance | undefined {
    const slot = this.byType.get(serviceType)?.byHost.get(canonicalHost(host));
    if (slot === undefined) return undefined;
    if (!Array.isArray(slot)) return slot.port === port ? slot : undefined;
    let newest: StoredInstance | undefined;
    for (const i of slot) if (i.port === port && (!newest || registeredLater(i, newest))) newest = i;
    return newest;
  }

  /**
   * `serviceType` as the string the index already holds for that type, when
   * it has instances: each decoded request carries a fresh copy of its type,
   * which an instance would otherwise keep (~28 bytes apiece).
   */
  sharedType(serviceType: string): string {
    return this.byType.get(serviceType)?.serviceType ?? serviceType;
  }

  get(id: string): StoredInstance | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Service types with at least one instance. */
  get typeCount(): number {
    return this.byType.size;
  }

  countOfType(serviceType: string): number {
    return this.byType.get(serviceType)?.members.size ?? 0;
  }

  /** Live instances registered with the key `keyId` identifies. */
  countOfKey(keyId: string): number {
    return this.byKey.get(keyId) ?? 0;
  }

  /** Instances of one type (or all, for an empty type), in registration order. Shared: never mutate. */
  list(serviceType: string): readonly StoredInstance[] {
    if (serviceType === "") return [...this.byId.values()];
    const entry = this.byType.get(serviceType);
    if (!entry) return NONE;
    return (entry.all ??= Object.freeze([...entry.members.values()]));
  }

  /** The healthy instances of one type that are not draining, in registration order. Shared: never mutate. */
  serving(serviceType: string): readonly StoredInstance[] {
    const entry = this.byType.get(serviceType);
    if (!entry) return NONE;
    return (entry.serving ??= Object.freeze(this.list(serviceType).filter((i) => i.health === "healthy" && !i.draining)));
  }

  /** The instances of one type that are not draining, in registration order. Shared: never mutate. */
  undrained(serviceType: string): readonly StoredInstance[] {
    const entry = this.byType.get(serviceType);
    if (!entry) return NONE;
    if (entry.draining === 0) return this.list(serviceType);
    return (entry.undrained ??= Object.freeze(this.list(serviceType).filter((i) => !i.draining)));
  }

  /**
   * Whether a type is in panic (see `inPanic`): judged among its instances
   * that are not draining, the ones GetByType chooses from.
   */
  inPanic(serviceType: string): boolean {
    const entry = this.byType.get(serviceType);
    return entry !== undefined && entryInPanic(entry, this.panic);
  }

  /** Counts per service type, sorted by type. */
  summaries(): ServiceSummary[] {
    const summaries: ServiceSummary[] = [];
    for (const [serviceType, entry] of this.byType) {
      const { healthy: healthyCount, draining: drainingCount } = entry;
      summaries.push({ serviceType, healthyCount, totalCount: entry.members.size, drainingCount, panic: entryInPanic(entry, this.panic) });
    }
    return summaries.sort((a, b) => (a.serviceType < b.serviceType ? -1 : 1));
  }

  private delete(id: string): void {
    const instance = this.byId.get(id);
    if (!instance) return;
    this.byId.delete(id);
    if (instance.keyId !== undefined) {
      const left = (this.byKey.get(instance.keyId) ?? 1) - 1;
      if (left === 0) this.byKey.delete(instance.keyId);
      else this.byKey.set(instance.keyId, left);
    }
    const entry = this.byType.get(instance.serviceType);
    if (!entry) return;
    entry.members.delete(id);
    dropByHost(entry.byHost, instance);
    count(entry, instance, -1);
    entry.all = entry.serving = entry.undrained = undefined;
    if (entry.members.size === 0) this.byType.delete(instance.serviceType);
  }
}

/**
 * Registered after `other` (ties by id): the newest registration is the live
 * process, whatever changed last (an old entry's probes pass again once its
 * address's new process answers them).
 */
function registeredLater(i: StoredInstance, other: StoredInstance): boolean {
  return i.registeredAt !== other.registeredAt ? i.registeredAt > other.registeredAt : i.id > other.id;
}

/** Puts `instance` in its host's slot, in place of an earlier version of itself. */
function placeByHost(byHost: Map<string, StoredInstance | StoredInstance[]>, instance: StoredInstance): void {
  const host = canonicalHost(instance.host);
  const slot = byHost.get(host);
  if (slot === undefined || (!Array.isArray(slot) && slot.id === instance.id)) {
    byHost.set(host, instance);
    return;
  }
  const list = Array.isArray(slot) ? slot : [slot];
  const at = list.findIndex((i) => i.id === instance.id);
  if (at === -1) list.push(instance);
  else list[at] = instance;
  byHost.set(host, list);
}

function dropByHost(byHost: Map<string, StoredInstance | StoredInstance[]>, instance: StoredInstance): void {
  const host = canonicalHost(instance.host);
  const slot = byHost.get(host);
  if (slot === undefined) return;
  if (!Array.isArray(slot)) {
    if (slot.id === instance.id) byHost.delete(host);
    return;
  }
  const rest = slot.filter((i) => i.id !== instance.id);
  if (rest.length === 0) byHost.delete(host);
  else byHost.set(host, rest.length === 1 ? (rest[0] as StoredInstance) : rest);
}

/** Adds (`sign` 1) or takes away (-1) an instance's share of its type's counts. */
function count(entry: TypeEntry, instance: StoredInstance, sign: 1 | -1): void {
  const healthy = instance.health === "healthy";
  if (healthy) entry.healthy += sign;
  if (instance.draining) entry.draining += sign;
  else if (healthy) entry.servingCount += sign;
}

function entryInPanic(entry: TypeEntry, threshold: PanicThreshold): boolean {
  return inPanic(threshold, entry.servingCount, entry.members.size - entry.draining);
}
