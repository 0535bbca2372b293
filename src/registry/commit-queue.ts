import { RegistryError } from "./registry-error.js";
import type { Mutation } from "./registry-store.js";
import type { Change } from "./types.js";

/**
 * What a write checks of its caller: whether it stopped listening (its call
 * ended, the server is going down). An AbortSignal is one; a transport may
 * answer it from its call's own state instead, as making an AbortSignal is
 * dear on Node 20 (it sets a new object's prototype) and every write would
 * make one (bench/investigations/register-in-process.ts shows the cost).
 */
export type AbortState = Pick<AbortSignal, "aborted">;

/** A write in a formed batch: its mutation, and the promise its caller awaits. */
export interface QueuedCommit {
  readonly mutation: Mutation;
  resolve(change: Change): void;
  reject(error: unknown): void;
}

/** A write waiting for its batch. */
interface SubmittedWrite {
  readonly prepare: () => Mutation;
  readonly resolve: (change: Change) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortState | undefined;
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
 * The registry's one batching point: every write asked for in one turn of
 * the event loop (from any transport, and the prober) goes to the store in
 * one batch, formed in an immediate once the turn's I/O has been read. Under
 * load a batch holds every call that arrived meanwhile, so a store writes one
 * transaction (SQLite) and the core publishes once, however many calls came;
 * with one call in flight the batch is that call.
 *
 * Writes run back to back, with their code hot in the caches, rather than
 * each between grpc-js's or node:http's own work for the next request (bench
 * scenario 1 shows the difference): a transport runs its handling of each
 * write request as a task of the queue's next turn (`runInTurn`), and the
 * core submits each write as a function that prepares its mutation
 * (validation, quotas, a new token), run when its batch is formed. A write
 * submitted while its turn's tasks run joins that turn's batch; one
 * submitted after an await (a transport's auth) joins the next. A write
 * whose preparation throws fails alone.
 *
 * A mutation whose caller stopped listening while it waited (its `signal`
 * aborted: the call ended, the server is going down) is dropped, answered
 * with `RegistryError("cancelled")`: nobody would hear the answer, and a
 * client that retries would register twice.
 */
export class CommitQueue {
  private waiting: SubmittedWrite[] = [];
  private turnTasks: (() => void)[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Settles once every batch handed over so far is settled. */
  private settled: Promise<void> = Promise.resolve();

  constructor(
    private readonly commit: BatchCommitter,
    private readonly options: CommitQueueOptions,
  ) {}

  /**
   * Queues a write for the next batch: `prepare` is run when the batch is
   * formed and answers the mutation to commit. Resolves with the committed
   * change; rejects with what `prepare` threw, or why the commit failed.
   */
  submit(prepare: () => Mutation, signal?: AbortState): Promise<Change> {
    if (signal?.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      this.waiting.push({ prepare, resolve, reject, signal });
      this.scheduled ??= setImmediate(() => this.handOver());
    });
  }

  /**
   * Runs `task` at the start of the queue's next turn, with the other tasks
   * that arrived meanwhile, in arrival order. A task must not throw (one that
   * does is skipped, and the others still run).
   */
  runInTurn(task: () => void): void {
    this.turnTasks.push(task);
    this.scheduled ??= setImmediate(() => this.handOver());
  }

  /** Hands over what waits now, and resolves once every batch handed over is settled (for shutdown). */
  async drain(): Promise<void> {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.handOver();
    await this.settled;
  }

  private handOver(): void {
    this.scheduled = undefined;
    const tasks = this.turnTasks;
    this.turnTasks = []; // tasks arriving while these run wait for the next turn
    for (const task of tasks) {
      try {
        task();
      } catch {
        // the task's own answer is its business; the others still run
      }
    }
    const batch: QueuedCommit[] = [];
    for (const { prepare, resolve, reject, signal } of this.waiting) {
      if (signal?.aborted) {
        reject(cancelled());
        continue;
      }
      try {
        batch.push({ mutation: prepare(), resolve, reject });
      } catch (err) {
        reject(err);
      }
    }
    this.waiting = [];
    if (batch.length === 0) return;
    // A committer that breaks its promise and rejects must not leave callers waiting, nor stop the batches after it.
    const run = (): Promise<void> =>
      this.commit(batch).catch((err: unknown) => {
        for (const entry of batch) entry.reject(err);
      });
    if (this.options.oneBatchAtATime) this.settled = this.settled.then(run);
    else this.settled = Promise.all([this.settled, run()]).then(() => {});
  }
}

function cancelled(): RegistryError {
  return new RegistryError("cancelled", "the call ended before its change was committed; nothing was changed");
}
