import type { Mutation } from "./registry-store.js";
import type { Health, StoredInstance } from "./types.js";

/** Options of {@link HealthStatusHandler} (SPEC 4.2). */
export interface HealthStatusOptions {
  /** Failures in a row that turn a healthy instance UNHEALTHY. */
  readonly unhealthyThreshold: number;
  /** Passes in a row that turn an unhealthy instance HEALTHY again. */
  readonly healthyThreshold: number;
  /** How long an instance may stay UNHEALTHY before a failing probe removes it (ms); 0 never removes. */
  readonly deregisterAfter: number;
}

/**
 * When expiry may count from for a service type: `undefined` while it is
 * paused (the type is in panic, see `TypePanic`), else the time it last
 * resumed after a pause (epoch ms; 0 if never paused). An instance expires
 * once it has been UNHEALTHY for `deregisterAfter` counted from the later of
 * its last change and that time: a pause gives every instance of the type a
 * whole `deregisterAfter` again, rather than removing at once every instance
 * whose time ran out while expiry was paused.
 */
export type ExpiryClock = (serviceType: string) => number | undefined;

/**
 * Decides what a probe result changes (Consul's StatusHandler): a health
 * transition once a threshold of consecutive results is reached, a removal
 * once an instance has been UNHEALTHY for `deregisterAfter`, or nothing.
 * Streaks live in memory only; a restart starts them afresh.
 */
export class HealthStatusHandler {
  /** Consecutive results of the same kind: positive passes, negative failures. */
  private readonly streaks = new Map<string, number>();

  constructor(
    private readonly options: HealthStatusOptions,
    private readonly expiryFrom: ExpiryClock = () => 0,
  ) {}

  /**
   * Records one probe result for `instance` (as the table holds it) at `now`
   * (epoch ms), and answers the mutation it calls for, if any.
   */
  record(instance: StoredInstance, passed: boolean, now: number, failureReason?: string): Mutation | undefined {
    const next = this.nextHealth(instance.id, instance.health, passed);
    if (next) return { op: "setHealth", id: instance.id, health: next, at: now, ...(failureReason ? { failureReason } : {}) };
    const after = this.options.deregisterAfter;
    if (instance.health !== "unhealthy" || passed || after === 0) return undefined;
    const resumed = this.expiryFrom(instance.serviceType);
    if (resumed === undefined || now - Math.max(instance.updatedAt, resumed) < after) return undefined;
    return { op: "remove", id: instance.id, reason: "health_check_expired", at: now };
  }

  /**
   * A result that decides on its own, whatever the thresholds (a session
   * opening or ending): the transition it calls for, if the instance is not
   * already so, with the streak started afresh from it.
   */
  settle(instance: StoredInstance, passed: boolean, now: number, failureReason?: string): Mutation | undefined {
    this.streaks.set(instance.id, passed ? 1 : -1);
    const next: Health = passed ? "healthy" : "unhealthy";
    if (instance.health === next) return undefined;
    return { op: "setHealth", id: instance.id, health: next, at: now, ...(failureReason ? { failureReason } : {}) };
  }

  /** Drops an instance's streak (removed, or now probed by another replica). */
  forget(id: string): void {
    this.streaks.delete(id);
  }

  /** Drops every streak: results seen meanwhile are not to be trusted (a suspected network fault). */
  forgetAll(): void {
    this.streaks.clear();
  }

  private nextHealth(id: string, current: Health, passed: boolean): Health | undefined {
    const previous = this.streaks.get(id) ?? 0;
    const streak = passed ? Math.max(previous, 0) + 1 : Math.min(previous, 0) - 1;
    this.streaks.set(id, streak);
    if (passed && current === "unhealthy" && streak >= this.options.healthyThreshold) return "healthy";
    if (!passed && current === "healthy" && -streak >= this.options.unhealthyThreshold) return "unhealthy";
    return undefined;
  }
}
