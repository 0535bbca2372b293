import { afterPendingIo, stalledFor } from "../util/late-timers.js";

/** Throws unless `timeoutMs` can bound a probe: a positive, finite number of milliseconds. */
export function assertProbeTimeout(timeoutMs: number): void {
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
}

/** Something an {@link ProbeAttempt} can cancel: the exchange in progress. */
export interface Cancellable {
  cancel(reason: Error): void;
}

/**
 * One probe's deadline and its caller's abort, folded into one cancel reason.
 *
 * At a thaw (SIGSTOP, a paused VM, a long stall) the timers run before any
 * socket is read, and an answer that came meanwhile waits unread. So the
 * deadline cancels only once the I/O waiting then has been read, and one
 * that runs out late is first extended, once, by as long as it was late; a
 * target that is silent still times out.
 *
 * The deadline is a plain timer per probe. The caller's signal is not given a
 * listener per probe: {@link AbortFanout} keeps one listener per signal for
 * as long as the signal lives, and attempts join and leave a set, which is
 * far cheaper than `EventTarget` add/remove on every probe (the scheduler
 * reuses one signal per target across probes).
 */
export class ProbeAttempt {
  reason: string | undefined;
  #current: Cancellable | undefined;
  #timer: NodeJS.Timeout;
  #disposed = false;
  readonly #members: Set<ProbeAttempt> | undefined;

  constructor(timeoutMs: number, signal: AbortSignal | undefined, fanout: AbortFanout) {
    const dueAt = performance.now() + timeoutMs;
    const timedOut = (): void => afterPendingIo(() => {
      if (!this.#disposed) this.cancel(`timed out after ${timeoutMs} ms`);
    });
    this.#timer = setTimeout(() => {
      const stalled = stalledFor(dueAt);
      if (stalled === 0) return timedOut();
      this.#timer = setTimeout(timedOut, stalled);
      this.#timer.unref();
    }, timeoutMs);
    this.#timer.unref();
    this.#members = signal ? fanout.join(signal, this) : undefined;
  }

  /** Makes `exchange` the one to cancel; cancels it at once if the attempt is already over. */
  track(exchange: Cancellable): void {
    this.#current = exchange;
    if (this.reason !== undefined) exchange.cancel(new Error(this.reason));
  }

  /** Ends the attempt: no timer or abort can reach it afterwards. */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#members?.delete(this);
  }

  /** Cancels with `reason` unless already cancelled; the first reason wins. */
  cancel(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.#current?.cancel(new Error(reason));
  }
}

/**
 * Relays each signal's abort to the attempts currently using it, with one
 * `abort` listener per signal ever. Held weakly: a signal that is dropped
 * takes its set and listener with it.
 */
export class AbortFanout {
  readonly #sets = new WeakMap<AbortSignal, Set<ProbeAttempt>>();

  /** Adds `attempt` to `signal`'s set (cancelling it now if already aborted); returns the set to leave. */
  join(signal: AbortSignal, attempt: ProbeAttempt): Set<ProbeAttempt> {
    let set = this.#sets.get(signal);
    if (!set) {
      const members = new Set<ProbeAttempt>();
      set = members;
      this.#sets.set(signal, members);
      signal.addEventListener("abort", () => {
        for (const member of members) member.cancel("aborted");
      }, { once: true });
    }
    set.add(attempt);
    if (signal.aborted) attempt.cancel("aborted");
    return set;
  }
}
