/** Options of {@link MassFailureGuard}. */
export interface MassFailureGuardOptions {
  /** More than this percent of the probed instances failing trips the guard; 0 turns it off. */
  readonly thresholdPercent: number;
  /** Failing instances needed, beside the percentage. */
  readonly minInstances: number;
  /** Service types the failing instances must span. */
  readonly minServiceTypes: number;
  /** The probe interval: each instance is probed about once per interval. */
  readonly intervalMs: number;
}

/** What the guard saw when it changed state, for the log line. */
export interface MassFailureSnapshot {
  /** Instances counted as failing at once. */
  readonly failing: number;
  /** Instances this process probes. */
  readonly probed: number;
  /** Service types the failing instances belong to. */
  readonly serviceTypes: number;
}

interface Probed {
  readonly serviceType: string;
  /** When its current run of failures began (ms); undefined while its latest result passed, or before any. */
  failingSince: number | undefined;
  /** Counted in `failing` (see the class comment). */
  counted: boolean;
  /** The evidence window in which it last passed (0: none). */
  passedIn: number;
  /** When its latest result came (ms); undefined before any. */
  lastResultAt: number | undefined;
  /** Counted in `fresh`: its latest result came within the window. */
  fresh: boolean;
}

/**
 * Tells the registry's own network failing from its services failing: when
 * more than a threshold of every instance this process probes starts
 * failing within one probe interval, across several service types, the
 * likely cause is this process's side (a partition, a dead route, a full
 * conntrack table), not the services. The registry then suspects itself
 * (`suspected`): it commits no health transition and removes nothing until
 * the condition has been false for two whole intervals.
 *
 * "Starts failing within one interval" counts the instances whose current
 * run of failures began less than an interval ago, while they were HEALTHY;
 * instances that have been failing for longer or were UNHEALTHY already (a
 * service dead since yesterday, kept by DEREGISTER_AFTER_MS=0; a restart
 * probing them afresh) are not evidence of a new fault. The share is taken
 * of the instances whose latest result came within the last interval, not
 * of every instance probed: when the network blackholes probes, each one
 * holds a slot of the bounded prober for its whole timeout, and fewer
 * results than instances come back in an interval. While suspected, the
 * count stops ageing: it is every failure that began since the fault did,
 * so the fault is left only once most of those pass again.
 *
 * The default UNHEALTHY_THRESHOLD is 1: the first failure of an instance
 * would be committed at once, and a fault would be seen only after it had
 * turned 60 % of the fleet unhealthy. So a failure the registry would
 * commit is first held (`holdFailure`) while the guard can still trip, and
 * committed once the evidence since rules that out (`mayCommitHeld`): more
 * than `100 - threshold` percent of the probed instances have passed since
 * the newest held failure began to be held, so more than the threshold can
 * no longer be failing within that interval. With the defaults and a
 * healthy fleet that takes about 40 % of an interval; the caller commits a
 * held failure an interval after it was first held in any case (it can no
 * longer be part of a fault that starts within one interval). A registry
 * probing fewer instances or types than the guard needs never holds.
 *
 * Pure bookkeeping: no timers, no I/O, the caller passes the time.
 *
 * @example
 * const guard = new MassFailureGuard({ thresholdPercent: 60, minInstances: 10, minServiceTypes: 2, intervalMs: 5000 });
 * guard.track(instance.id, instance.serviceType);
 * if (guard.record(instance.id, result.ok, Date.now()) === "entered") log.error("suspecting our own network");
 */
export class MassFailureGuard {
  private readonly probed = new Map<string, Probed>();
  /** Probed instances per service type. */
  private readonly probedTypes = new Map<string, number>();
  /** Counted failures per service type. */
  private readonly failingTypes = new Map<string, number>();
  private failing = 0;
  /** Failure runs in the order they began, aged out lazily while not suspected. */
  private runs: { readonly id: string; readonly since: number }[] = [];
  private runsHead = 0;
  /** Probe results in the order they came, to age `fresh` out lazily (`p`: the tracking the result was for). */
  private results: { readonly p: Probed; readonly at: number }[] = [];
  private resultsHead = 0;
  /** Instances whose latest result came within the last window (those with `Probed.fresh`). */
  private fresh = 0;
  /** The latest time seen: the clock is read as never going back (a wall-clock step must not undo ageing). */
  private lastNow = -Infinity;
  private suspectedSince: number | undefined;
  /** While suspected: since when the condition has been false. */
  private calmSince: number | undefined;
  private entered = 0;
  /** The open evidence window (0: none) and the instances that passed in it. */
  private window = 0;
  private windows = 0;
  private passedInWindow = 0;

