import type { Health } from "./types.js";

/**
 * Applies the consecutive-result thresholds of SPEC 4.2 to raw probe results:
 * an instance turns UNHEALTHY after `unhealthyThreshold` failures in a row and
 * HEALTHY again after `healthyThreshold` passes in a row. Counters live in
 * memory only; a restart starts them afresh.
 */
export class HealthThresholds {
  /** Consecutive results of the same kind: positive passes, negative failures. */
  private readonly streaks = new Map<string, number>();

  constructor(
    private readonly unhealthyThreshold: number,
    private readonly healthyThreshold: number,
  ) {}

  /** Records a probe result; returns the health to move to, if the threshold was reached. */
  record(id: string, current: Health, passed: boolean): Health | undefined {
    const previous = this.streaks.get(id) ?? 0;
    const streak = passed ? Math.max(previous, 0) + 1 : Math.min(previous, 0) - 1;
    this.streaks.set(id, streak);
    if (passed && current === "unhealthy" && streak >= this.healthyThreshold) return "healthy";
    if (!passed && current === "healthy" && -streak >= this.unhealthyThreshold) return "unhealthy";
    return undefined;
  }

  forget(id: string): void {
    this.streaks.delete(id);
  }
}
