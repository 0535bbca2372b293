/** Options of `EtcdLiveness`. */
export interface EtcdLivenessOptions {
  /** Told once when no check has been answered for `staleAfterMs`. */
  readonly onLost: (reason: string) => void;
  /** Told once at the first answered check after `onLost`. */
  readonly onRegained: () => void;
  /** No check answered for this long means etcd is lost, ms. Default {@link DEFAULT_STALE_AFTER_MS}. */
  readonly staleAfterMs?: number;
}

/**
 * How long etcd may go unanswered before a replica counts it lost, ms. No
 * member answers a linearizable read while etcd elects a leader, so the
 * window outlasts an election at etcd's default timing (an election timeout
 * randomised up to twice its 1 s default) plus one check interval: an
 * election alone must not take replicas out and end their watch streams.
 */
export const DEFAULT_STALE_AFTER_MS = 3000;

/**
 * Tells a replica that it has lost etcd without waiting for a client to
 * notice: a partition that drops packets (no RST) never breaks the etcd
 * client's connection, so its watch just goes quiet and looks like a quiet
 * registry.
 *
 * The checks are linearizable reads of each member (`EtcdMembers`), which
 * etcd answers only after its leader confirmed it still leads a quorum: any
 * member answering is etcd answering. When none has been answered for
 * `staleAfterMs`, `onLost` fires (a timer re-armed at each answer, so loss
 * is reported `staleAfterMs` after the last answer, whatever the checks'
 * interval). The first answer after that fires `onRegained`: etcd answers
 * again, though the replica may still be behind it (the store catches up
 * before it serves).
 *
 * @example
 * const liveness = new EtcdLiveness({ onLost: (why) => log.error(why), onRegained: () => log.info("etcd answers again") });
 * liveness.start();
 * // from each member's check (EtcdMembers' onCheckAnswered / onCheckFailed):
 * liveness.answered();
 * liveness.failed("http://etcd-2:2379: deadline exceeded");
 */
export class EtcdLiveness {
  private readonly staleAfterMs: number;
  private running = false;
  private lost = false;
  private lastError = "no answer yet";
  private staleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: EtcdLivenessOptions) {
    this.staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  }

  /** True from `onLost` until the next answered check. */
  get isLost(): boolean {
    return this.lost;
  }

  /** Starts the window; etcd counts as reachable now (the caller just read from it). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.armStale();
  }

  /** A check was answered. */
  answered(): void {
    if (!this.running) return;
    this.armStale();
    if (!this.lost) return;
    this.lost = false;
    this.options.onRegained();
  }

  /** A check failed: `reason` is what a loss will name. */
  failed(reason: string): void {
    this.lastError = reason;
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.staleTimer);
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
