import { afterPendingIo, stalledFor } from "../util/late-timers.js";
import type { HealthCheckSpec } from "./types.js";

/** Why a reported check failed, in the words a watcher sees. */
export const TTL_EXPIRED = "ttl expired";
export const NO_SESSION = "no session open";

interface Tracked {
  readonly check: HealthCheckSpec;
  /** A session is open for it (session checks): no failure is due. */
  held: boolean;
  /** Set while a failure is due: no heartbeat or session came in time. */
  timer: NodeJS.Timeout | undefined;
  /** The timer is the repeat after a failure, not the first wait. */
  repeating: boolean;
  /** When the first wait runs out (`performance.now()`). */
  dueAt: number;
  /** The first wait ran out late and was extended once (see `due`). */
  extended: boolean;
}

/**
 * The clocks of instances that report their own liveness instead of being
 * probed: `ttl` instances, which must heartbeat at least every `ttlMs`, and
 * `session` instances, alive while a KeepAlive stream is open.
 *
 * It only says when a reported check fails; what a failure changes (the
 * thresholds, expiry) is decided as for a failed probe. A missing report
 * keeps failing, once a ttl (ttl checks) or an interval (sessions), so an
 * instance that stays silent is removed after `deregisterAfter` as a probed
 * one is. A session instance with no stream open fails first an interval
 * after it was tracked (registered, or loaded at start-up) or its last
 * stream ended; the end of a stream is reported by the registry at once.
 * Where the sessions are held is the registry's business: it says when one
 * is open (`hold`) and when the last one ended (`release`). Timers do not
 * keep the process alive.
 */
export class ReportedLiveness {
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    /** How often a session instance with no stream open fails (ms). */
    private readonly sessionRetryMs: number,
    private readonly fail: (id: string, reason: string) => void,
  ) {}

  /** Starts the clock of an instance checked by reports (no-op when already tracked). */
  track(id: string, check: HealthCheckSpec, held = false): void {
    if (this.tracked.has(id)) return;
    const entry: Tracked = { check, held, timer: undefined, repeating: false, dueAt: 0, extended: false };
    this.tracked.set(id, entry);
    if (!held) this.arm(id, entry);
  }

  /** Stops it (removed, or now another replica's). */
  untrack(id: string): void {
    const entry = this.tracked.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.tracked.delete(id);
  }

  /** A heartbeat came: the next failure is due a ttl from now. */
  heartbeat(id: string): void {
    const entry = this.tracked.get(id);
    if (!entry) return;
    // refresh() re-arms the timer for its original delay, the ttl, without a new timer per heartbeat.
    if (entry.timer && !entry.repeating && !entry.extended) {
      entry.timer.refresh();
      entry.dueAt = performance.now() + firstWait(entry.check, this.sessionRetryMs);
    } else if (!entry.held) this.arm(id, entry);
  }

  /** A session for the instance is open (here or on another replica): no failure is due while it is. */
  hold(id: string): void {
    const entry = this.tracked.get(id);
    if (!entry || entry.held) return;
    entry.held = true;
    clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  /** Its last session ended: failures are due again, the first an interval from now. */
  release(id: string): void {
    const entry = this.tracked.get(id);
    if (!entry || !entry.held) return;
    entry.held = false;
    this.arm(id, entry);
  }

  /** Stops every clock (shutdown). */
  clear(): void {
    for (const entry of this.tracked.values()) clearTimeout(entry.timer);
    this.tracked.clear();
  }

  /**
   * Waits a ttl (or an interval, for a session) for the first failure; then
   * fails again every ttl or interval, whichever is longer: a dead instance
   * with a short ttl does not flood watchers of every check with failures.
   */
  private arm(id: string, entry: Tracked): void {
    const first = firstWait(entry.check, this.sessionRetryMs);
    clearTimeout(entry.timer);
    entry.repeating = entry.extended = false;
    entry.dueAt = performance.now() + first;
    entry.timer = setTimeout(() => this.due(id, entry), first);
    entry.timer.unref();
  }

  /**
   * The first wait ran out. At the thaw of a frozen process (or the end of a
   * long stall) the timers run before any socket is read, and the reports
   * sent meanwhile still wait there, unread. So the verdict waits until the
   * I/O waiting now has been read; and a wait that ran out late (the
   * registry was not listening for that long) is first extended, once, by
   * as long as it was late, giving the instance's next reports time to
   * come. Once only, so that a loop that stays behind does not keep a
   * silent instance from failing.
   */
  private due(id: string, entry: Tracked): void {
    if (this.tracked.get(id) !== entry) return;
    const stalled = entry.extended ? 0 : stalledFor(entry.dueAt);
    if (stalled > 0) {
      entry.extended = true;
      entry.timer = setTimeout(() => this.due(id, entry), stalled);
      entry.timer.unref();
      return;
    }
    const { dueAt } = entry;
    afterPendingIo(() => {
      // A report read meanwhile moved the due time (or a session opened, or the instance went).
      if (this.tracked.get(id) !== entry || entry.held || entry.repeating || entry.dueAt !== dueAt) return;
      this.failDue(id, entry);
    });
  }

  /** No report came in time: fails the instance now, and again every ttl or interval while none comes. */
  private failDue(id: string, entry: Tracked): void {
    const ttl = entry.check.kind === "ttl";
    const reason = ttl ? TTL_EXPIRED : NO_SESSION;
    entry.repeating = true;
    entry.extended = false;
    entry.timer = setInterval(() => {
      if (this.tracked.get(id) === entry) this.fail(id, reason);
    }, Math.max(firstWait(entry.check, this.sessionRetryMs), this.sessionRetryMs));
    entry.timer.unref();
    this.fail(id, reason);
  }
}

/** The first wait for a report: a ttl for a ttl check, the retry interval for a session. */
function firstWait(check: HealthCheckSpec, sessionRetryMs: number): number {
  return check.kind === "ttl" ? check.ttlMs : sessionRetryMs;
}
