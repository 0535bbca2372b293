import type { ProbeResult, ProbeTarget } from "./http-probe.js";

/** How a {@link ProbeScheduler} paces and bounds probes; see SPEC 4.2. */
export interface ProbeSchedulerOptions {
  /** Each target is probed once per interval. */
  intervalMs: number;
  /** Most probes in flight at once. */
  maxConcurrent: number;
  /** Most due probes handled per timer tick; the rest wait for the next macrotask. */
  batchSize: number;
  /** Runs one probe; must settle soon after `signal` aborts. */
  probe: (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;
  /** Receives every result of a target still scheduled; may throw without harm. */
  onResult: (target: ProbeTarget, result: ProbeResult) => void;
  /** Receives errors thrown by `onResult` (or `probe`'s unexpected ones). */
  onError?: (err: unknown) => void;
  /**
   * A target whose last this-many probes failed (found unhealthy) is
   * re-probed within a share of the slots (half, one at least), after the
   * others' probes: dead targets each hold a slot for a whole timeout, and
   * their re-probes must not delay noticing that a live one died. Default 1.
   */
  yieldAfterFailures?: number;
  /** A new target's first probe comes after a random delay in [0, min(this, intervalMs)]; default 1000. */
  firstProbeMaxDelayMs?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  /** Jitter source in [0, 1); default `Math.random`. */
  random?: () => number;
}
