/** Options of `EtcdLiveness`. */
export interface EtcdLivenessOptions {
  /**
   * One linearizable read from etcd that must settle by `deadline` (epoch ms).
   * Resolves when etcd answered; rejects on any error, a missed deadline included.
   * Without it, checks are run elsewhere and reported through `answered()` and `failed()`.
   */
  readonly check?: (deadline: number) => Promise<unknown>;
  /** Told once when no check has succeeded for `staleAfterMs`. */
  readonly onLost: (reason: string) => void;
  /** Told once at the first successful check after `onLost`. */
  readonly onRegained: () => void;
  /** Pause between the end of one check and the start of the next, ms. Default 500. */
  readonly intervalMs?: number;
  /** Deadline of each check, ms. Default 1000. */
  readonly deadlineMs?: number;
  /** No successful check for this long means etcd is lost, ms. Default 2000. */
  readonly staleAfterMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Tells a replica that it has lost etcd without waiting for a client to
 * notice: a partition that drops packets (no RST) never breaks the etcd
 * client's connection, so its watch just goes quiet and looks like a quiet
 * registry.
 *
 * A check is a linearizable read, which etcd answers only after its leader
 * confirmed it still leads a quorum. One check runs at a time, each with a deadline; when none has
 * succeeded for `staleAfterMs`, `onLost` fires (a timer re-armed at each
 * success, so loss is reported `staleAfterMs` after the last answer, whatever
 * the interval). The first success after that fires `onRegained`: etcd
 * answers again, though the replica may still be behind it (the store
 * catches up before it serves).
 *
 * @example
 * const liveness = new EtcdLiveness({
 *   check: (deadline) => client.get("probe").options({ deadline }).exec(),
 *   onLost: (why) => log.error(why),
 *   onRegained: () => log.info("etcd answers again"),
 * });
 * liveness.start();
 */
export class EtcdLiveness {
  private readonly intervalMs: number;
  private readonly deadlineMs: number;
  private readonly staleAfterMs: number;
  private readonly now: () => number;
  private running = false;
  private lost = false;
  private lastError = "no answer yet";
  private nextTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: EtcdLivenessOptions) {
    this.intervalMs = options.intervalMs ?? 500;
    this.deadlineMs = options.deadlineMs ?? 1000;
    this.staleAfterMs = options.staleAfterMs ?? 2000;
    this.now = options.now ?? Date.now;
  }

  /** True from `onLost` until the next successful check. */
  get isLost(): boolean {
    return this.lost;
  }

  /** Starts checking; etcd counts as reachable now (the caller just read from it). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.armStale();
    this.runCheck();
  }

  /** A check run elsewhere was answered. */
  answered(): void {
    this.succeeded();
  }

  /** A check run elsewhere failed: `reason` is what a loss will name. */
  failed(reason: string): void {
    this.lastError = reason;
  }

  /** Stops checking; resolves once the check in flight has settled. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.nextTimer);
    clearTimeout(this.staleTimer);
    await this.inFlight;
  }

  private runCheck(): void {
    if (!this.running || !this.options.check) return;
    let check: Promise<unknown>;
    try {
      check = this.options.check(this.now() + this.deadlineMs);
    } catch (err) {
      check = Promise.reject(err);
    }
    this.inFlight = check.then(
      () => this.succeeded(),
      (err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
      },
    ).finally(() => {
      this.inFlight = undefined;
      if (this.running) this.nextTimer = setTimeout(() => this.runCheck(), this.intervalMs).unref();
    });
  }

  private succeeded(): void {
    if (!this.running) return;
    this.armStale();
    if (!this.lost) return;
    this.lost = false;
    this.options.onRegained();
  }

  private armStale(): void {
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => {
      if (!this.running || this.lost) return;
      this.lost = true;
      this.options.onLost(`no linearizable read from etcd succeeded for ${this.staleAfterMs} ms (last error: ${this.lastError})`);
    }, this.staleAfterMs).unref();
  }
}