  constructor(private readonly options: MassFailureGuardOptions) {}

  /** True while the registry suspects its own network. */
  get suspected(): boolean {
    return this.suspectedSince !== undefined;
  }

  /** Times the guard has tripped since this process started. */
  get entries(): number {
    return this.entered;
  }

  /** Starts counting an instance this process probes. */
  track(id: string, serviceType: string): void {
    if (this.probed.has(id)) return;
    this.probed.set(id, { serviceType, failingSince: undefined, counted: false, passedIn: 0, lastResultAt: undefined, fresh: false });
    this.probedTypes.set(serviceType, (this.probedTypes.get(serviceType) ?? 0) + 1);
  }

  /** Stops counting an instance (removed, or now probed by another replica). */
  untrack(id: string): void {
    const p = this.probed.get(id);
    if (!p) return;
    if (p.counted) this.uncount(p);
    if (p.fresh) {
      p.fresh = false;
      this.fresh--;
    }
    if (this.window !== 0 && p.passedIn === this.window) this.passedInWindow--;
    this.probed.delete(id);
    const left = (this.probedTypes.get(p.serviceType) ?? 1) - 1;
    if (left === 0) this.probedTypes.delete(p.serviceType);
    else this.probedTypes.set(p.serviceType, left);
  }

  /**
   * Records one probe result at `now` (ms) of an instance the registry holds
   * as `healthy` (or not) and answers whether the guard changed state with it.
   */
  record(id: string, passed: boolean, at: number, healthy = true): "entered" | "left" | undefined {
    const p = this.probed.get(id);
    if (!p || this.options.thresholdPercent === 0) return undefined;
    const now = this.monotonic(at);
    this.ageResults(now);
    if (!p.fresh) {
      p.fresh = true;
      this.fresh++;
    }
    if (p.lastResultAt !== now) this.results.push({ p, at: now });
    p.lastResultAt = now;
    if (passed) {
      if (p.counted) this.uncount(p);
      p.failingSince = undefined;
      if (this.window !== 0 && p.passedIn !== this.window) {
        p.passedIn = this.window;
        this.passedInWindow++;
      }
    } else if (p.failingSince === undefined) {
      p.failingSince = now;
      // Only an instance that was serving is evidence: one UNHEALTHY already was failing before.
      if (healthy) {
        p.counted = true;
        this.failing++;
        this.failingTypes.set(p.serviceType, (this.failingTypes.get(p.serviceType) ?? 0) + 1);
        this.runs.push({ id, since: now });
        if (this.suspectedSince !== undefined && this.runs.length - this.runsHead > 2 * this.probed.size) this.compactRuns();
      }
    }
    return this.judge(now);
  }

  /**
   * Re-judges at `now` without a new result: a caller's timer lets a
   * suspected guard leave even when no probe comes (every instance removed).
   */
  judge(at: number): "entered" | "left" | undefined {
    if (this.options.thresholdPercent === 0) return undefined;
    const now = this.monotonic(at);
    this.ageResults(now);
    if (this.suspectedSince === undefined) {
      this.ageOut(now);
      if (!this.massFailing()) return undefined;
      this.suspectedSince = now;
      this.calmSince = undefined;
      this.window = 0;
      this.entered++;
      return "entered";
    }
    if (this.massFailing()) {
      this.calmSince = undefined;
      return undefined;
    }
    this.calmSince ??= now;
    if (now - this.calmSince < 2 * this.options.intervalMs) return undefined;
    this.suspectedSince = undefined;
    this.calmSince = undefined;
    this.ageOut(now);
    return "left";
  }

