import { RegistryError } from "./registry-error.js";
import type { Mutation } from "./registry-store.js";
import type { Change } from "./types.js";

/** A mutation waiting in the queue, with the promise its caller awaits. */
export interface QueuedCommit {
  readonly mutation: Mutation;
  resolve(change: Change): void;
  reject(error: unknown): void;
}

/** What commits a batch: settles every entry, and never rejects itself. */
export type BatchCommitter = (batch: readonly QueuedCommit[]) => Promise<void>;

/** Options of {@link CommitQueue}. */
export interface CommitQueueOptions {
  /**
   * Hand over a batch only once the previous one is settled: for stores of
   * one process, whose batches are planned against the table the previous
   * batch leaves. A shared store orders its commits itself.
   */
  readonly oneBatchAtATime: boolean;
}

/**
 * The registry's one batching point: every mutation asked for in one turn of
 * the event loop (from any transport, and the prober) goes to the store in
 * one batch, handed over in an immediate, once the turn's I/O has been read.
 * Under load a batch holds every call that arrived meanwhile, so a store
 * writes one transaction (SQLite) and the core publishes once, however many
 * calls came; with one call in flight the batch is that call.
 *
 * A mutation whose caller stopped listening while it waited (its `signal`
 * aborted: the call ended, the server is going down) is dropped, answered
 * with `RegistryError("cancelled")`: nobody would hear the answer, and a
 * client that retries would register twice.
 */
export class CommitQueue {
  private waiting: (QueuedCommit & { readonly signal: AbortSignal | undefined })[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Settles once every batch handed over so far is settled. */
  private settled: Promise<void> = Promise.resolve();

  constructor(
    private readonly commit: BatchCommitter,
    private readonly options: CommitQueueOptions,
  ) {}

  /** Queues a mutation for the next batch; resolves with its committed change. */
  enqueue(mutation: Mutation, signal?: AbortSignal): Promise<Change> {
    if (signal?.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      this.waiting.push({ mutation, resolve, reject, signal });
      this.scheduled ??= setImmediate(() => this.handOver());
    });
  }

  /** Hands over what waits now, and resolves once every batch handed over is settled (for shutdown). */
  async drain(): Promise<void> {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.handOver();
    await this.settled;
  }

  private handOver(): void {
    this.scheduled = undefined;
    const batch: QueuedCommit[] = [];
    for (const entry of this.waiting) {
      if (entry.signal?.aborted) entry.reject(cancelled());
      else batch.push(entry);
    }
    this.waiting = [];
    if (batch.length === 0) return;
    const run = (): Promise<void> => this.commit(batch);
    if (this.options.oneBatchAtATime) this.settled = this.settled.then(run);
    else this.settled = Promise.all([this.settled, run()]).then(() => {});
  }
}

function cancelled(): RegistryError {
  return new RegistryError("cancelled", "the call ended before its change was committed; nothing was changed");
}
