import { randomUUID } from "node:crypto";
import type { LocalStore, StoreState } from "../registry/registry-store.js";
import type { Change } from "../registry/types.js";

/**
 * A store that keeps nothing across restarts: every start is a new epoch,
 * and the core's instance table is all the state there is. For tests and
 * throwaway runs (`STORE=memory`).
 */
export class MemoryStore implements LocalStore {
  readonly plannedBy = "core";

  async open(): Promise<StoreState> {
    return { epoch: randomUUID(), revision: 0, instances: [], history: [], historyFloor: 0 };
  }

  async commitBatch(_changes: readonly Change[]): Promise<void> {}

  async close(): Promise<void> {}
}
