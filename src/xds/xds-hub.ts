import type { ServiceRegistry } from "../registry/service-registry.js";
import { isServiceTypeName } from "../registry/validation.js";
import { addTo, removeFrom } from "../util/keyed-sets.js";
import type { Watcher } from "../registry/watcher.js";
import { TYPE_URL } from "./envoy-protos.js";
import { assignmentFor, clusterFor, listenerFor, type EncodedResource } from "./xds-resources.js";

/** What the hub tells each subscribed session after a batch of changes. */
export interface XdsSubscriber {
  /** These service types changed (`all`: any may have, after a resync). */
  typesChanged(types: ReadonlySet<string>, all: boolean): void;
  /** The hub lost the registry (store lost, shutdown): the session must end with `error`. */
  hubEnded(error: Error): void;
}

/**
 * The xDS view of the registry, shared by every ADS stream of this process:
 * it follows the registry through one core watcher of every type (the same
 * watch hub gRPC watchers ride), keeps each type's resources encoded once
 * for all streams, and tells the sessions which types changed, once per
 * turn of the event loop however many changes the turn committed.
 *
 * A Listener and a Cluster depend on nothing but the type's name, so they
 * are built once per name; a ClusterLoadAssignment is rebuilt when its type
 * changed. A type exists while it has an instance; the resources of a type
 * that does not exist are undefined (not sent).
 */
export class XdsHub {
  private watcher: Watcher | undefined;
  private readonly subscribers = new Set<XdsSubscriber>();
  /** Who follows which service type, so a change visits only its type's sessions (and the wildcard ones). */
  private readonly followers = new Map<string, Set<XdsSubscriber>>();
  private readonly wildcard = new Set<XdsSubscriber>();
  private readonly followed = new Map<XdsSubscriber, ReadonlySet<string>>();
  private readonly listeners = new Map<string, EncodedResource>();
  private readonly clusters = new Map<string, EncodedResource>();
  private readonly assignments = new Map<string, EncodedResource>();
  private changed = new Set<string>();
  private changedAll = false;
  private flushQueued = false;
  /** The latest registry revision the hub has seen: the version of what it serves. */
  private seen = 0;

  constructor(private readonly registry: ServiceRegistry) {}

  /** The registry revision the resources reflect (a response's version_info). */
  get revision(): number {
    return this.seen;
  }

  /** Subscribes a session; throws (UNAVAILABLE) when the registry cannot be read now. */
  subscribe(subscriber: XdsSubscriber): void {
    this.open();
    this.subscribers.add(subscriber);
  }

  unsubscribe(subscriber: XdsSubscriber): void {
    this.follow(subscriber, new Set(), false);
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0) this.close();
  }

  /** The service types a subscriber's resources name (`wildcard`: every type); replaces what it followed before. */
  follow(subscriber: XdsSubscriber, types: ReadonlySet<string>, wildcard: boolean): void {
    const before = this.followed.get(subscriber) ?? new Set<string>();
    for (const type of before) if (!types.has(type)) removeFrom(this.followers, type, subscriber);
    for (const type of types) if (!before.has(type)) addTo(this.followers, type, subscriber);
    if (types.size > 0) this.followed.set(subscriber, types);
    else this.followed.delete(subscriber);
    if (wildcard) this.wildcard.add(subscriber);
    else this.wildcard.delete(subscriber);
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** The resource of `typeUrl` named `name`, or undefined when its service type has no instance. */
  resource(typeUrl: string, name: string): EncodedResource | undefined {
    if (!this.exists(name)) return undefined;
    switch (typeUrl) {
      case TYPE_URL.listener:
        return cached(this.listeners, name, () => listenerFor(name));
      case TYPE_URL.cluster:
        return cached(this.clusters, name, () => clusterFor(name));
      case TYPE_URL.endpoints:
        return cached(this.assignments, name, () => {
          const { instances, panic } = this.registry.getByType(name, { includeUnhealthy: true, includeDraining: true });
          return assignmentFor(name, instances, panic);
        });
      default:
        return undefined;
    }
  }

  /** Every service type with an instance (what a wildcard subscription gets). */
  serviceTypes(): string[] {
    return this.registry.listServices().services.map((s) => s.serviceType);
  }

  private exists(serviceType: string): boolean {
    // A name that cannot be a service type (an xdstp:// name, garbage) names no resource.
    if (!isServiceTypeName(serviceType)) return false;
    try {
      return this.registry.getByType(serviceType, { includeUnhealthy: true, includeDraining: true }).instances.length > 0;
    } catch {
      return false; // the store is lost: the hub's watcher ends the streams
    }
  }

  private open(): void {
    if (this.watcher && !this.watcher.closed) return;
    const watcher = this.registry.watch({ serviceType: "", sinceRevision: 0, epoch: "", everyHealthCheck: false });
    this.watcher = watcher;
    // Whatever was cached may be older than the fresh snapshot.
    this.forget();
    this.seen = this.registry.revision;
    watcher.consume(() => this.take(watcher));
    this.take(watcher);
  }

  private close(): void {
    this.watcher?.end();
    this.watcher = undefined;
    this.forget();
  }

  private forget(): void {
    this.listeners.clear();
    this.clusters.clear();
    this.assignments.clear();
  }

  /** Reads what the watcher has; called by it when it has something. */
  private take(watcher: Watcher): void {
    if (watcher !== this.watcher) return;
    for (let event = watcher.poll(); event !== undefined; event = watcher.poll()) {
      switch (event.type) {
        case "change": {
          const type = event.change.instance.serviceType;
          this.assignments.delete(type);
          this.changed.add(type);
          this.seen = event.change.revision;
          break;
        }
        case "snapshot":
          break;
        case "synced":
        case "reset":
          this.assignments.clear();
          this.changedAll = true;
          this.seen = event.revision;
          break;
        default:
          if (event.type === "bookmark") this.seen = Math.max(this.seen, event.revision);
      }
    }
    if (watcher.closed) {
      this.watcher = undefined;
      this.forget();
      const error = watcher.endError ?? new Error("the registry stopped");
      for (const s of [...this.subscribers]) s.hubEnded(error);
      this.subscribers.clear();
      return;
    }
    if ((this.changed.size > 0 || this.changedAll) && !this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const types = this.changed;
    const all = this.changedAll;
    this.changed = new Set();
    this.changedAll = false;
    for (const name of types) {
      // A type that emptied: its names may come back later, built afresh then.
      if (!this.exists(name)) {
        this.listeners.delete(name);
        this.clusters.delete(name);
      }
    }
    if (all) {
      for (const s of this.subscribers) s.typesChanged(types, true);
      return;
    }
    const concerned = new Set(this.wildcard);
    for (const type of types) for (const s of this.followers.get(type) ?? []) concerned.add(s);
    for (const s of concerned) s.typesChanged(types, false);
  };
}

function cached(map: Map<string, EncodedResource>, name: string, build: () => EncodedResource): EncodedResource {
  let value = map.get(name);
  if (value === undefined) map.set(name, (value = build()));
  return value;
}
