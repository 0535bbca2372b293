import { RegistryError } from "./registry-error.js";
import type { Mutation } from "./registry-store.js";
import type { Change, StoredInstance } from "./types.js";

/**
 * Turns a batch of mutations into the changes they make, numbered on from
 * `revision`, against the instances `current` finds (the core's instance
 * table) as earlier mutations of the same batch leave them. A `remove` or
 * `setHealth` of an instance that is not there is answered, in its place,
 * with `RegistryError("not_found")`; the batch goes on without it.
 *
 * Nothing is changed: the caller persists the changes and applies them to
 * the table only once they are durable, so a failed write has nothing to undo.
 */
export function planBatch(
  current: (id: string) => StoredInstance | undefined,
  revision: number,
  mutations: readonly Mutation[],
): (Change | RegistryError)[] {
  /** Instances as this batch leaves them so far; `null` once removed. */
  const planned = new Map<string, StoredInstance | null>();
  const find = (id: string): StoredInstance | undefined => {
    const inBatch = planned.get(id);
    return inBatch === null ? undefined : (inBatch ?? current(id));
  };
  return mutations.map((mutation): Change | RegistryError => {
    if (mutation.op === "register") {
      const instance = storedInstance(mutation.instance, ++revision);
      planned.set(instance.id, instance);
      return { kind: "registered", revision, instance };
    }
    const before = find(mutation.id);
    if (!before) return new RegistryError("not_found", `instance ${mutation.id} not found`);
    if (mutation.op === "remove") {
      planned.set(mutation.id, null);
      return { kind: "removed", revision: ++revision, instance: before, reason: mutation.reason };
    }
    if (mutation.op === "drain") {
      const instance = storedInstance(before, ++revision, before.health, mutation.at, mutation.at);
      planned.set(mutation.id, instance);
      return { kind: "draining", revision, instance };
    }
    const instance = storedInstance(before, ++revision, mutation.health, mutation.at);
    planned.set(mutation.id, instance);
    return mutation.failureReason === undefined
      ? { kind: "health", revision, instance }
      : { kind: "health", revision, instance, failureReason: mutation.failureReason };
  });
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
