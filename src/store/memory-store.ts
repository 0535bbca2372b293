import { randomUUID } from "node:crypto";
import { RegistryError } from "../registry/registry-error.js";
import type { Change, StoredInstance } from "../registry/types.js";
import type { Mutation, RegistryStore, StoreState } from "./registry-store.js";

/**
 * A store that keeps nothing across restarts: every start is a new epoch.
 * For tests and throwaway runs (`STORE=memory`).
 */
export class MemoryStore implements RegistryStore {
  private readonly instances = new Map<string, StoredInstance>();
  private revision = 0;
  private onChange: (change: Change) => void = () => {};

  async open(onChange: (change: Change) => void): Promise<StoreState> {
    this.onChange = onChange;
    return { epoch: randomUUID(), revision: 0, instances: [], history: [], historyFloor: 0 };
  }

  async commit(mutation: Mutation): Promise<Change> {
    const change = this.apply(mutation);
    this.onChange(change);
    return change;
  }

  async close(): Promise<void> {}

  private apply(mutation: Mutation): Change {
    if (mutation.op === "register") {
      const instance: StoredInstance = { ...mutation.instance, revision: ++this.revision };
      this.instances.set(instance.id, instance);
      return { kind: "registered", revision: instance.revision, instance };
    }
    const current = this.instances.get(mutation.id);
    if (!current) throw new RegistryError("not_found", `instance ${mutation.id} not found`);
    if (mutation.op === "remove") {
      this.instances.delete(mutation.id);
      return { kind: "removed", revision: ++this.revision, instance: current, reason: mutation.reason };
    }
    const instance: StoredInstance = {
      ...current,
      health: mutation.health,
      updatedAt: mutation.at,
      revision: ++this.revision,
    };
    this.instances.set(instance.id, instance);
    return mutation.failureReason === undefined
      ? { kind: "health", revision: instance.revision, instance }
      : { kind: "health", revision: instance.revision, instance, failureReason: mutation.failureReason };
  }
}
