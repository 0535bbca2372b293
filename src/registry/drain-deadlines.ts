import { MAX_TIMER_MS } from "../health/probe-scheduler.js";

/**
 * One timer per draining instance this process looks after: when an instance
 * is still draining `timeoutMs` after it was marked, `expire(id)` is called
 * (the registry removes it, reason `drain_expired`). Timers do not keep the
 * process alive; a restarted registry re-arms them from `drainingSince`.
 */
export class DrainDeadlines {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    /** How long an instance may drain, ms; 0 never removes one. */
    private readonly timeoutMs: number,
    private readonly now: () => number,
    private readonly expire: (id: string) => void,
  ) {}

  /** Arms (or re-arms) the deadline of an instance marked draining at `drainingSince` (epoch ms). */
  arm(id: string, drainingSince: number): void {
    if (this.timeoutMs === 0) return;
    this.disarm(id);
    this.wait(id, drainingSince + this.timeoutMs);
  }

  /** Calls `expire(id)` again in `ms` (its removal could not be made now). */
  retryIn(id: string, ms: number): void {
    this.arm(id, this.now() + ms - this.timeoutMs);
  }

  /** Forgets an instance's deadline (removed, or now looked after by another replica). */
  disarm(id: string): void {
    const timer = this.timers.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(id);
  }

  /** Waits until `deadline` (epoch ms), in steps a timer can hold, then expires the instance. */
  private wait(id: string, deadline: number): void {
    const left = Math.max(0, deadline - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(id);
      if (left > MAX_TIMER_MS) this.wait(id, deadline);
      else this.expire(id);
    }, Math.min(left, MAX_TIMER_MS));
    timer.unref();
    this.timers.set(id, timer);
  }

  /** Stops every timer (shutdown). */
  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
