import { performance } from "node:perf_hooks";
import { RegistryError } from "./registry-error.js";
import type { Mutation } from "./registry-store.js";
import type { Change } from "./types.js";

/** How a mutation's commit ended: committed, refused as a domain answer (not found), or failed. */
export type CommitOutcome = "ok" | "rejected" | "error";

/** Told how commits go (metrics, serving state); every member optional. */
export interface CommitObserver {
  /** Every mutation a batch committed, refused or failed, with the batch's commit time in seconds. */
  onCommit?(op: Mutation["op"], outcome: CommitOutcome, seconds: number): void;
  /**
   * Commits started failing (the store could not write: an I/O error, a full
   * disk, an unreachable backend) or succeed again. Reported on changes only.
   */
  onFailingChange?(failing: boolean, error?: unknown): void;
}

/**
 * Reports each committed batch to a {@link CommitObserver}. A RegistryError
 * other than "unavailable" is the store's or the core's deliberate answer
 * (not found), not a failure; anything else means the store could not do
 * its job.
 */
export class CommitReporter {
  private failing = false;

  /** `onFailingChange` is told as the observer is, for the core's own use. */
  constructor(
    private readonly observer: CommitObserver = {},
    private readonly onFailingChange: (failing: boolean) => void = () => {},
  ) {}

  /** A write made outside a commit (`LocalStore.checkWritable`) succeeded: the store takes writes again. */
  recovered(): void {
    this.setFailing(false);
  }

  /** `results` has one entry per mutation. */
  report(mutations: readonly Mutation[], results: readonly (Change | Error)[], started: number): void {
    const seconds = (performance.now() - started) / 1000;
    let failure: unknown;
    let committed = false;
    mutations.forEach((mutation, i) => {
      const result = results[i];
      let outcome: CommitOutcome = "ok";
      if (result instanceof RegistryError && result.code !== "unavailable") outcome = "rejected";
      else if (result instanceof Error) {
        outcome = "error";
        failure ??= result;
      } else committed = true;
      this.observer.onCommit?.(mutation.op, outcome, seconds);
    });
    if (failure !== undefined) this.setFailing(true, failure);
    else if (committed) this.setFailing(false);
  }

  private setFailing(failing: boolean, error?: unknown): void {
    if (failing === this.failing) return;
    this.failing = failing;
    this.onFailingChange(failing);
    this.observer.onFailingChange?.(failing, error);
  }
}
