import { addressKey } from "./instance-address.js";
import { instanceNotFound, RegistryError } from "./registry-error.js";
import type { Mutation } from "./registry-store.js";
import type { Change, StoredInstance } from "./types.js";

/** The core's instance table, as planning reads it. */
export interface PlanTable {
  get(id: string): StoredInstance | undefined;
  /** The live instance of `serviceType` at `host`:`port`, if any. */
  atAddress(serviceType: string, host: string, port: number): StoredInstance | undefined;
}

/** A planned batch: one result per mutation, and every change in revision order. */
export interface BatchPlan {
  /** Each mutation's change (a register's registration), or why it makes none. */
  readonly results: (Change | RegistryError)[];
  /** The changes to persist and apply, a replaced instance's removal before its successor's registration. */
  readonly changes: Change[];
}

/**
 * Turns a batch of mutations into the changes they make, numbered on from
 * `revision`, against the instances `table` holds as earlier mutations of
 * the same batch leave them. A `remove`, `setHealth` or `drain` of an
 * instance that is not there is answered, in its place, with
 * `RegistryError("not_found")`; the batch goes on without it. A `register`
 * of an address (service type, host, port) a live instance holds replaces
 * it: the old instance's removal (reason `replaced`) comes first, then the
 * registration, each with its own revision.
 *
 * Nothing is changed: the caller persists the changes and applies them to
 * the table only once they are durable, so a failed write has nothing to undo.
 */
export function planBatch(table: PlanTable, revision: number, mutations: readonly Mutation[]): BatchPlan {
  /** Instances as this batch leaves them so far; `null` once removed. */
  const planned = new Map<string, StoredInstance | null>();
  /** Addresses this batch registered or freed so far, to the id holding them (`null`: none). */
  const addresses = new Map<string, string | null>();
  const find = (id: string): StoredInstance | undefined => {
    const inBatch = planned.get(id);
    return inBatch === null ? undefined : (inBatch ?? table.get(id));
  };
  const holder = (i: Omit<StoredInstance, "revision">): StoredInstance | undefined => {
    const key = addressKey(i.serviceType, i.host, i.port);
    const id = addresses.has(key) ? addresses.get(key) : table.atAddress(i.serviceType, i.host, i.port)?.id;
    return id == null ? undefined : find(id);
  };
  const changes: Change[] = [];
  const results = mutations.map((mutation): Change | RegistryError => {
    let change: Change;
    if (mutation.op === "register") {
      const previous = holder(mutation.instance);
      if (previous) {
        planned.set(previous.id, null);
        changes.push({ kind: "removed", revision: ++revision, instance: previous, reason: "replaced" });
      }
      const instance = storedInstance(mutation.instance, ++revision);
      planned.set(instance.id, instance);
      addresses.set(addressKey(instance.serviceType, instance.host, instance.port), instance.id);
      change = { kind: "registered", revision, instance };
    } else {
      const before = find(mutation.id);
      if (!before) return instanceNotFound(mutation.id);
      if (mutation.op === "remove") {
        planned.set(mutation.id, null);
        addresses.set(addressKey(before.serviceType, before.host, before.port), null);
        change = { kind: "removed", revision: ++revision, instance: before, reason: mutation.reason };
      } else if (mutation.op === "drain") {
        // Draining is one way: a drain of a draining instance changes nothing (nor its deadline).
        if (before.draining) return { kind: "draining", revision: before.revision, instance: before };
        const instance = storedInstance(before, ++revision, before.health, mutation.at, mutation.at);
        planned.set(mutation.id, instance);
        change = { kind: "draining", revision, instance };
      } else {
        const instance = storedInstance(before, ++revision, mutation.health, mutation.at);
        planned.set(mutation.id, instance);
        change = mutation.failureReason === undefined
          ? { kind: "health", revision, instance }
          : { kind: "health", revision, instance, failureReason: mutation.failureReason };
      }
    }
    changes.push(change);
    return change;
  });
  return { results, changes };
}

/**
 * An instance as stored at `revision`, built field by field so that every
 * instance shares one hidden class (spread copies give each its own shape,
 * which costs memory per instance: bench scenario 5).
 */
function storedInstance(
  i: Omit<StoredInstance, "revision">,
  revision: number,
  health = i.health,
  updatedAt = i.updatedAt,
  drainingSince = i.drainingSince,
): StoredInstance {
  return {
    id: i.id,
    serviceType: i.serviceType,
    host: i.host,
    port: i.port,
    metadata: i.metadata,
    healthCheckPath: i.healthCheckPath,
    healthCheck: i.healthCheck,
    health,
    draining: drainingSince > 0,
    drainingSince,
    registeredAt: i.registeredAt,
    updatedAt,
    revision,
    tokenHash: i.tokenHash,
    keyId: i.keyId,
  };
}
