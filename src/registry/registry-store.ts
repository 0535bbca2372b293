import type { Change, Health, RemovalReason, StoredInstance } from "./types.js";

/** Everything a store holds, as loaded when it opens. */
export interface StoreState {
  /** Names this data set; changes only when revisions restart. */
  readonly epoch: string;
  /** The latest committed revision (0 for an empty store). */
  readonly revision: number;
  /** The live instances. */
  readonly instances: readonly StoredInstance[];
  /** Recent changes in revision order, oldest first. */
  readonly history: readonly Change[];
  /**
   * Every change after this revision is in `history`: a watcher may resume
   * from any revision in `[historyFloor, revision]`.
   */
  readonly historyFloor: number;
}

/** A state change the core asks a store to commit. The store assigns revisions. */
export type Mutation =
  | {
      readonly op: "register";
      readonly instance: Omit<StoredInstance, "revision">;
      /**
       * When the caller stops waiting (epoch ms). A store whose commit can be
       * held up in the network (etcd) must not let it land after that: the
       * caller has been told it failed and may register again.
       */
      readonly notAfter?: number;
    }
  | { readonly op: "remove"; readonly id: string; readonly reason: RemovalReason; readonly at: number }
  | {
      readonly op: "setHealth";
      readonly id: string;
      readonly health: Health;
      readonly at: number;
      readonly failureReason?: string;
    };

/**
 * Which instances this process probes, when several replicas share a store.
 * Absent on single-process stores: then every instance is probed here.
 */
export interface ProbeOwnership {
  /** True when this replica is the one that probes `instanceId`. */
  owns(instanceId: string): boolean;
  /** Called whenever the assignment may have changed (membership moved). */
  onChange(listener: () => void): void;
}

/**
 * Where the registry's state lives. Stores commit mutations and report every
 * committed change, in revision order, to the one change listener: the core
 * updates its index and history only from that feed, whichever store it is
 * (including changes committed by other replicas of a shared store).
 *
 * `commit` rejects with a `RegistryError("not_found")` when a `remove` or
 * `setHealth` names an instance the store does not hold.
 */
export interface RegistryStore {
  /** Loads the persisted state and starts the change feed. Called once. */
  open(onChange: (change: Change) => void): Promise<StoreState>;
  /**
   * Commits a mutation. Resolves once it is durable with the committed change;
   * the change has been (or will be) delivered to the change listener.
   */
  commit(mutation: Mutation): Promise<Change>;
  /** Flushes and releases resources. */
  close(): Promise<void>;
  /** Shared stores: how probing is split between replicas. */
  readonly probeOwnership?: ProbeOwnership;
  /**
   * Shared stores: reports losing (`false`, with a reason) and regaining
   * (`true`) the backend. While lost, the registry's view may be stale.
   */
  onAvailabilityChange?(listener: (available: boolean, reason: string) => void): void;
  /**
   * Shared stores whose revisions also count keys that are not instances
   * (etcd: membership, removal reasons, the sync marker): reports that every
   * change up to `revision` has been delivered, so the registry's revision
   * follows the backend's even when no instance changed. Every replica then
   * reports the same revision for the same state, and a replica that started
   * at the backend's revision agrees with those that ran all along. Called in
   * order with the change feed, after the changes it covers; register the
   * listener before `open`.
   */
  onProgress?(listener: (revision: number) => void): void;
  /**
   * Shared stores: the revision of instance `id`'s latest change, read from
   * the backend itself (linearizably), or undefined when it holds no such
   * instance. Lets a replica that is behind tell "not registered" from "not
   * applied here yet". Stores of one process have none: the index is the truth.
   */
  lookup?(id: string): Promise<number | undefined>;
}
