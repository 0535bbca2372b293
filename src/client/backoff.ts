/** Shape of a retry schedule: jittered exponential backoff. */
export interface BackoffOptions {
  /** First delay, before jitter. Default 250 ms. */
  readonly initialMs?: number;
  /** Cap on the delay, before jitter. Default 5000 ms. */
  readonly maxMs?: number;
  /** Growth per attempt. Default 2. */
  readonly multiplier?: number;
  /**
   * Fraction of each delay that is random: the delay is drawn uniformly from
   * `[d * (1 - jitter), d]`. Default 0.5; 1 is "full jitter".
   */
  readonly jitter?: number;
  /** Random source in [0, 1); inject a fixed one in tests. Default Math.random. */
  readonly random?: () => number;
}

/**
 * Jittered exponential backoff: `next()` gives the delay before the next
 * attempt, `reset()` starts over after a success. The jitter spreads a fleet
 * of clients retrying against a restarted registry, so they do not stampede
 * it in lockstep.
 *
 * @example
 * const backoff = new Backoff({ initialMs: 100, maxMs: 2000 });
 * for (;;) { try { return await attempt(); } catch { await sleep(backoff.next()); } }
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempts = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = Math.max(0, options.initialMs ?? 250);
    this.maxMs = Math.max(this.initialMs, options.maxMs ?? 5000);
    this.multiplier = Math.max(1, options.multiplier ?? 2);
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
    this.random = options.random ?? Math.random;
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** Delay in ms before the next attempt; grows with every call. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.multiplier ** Math.min(this.attempts, 64));
    this.attempts++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** Back to the initial delay (call after a success). */
  reset(): void {
    this.attempts = 0;
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (it never rejects).
 * With `unref`, the timer does not keep the process alive.
 */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (unref) timer.unref();
    signal?.addEventListener("abort", done, { once: true });
  });
}
