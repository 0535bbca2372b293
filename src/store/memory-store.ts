import { randomUUID } from "node:crypto";
import type { Change } from "../registry/types.js";
import type { Mutation, RegistryStore, StoreState } from "../registry/registry-store.js";
import { StoreStateMachine } from "./state-machine.js";

/**
 * A store that keeps nothing across restarts: every start is a new epoch.
 * For tests and throwaway runs (`STORE=memory`).
 */
export class MemoryStore implements RegistryStore {
  private readonly state = new StoreStateMachine(0);
  private onChange: (change: Change) => void = () => {};

  async open(onChange: (change: Change) => void): Promise<StoreState> {
    this.onChange = onChange;
    return { epoch: randomUUID(), revision: 0, instances: [], history: [], historyFloor: 0 };
  }

  async commit(mutation: Mutation): Promise<Change> {
    const change = this.state.apply(mutation);
    this.state.commit();
    this.onChange(change);
    return change;
  }

  async close(): Promise<void> {}
}