  /**
   * A failure the caller would commit (a health transition, an expiry) was
   * seen now: true when it must be held, because the guard could still trip
   * on the failures of this interval. A new instance held (`newlyHeld`)
   * opens a fresh evidence window: passes before its failure say nothing
   * about the interval after it.
   */
  holdFailure(newlyHeld: boolean): boolean {
    if (!this.canTrip()) return false;
    if (newlyHeld || this.window === 0) {
      this.window = ++this.windows;
      this.passedInWindow = 0;
    }
    return true;
  }

  /**
   * True once the held failures can be committed: enough instances passed
   * since the newest was held that more than the threshold can no longer be
   * failing in its interval (or the guard could not trip at all). Closes the
   * evidence window.
   */
  mayCommitHeld(): boolean {
    if (this.suspectedSince !== undefined) return false;
    const candidates = this.probed.size - this.passedInWindow;
    if (this.canTrip() && this.window !== 0 && this.overThreshold(candidates) && candidates >= this.options.minInstances) return false;
    this.window = 0;
    return true;
  }

  /** What the guard counts now, for log lines. */
  snapshot(): MassFailureSnapshot {
    return { failing: this.failing, probed: this.probed.size, serviceTypes: this.failingTypes.size };
  }

  /** Enough instances and types are probed here for the guard to trip at all. */
  private canTrip(): boolean {
    const { thresholdPercent, minInstances, minServiceTypes } = this.options;
    return thresholdPercent > 0 && this.probed.size >= minInstances && this.probedTypes.size >= minServiceTypes;
  }

  private massFailing(): boolean {
    const { thresholdPercent, minInstances, minServiceTypes } = this.options;
    // Of the instances heard from within the interval (see the class comment); never fewer than failing.
    const judged = Math.max(this.fresh, this.failing);
    return this.failing * 100 > thresholdPercent * judged && this.failing >= minInstances && this.failingTypes.size >= minServiceTypes;
  }

  private monotonic(at: number): number {
    if (at > this.lastNow) this.lastNow = at;
    return this.lastNow;
  }

  /** Stops counting as fresh the instances whose latest result is more than an interval old. */
  private ageResults(now: number): void {
    const from = now - this.options.intervalMs;
    while (this.resultsHead < this.results.length) {
      const r = this.results[this.resultsHead] as { p: Probed; at: number };
      if (r.at >= from) break;
      this.resultsHead++;
      // Its latest result, of the tracking still counted (not one untracked since): no longer fresh.
      if (r.p.fresh && r.p.lastResultAt === r.at) {
        r.p.fresh = false;
        this.fresh--;
      }
    }
    if (this.resultsHead >= 1024 && this.resultsHead * 2 >= this.results.length) {
      this.results = this.results.slice(this.resultsHead);
      this.resultsHead = 0;
    }
  }

  /** While suspected (runs do not age): keeps only each instance's current run, so flapping cannot grow the list. */
  private compactRuns(): void {
    this.runs = this.runs.slice(this.runsHead).filter((run) => {
      const p = this.probed.get(run.id);
      return p?.counted === true && p.failingSince === run.since;
    });
    this.runsHead = 0;
  }

  private overThreshold(count: number): boolean {
    return count * 100 > this.options.thresholdPercent * this.probed.size;
  }

  /** Stops counting failure runs that began more than an interval ago. */
  private ageOut(now: number): void {
    const horizon = now - this.options.intervalMs;
    while (this.runsHead < this.runs.length) {
      const run = this.runs[this.runsHead] as { id: string; since: number };
      if (run.since >= horizon) break;
      this.runsHead++;
      const p = this.probed.get(run.id);
      if (p?.counted && p.failingSince === run.since) this.uncount(p);
    }
    // Drop the consumed prefix now and then, so the array stays near the live runs.
    if (this.runsHead >= 1024 && this.runsHead * 2 >= this.runs.length) {
      this.runs = this.runs.slice(this.runsHead);
      this.runsHead = 0;
    }
  }

  private uncount(p: Probed): void {
    p.counted = false;
    this.failing--;
    const left = (this.failingTypes.get(p.serviceType) ?? 1) - 1;
    if (left === 0) this.failingTypes.delete(p.serviceType);
    else this.failingTypes.set(p.serviceType, left);
  }
}
