import { performance } from "node:perf_hooks";
import { RegistryError } from "../registry/registry-error.js";
import type { Change } from "../registry/types.js";
import type { Mutation, ProbeOwnership, RegistryStore, StoreState } from "../registry/registry-store.js";

/** How a commit ended: committed, answered with a domain error (e.g. not found), or failed. */
export type CommitOutcome = "ok" | "rejected" | "error";

/** What an {@link InstrumentedStore} reports. */
export interface StoreObserver {
  /** Every commit, with its duration in seconds. */
  onCommit?(op: Mutation["op"], outcome: CommitOutcome, seconds: number): void;
  /**
   * The store started failing (a commit threw something other than a
   * RegistryError: an I/O error, a full disk) or recovered (a commit
   * succeeded). Reported on changes only.
   */
  onFailingChange?(failing: boolean, error?: unknown): void;
}

/**
 * A RegistryStore decorator that times commits and notices a failing store,
 * without the core or the store knowing. Everything else, the optional
 * members of shared stores included, goes straight to the real store.
 *
 * A RegistryError is a deliberate answer (not found, retry), not a failure;
 * anything else thrown by `commit` means the store could not do its job.
 *
 * @example
 * const store = new InstrumentedStore(new SqliteStore({ dataDir }), {
 *   onFailingChange: (failing) => serving.set("store_failing", failing),
 * });
 */
export class InstrumentedStore implements RegistryStore {
  private failing = false;

  constructor(
    private readonly inner: RegistryStore,
    private readonly observer: StoreObserver,
  ) {}

  get probeOwnership(): ProbeOwnership | undefined {
    return this.inner.probeOwnership;
  }

  onAvailabilityChange(listener: (available: boolean, reason: string) => void): void {
    this.inner.onAvailabilityChange?.(listener);
  }

  onProgress(listener: (revision: number) => void): void {
    this.inner.onProgress?.(listener);
  }

  /** The real store's, when it has one: the registry asks a store of this process nothing. */
  get lookup(): ((id: string) => Promise<number | undefined>) | undefined {
    return this.inner.lookup?.bind(this.inner);
  }

  open(onChange: (change: Change) => void): Promise<StoreState> {
    return this.inner.open(onChange);
  }

  async commit(mutation: Mutation): Promise<Change> {
    const started = performance.now();
    try {
      const change = await this.inner.commit(mutation);
      this.report(mutation, "ok", started);
      this.setFailing(false);
      return change;
    } catch (err) {
      // A RegistryError is the store refusing one mutation (not found...),
      // except "unavailable": that is how stores report a failing backend.
      const failed = !(err instanceof RegistryError) || err.code === "unavailable";
      this.report(mutation, failed ? "error" : "rejected", started);
      if (failed) this.setFailing(true, err);
      throw err;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private report(mutation: Mutation, outcome: CommitOutcome, started: number): void {
    this.observer.onCommit?.(mutation.op, outcome, (performance.now() - started) / 1000);
  }

  private setFailing(failing: boolean, error?: unknown): void {
    if (failing === this.failing) return;
    this.failing = failing;
    this.observer.onFailingChange?.(failing, error);
  }
}
