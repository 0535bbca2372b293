import { EventHistory } from "../../src/registry/event-history.js";
import type { Change, StoredInstance, WatchEvent } from "../../src/registry/types.js";
import type { WatchOptions, WatchSource } from "../../src/registry/watcher.js";

/** An instance record for tests; only id, type, revision and metadata matter here. */
export function instance(id: string, serviceType: string, revision: number, metadata: Record<string, string> = {}): StoredInstance {
  return {
    id,
    serviceType,
    host: "127.0.0.1",
    port: 8080,
    metadata,
    healthCheckPath: "/health",
    health: "healthy", draining: false, drainingSince: 0,
    registeredAt: 0,
    updatedAt: 0,
    revision,
    tokenHash: "",
  };
}

/** A registration change at `revision`. */
export function registered(revision: number, serviceType: string, id = `${serviceType}${revision}`, metadata: Record<string, string> = {}): Change {
  return { kind: "registered", revision, instance: instance(id, serviceType, revision, metadata) };
}

/**
 * The registry state a watcher reads from, kept in memory: committing a
 * change applies it to the instances, the history and the revision, as the
 * core does before it publishes. Publishing is left to the test.
 */
export class TestSource implements WatchSource {
  epoch = "epoch-1";
  revision = 0;
  readonly history: EventHistory;
  private readonly instances = new Map<string, StoredInstance>();

  constructor(historyCapacity = 100) {
    this.history = new EventHistory(historyCapacity, { changes: [], floor: 0 });
  }

  snapshot(serviceType: string): StoredInstance[] {
    return [...this.instances.values()].filter((i) => serviceType === "" || i.serviceType === serviceType);
  }

  /** Registers an instance of `serviceType` (with `metadata`) at the next revision. */
  register(serviceType: string, id?: string, metadata: Record<string, string> = {}): Change {
    const change = registered(this.revision + 1, serviceType, id, metadata);
    this.instances.set(change.instance.id, change.instance);
    return this.applied(change);
  }

  /** Removes instance `id` at the next revision. */
  remove(id: string): Change {
    const before = this.instances.get(id);
    if (!before) throw new Error(`no instance ${id}`);
    this.instances.delete(id);
    return this.applied({ kind: "removed", revision: this.revision + 1, instance: before, reason: "unregistered" });
  }

  private applied(change: Change): Change {
    this.history.append(change);
    this.revision = change.revision;
    return change;
  }
}

/** Watch options with defaults: every type, snapshot first. */
export function watchOptions(source: WatchSource, options: Partial<WatchOptions> = {}): WatchOptions {
  return { serviceType: "", sinceRevision: 0, epoch: source.epoch, everyHealthCheck: false, ...options };
}

/** A short readable form of an event, for exact assertions. */
export function brief(event: WatchEvent): string {
  switch (event.type) {
    case "change":
      return `${event.change.kind}@${event.change.revision}:${event.change.instance.id}`;
    case "snapshot":
      return `snapshot@${event.revision}:${event.instance.id}`;
    case "probe":
      return `probe:${event.probe.instance.id}:${event.probe.passed ? "passed" : "failed"}`;
    default:
      return `${event.type}@${event.revision}`;
  }
}

/** Everything a watcher has ready now, polled synchronously. */
export function drain(watcher: { poll(): WatchEvent | undefined }): string[] {
  const out: string[] = [];
  for (let e = watcher.poll(); e !== undefined; e = watcher.poll()) out.push(brief(e));
  return out;
}
