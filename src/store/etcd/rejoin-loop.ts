import { ExponentialBackoff, type IBackoff, type IBackoffFactory } from "cockatiel";

/** What a replica's membership did, for logs and tests (`EtcdStoreOptions.onMembership`). */
export type MembershipEvent =
  | { readonly kind: "attempt" }
  | { readonly kind: "joined"; readonly revision: number }
  | { readonly kind: "lost"; readonly error: Error }
  | { readonly kind: "failed"; readonly attempt: number; readonly retryInMs: number; readonly error: unknown };

/** Options of `RejoinLoop`. */
export interface RejoinLoopOptions {
  /** One join attempt: resolves once joined, rejects to be retried after the next backoff delay. */
  readonly attempt: () => Promise<unknown>;
  /** Delays between failed attempts. Default: decorrelated-jitter exponential, 250 ms growing to 5 s. */
  readonly backoff?: IBackoffFactory<unknown>;
  /** Told of each failed attempt and how long the loop waits before the next. */
  readonly onFailure?: (error: unknown, attempt: number, retryInMs: number) => void;
}

/**
 * The one loop that brings a replica back into the membership set after its
 * lease was lost.
 *
 * `trigger()` while the loop runs is a no-op, so however many signals a lost
 * lease produces (its `lost` event, a failed put) there is at most one attempt
 * in flight, and failed attempts are spaced by jittered exponential backoff:
 * an etcd outage of any length costs about log2(outage / initial delay) +
 * outage / max delay attempts, and one put when etcd is back.
 *
 * @example
 * const loop = new RejoinLoop({ attempt: () => store.join() });
 * lease.on("lost", () => loop.trigger());
 * // on shutdown
 * loop.close();
 */
export class RejoinLoop {
  private readonly backoff: IBackoffFactory<unknown>;
  private running = false;
  private closed = false;
  private sleeping: { readonly timer: NodeJS.Timeout; readonly wake: () => void } | undefined;

  constructor(private readonly options: RejoinLoopOptions) {
    this.backoff = options.backoff ?? new ExponentialBackoff({ initialDelay: 250, maxDelay: 5000 });
  }

  /** True while an attempt is in flight or the loop waits for the next one. */
  get active(): boolean {
    return this.running;
  }

  /** Starts the loop unless it is already running or closed. */
  trigger(): void {
    if (this.running || this.closed) return;
    this.running = true;
    void this.run();
  }

  /** Stops the loop: no further attempt starts; a pending wait ends at once. */
  close(): void {
    this.closed = true;
    const sleeping = this.sleeping;
    this.sleeping = undefined;
    if (sleeping) {
      clearTimeout(sleeping.timer);
      sleeping.wake();
    }
  }

  private async run(): Promise<void> {
    let backoff: IBackoff<unknown> | undefined;
    try {
      for (let attempt = 1; !this.closed; attempt++) {
        try {
          await this.options.attempt();
          return;
        } catch (err) {
          if (this.closed) return;
          backoff = (backoff ?? this.backoff).next(undefined);
          try {
            this.options.onFailure?.(err, attempt, backoff.duration);
          } catch {
            // An observer's fault must not end the loop.
          }
          await this.sleep(backoff.duration);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.sleeping = { timer, wake: resolve };
    });
  }
}
