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
      /**
       * The instance the core's table holds at this address, if any. A
       * shared store decides replacement from its own address records; this
       * names a holder registered before those existed, which has none.
       */
      readonly replaces?: string;
    }
  | { readonly op: "remove"; readonly id: string; readonly reason: RemovalReason; readonly at: number }
  | { readonly op: "drain"; readonly id: string; readonly at: number }
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
 * Where the registry's state lives: one of two kinds, told apart by
 * `plannedBy`, both fed by the core's one commit queue a batch at a time.
 *
 * - A store of one process (`LocalStore`: memory, SQLite) holds no state the
 *   core does not: the core validates each batch and numbers its changes
 *   against its own instance table, the store persists them, and the core
 *   applies them once they are persisted.
 * - A shared store (`SharedStore`: etcd) is the truth several replicas read:
 *   it validates and numbers each mutation itself and reports every
 *   committed change, in revision order, to the one change listener, which
 *   is how the core applies changes committed by any replica.
 */
export type RegistryStore = LocalStore | SharedStore;

interface StoreLifecycle {
  /**
   * Loads the persisted state. Called once. A shared store starts its change
   * feed to `onChange`; a local store has no changes but the core's to report.
   */
  open(onChange: (change: Change) => void): Promise<StoreState>;
  /** Flushes and releases resources. */
  close(): Promise<void>;
  /**
   * Stores that can lose their backend (etcd): reports losing (`false`, with
   * a reason) and regaining (`true`) it. While lost, the registry's view may
   * be stale, and it refuses reads and writes.
   */
  onAvailabilityChange?(listener: (available: boolean, reason: string) => void): void;
}

/**
 * Liveness reports heard by one replica, shared with the others (shared
 * stores). A TTL instance's heartbeat may reach any replica, but only the
 * replica that probes it keeps its clock; a session lives on the replica
 * its stream reached, and must end with that replica.
 */
export interface LivenessRelay {
  /** Announces that this replica holds a session of `id`, for as long as this replica lives. */
  sessionOpened(id: string): void;
  /** Withdraws that announcement: this replica's last session of `id` ended. */
  sessionClosed(id: string): void;
  /** Replicas other than this one announcing a session of `id`. */
  sessionsElsewhere(id: string): number;
  /**
   * Passes a heartbeat of `id` heard here on to the replica keeping its
   * clock, whose ttl is `ttlMs`; resolves once sent. Heartbeats closer
   * together than a fraction of the ttl need not all be passed on.
   */
  heartbeat(id: string, ttlMs: number): Promise<void>;
  /**
   * Reports from other replicas: a heartbeat of `id`, a session of `id`
   * announced, or withdrawn (closed, or its replica went away: its
   * announcement ends with the replica's membership).
   */
  onReport(listener: (id: string, report: "heartbeat" | "session_opened" | "session_gone") => void): void;
}

/** A store of one process: persists the changes the core planned. */
export interface LocalStore extends StoreLifecycle {
  readonly plannedBy: "core";
  /**
   * Persists one batch of planned changes (in revision order, numbered on
   * from the previous batch), all or none; resolves once they are durable.
   * Rejects when they could not be persisted: the core then applies none of
   * them, and its table still equals what the store holds.
   */
  commitBatch(changes: readonly Change[]): Promise<void>;
  /**
   * Makes a write of the store's own that no registry state depends on, and
   * rejects if it cannot be made: after commits failed (a full disk, an I/O
   * error), the core tries this now and then to learn that writes work again
   * even when no commit comes. Absent: only the next commit tells.
   */
  checkWritable?(): Promise<void>;
}

/** A store shared by replicas: validates, numbers and reports changes itself. */
export interface SharedStore extends StoreLifecycle {
  readonly plannedBy: "store";
  /**
   * Commits each mutation of a batch and answers, one promise per mutation
   * in order, its committed change, or rejects with why it was not
   * committed: a `RegistryError("not_found")` for a `remove` or `setHealth`
   * of an instance the store does not hold, `RegistryError("unavailable")`
   * when the backend could not be reached. Each change is (or will be)
   * delivered to the change listener too; the core applies it from there.
   */
  commitBatch(mutations: readonly Mutation[]): readonly Promise<Change>[];
  /** How probing is split between replicas. */
  readonly probeOwnership?: ProbeOwnership;
  /** How liveness reports reach the replica that keeps an instance's clock. */
  readonly livenessRelay?: LivenessRelay;
  /**
   * For stores whose revisions also count keys that are not instances
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
   * The revision of instance `id`'s latest change, read from the backend
   * itself (linearizably), or undefined when it holds no such instance. Lets
   * a replica that is behind tell "not registered" from "not applied here
   * yet". Stores of one process have none: the index is the truth.
   */
  lookup?(id: string): Promise<number | undefined>;
}
