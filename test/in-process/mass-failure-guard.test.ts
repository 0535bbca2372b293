import { describe, expect, it } from "vitest";
import { MassFailureGuard, type MassFailureGuardOptions } from "../../src/registry/mass-failure-guard.js";

const INTERVAL = 1000;
const DEFAULTS: MassFailureGuardOptions = { thresholdPercent: 60, minInstances: 10, minServiceTypes: 2, intervalMs: INTERVAL };

/** A guard tracking `perType` instances of each of `types` ("a-0", "a-1", ..., "b-0", ...). */
function guardOf(types: string[], perType: number, options: Partial<MassFailureGuardOptions> = {}): { guard: MassFailureGuard; ids: string[] } {
  const guard = new MassFailureGuard({ ...DEFAULTS, ...options });
  const ids: string[] = [];
  for (const type of types) {
    for (let i = 0; i < perType; i++) {
      guard.track(`${type}-${i}`, type);
      ids.push(`${type}-${i}`);
    }
  }
  return { guard, ids };
}

/** Records a result for each id at `at`, answering the state changes seen. */
function recordAll(guard: MassFailureGuard, ids: string[], passed: boolean, at: number): string[] {
  return ids.map((id) => guard.record(id, passed, at)).filter((m): m is "entered" | "left" => m !== undefined);
}

describe("MassFailureGuard", () => {
  it("trips once more than the threshold of probed instances start failing within one interval, across two types", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    // The others pass within the same interval: 12 of the 20 heard from is 60 %, not more than the threshold.
    expect(recordAll(guard, ids.slice(12), true, 50)).toEqual([]);
    expect(recordAll(guard, ids.slice(0, 12), false, 100)).toEqual([]);
    expect(guard.suspected).toBe(false);
    expect(guard.record(ids[12] as string, false, 200)).toBe("entered");
    expect(guard.suspected).toBe(true);
    expect(guard.entries).toBe(1);
    expect(guard.snapshot()).toEqual({ failing: 13, probed: 20, serviceTypes: 2 });
  });

  it("does not trip on one service type, on fewer than minInstances, or when off", () => {
    const oneType = guardOf(["a"], 15);
    oneType.guard.track("b-0", "b");
    recordAll(oneType.guard, oneType.ids, false, 100); // 15 of 16 failing, all of one type
    expect(oneType.guard.suspected).toBe(false);

    const fewTypes = guardOf(["a", "b"], 10, { minServiceTypes: 3 });
    recordAll(fewTypes.guard, fewTypes.ids, false, 100);
    expect(fewTypes.guard.suspected).toBe(false);

    const small = guardOf(["a", "b"], 4); // 8 instances: never 10 failing
    recordAll(small.guard, small.ids, false, 100);
    expect(small.guard.suspected).toBe(false);

    const off = guardOf(["a", "b"], 10, { thresholdPercent: 0 });
    recordAll(off.guard, off.ids, false, 100);
    expect(off.guard.suspected).toBe(false);
  });

  it("counts only failures that began within the last interval: long-dead instances are no new fault", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    // Eight instances have been failing for a long time (DEREGISTER_AFTER_MS=0 keeps them).
    recordAll(guard, ids.slice(0, 8), false, 0);
    // Five more fail now: 13 failing, but only 5 began within the interval.
    expect(recordAll(guard, ids.slice(8, 13), false, 5 * INTERVAL)).toEqual([]);
    expect(guard.suspected).toBe(false);
  });

  it("leaves only after the condition has been false for two whole intervals", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    expect(recordAll(guard, ids, false, 100)).toEqual(["entered"]);
    // Still suspected however long the fault lasts: failures do not age out meanwhile.
    expect(recordAll(guard, ids, false, 100 + 5 * INTERVAL)).toEqual([]);
    const back = 100 + 6 * INTERVAL;
    expect(recordAll(guard, ids, true, back)).toEqual([]);
    expect(guard.record(ids[0] as string, true, back + 2 * INTERVAL - 1)).toBeUndefined();
    // A relapse within the two intervals starts the wait again.
    expect(recordAll(guard, ids.slice(0, 13), false, back + INTERVAL)).toEqual([]);
    expect(recordAll(guard, ids.slice(0, 13), true, back + 2 * INTERVAL)).toEqual([]);
    expect(guard.judge(back + 4 * INTERVAL - 1)).toBeUndefined();
    expect(guard.judge(back + 4 * INTERVAL)).toBe("left");
    expect(guard.suspected).toBe(false);
  });

  it("leaves when the failing instances are no longer probed here (removed, or another replica's)", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    recordAll(guard, ids, false, 0);
    for (const id of ids.slice(0, 15)) guard.untrack(id);
    expect(guard.judge(1)).toBeUndefined();
    expect(guard.judge(1 + 2 * INTERVAL)).toBe("left");
  });

  it("holds a failure while the interval can still turn into a fault, and releases it once enough instances passed since", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    guard.record("a-0", false, 0);
    expect(guard.holdFailure(true)).toBe(true);
    expect(guard.mayCommitHeld()).toBe(false);
    // 20 probed, threshold 60 %: once 8 others passed, at most 12 (60 %) can be failing.
    for (const id of ids.slice(1, 8)) guard.record(id, true, 10);
    expect(guard.mayCommitHeld()).toBe(false);
    guard.record("a-8", true, 10);
    expect(guard.mayCommitHeld()).toBe(true);
  });

  it("counts the evidence from the newest held instance: passes before a failure do not clear it", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    guard.record("a-0", false, 0);
    guard.holdFailure(true);
    for (const id of ids.slice(2, 9)) guard.record(id, true, 10);
    guard.record("a-1", false, 20);
    expect(guard.holdFailure(true)).toBe(true);
    guard.record("a-9", true, 30); // would make eight since a-0, but only one since a-1
    expect(guard.mayCommitHeld()).toBe(false);
    // A repeated failure of an instance already held does not restart the count.
    guard.record("a-1", false, 40);
    expect(guard.holdFailure(false)).toBe(true);
    for (const id of ids.slice(10, 17)) guard.record(id, true, 50);
    expect(guard.mayCommitHeld()).toBe(true);
  });

  it("never holds where it could not trip: too few instances or types probed here, or off", () => {
    expect(guardOf(["a", "b"], 4).guard.holdFailure(true)).toBe(false);
    expect(guardOf(["a"], 20).guard.holdFailure(true)).toBe(false);
    expect(guardOf(["a", "b"], 10, { thresholdPercent: 0 }).guard.holdFailure(true)).toBe(false);
  });

  it("releases nothing while suspected", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    guard.record("a-0", false, 0);
    guard.holdFailure(true);
    recordAll(guard, ids, false, 10);
    expect(guard.suspected).toBe(true);
    expect(guard.mayCommitHeld()).toBe(false);
  });

  it("trips when blackholed probes time out: fewer results than instances come back in an interval, all failures", () => {
    // 100 instances; each probe now holds a slot of the bounded prober for its whole timeout, so only
    // 20 results come back in the next interval, every one a failure.
    const { guard, ids } = guardOf(["a", "b"], 50);
    expect(recordAll(guard, ids, true, 0)).toEqual([]);
    const slow = [...ids.slice(0, 10), ...ids.slice(50, 60)];
    expect(recordAll(guard, slow.slice(0, 10), false, INTERVAL + 100)).toEqual([]); // one type only so far
    expect(recordAll(guard, slow.slice(10), false, INTERVAL + 600)).toEqual(["entered"]);
  });

  it("does not count an instance that was UNHEALTHY already (a restart probing a dead fleet afresh)", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    for (const id of ids.slice(0, 15)) expect(guard.record(id, false, 100, false)).toBeUndefined();
    expect(guard.suspected).toBe(false);
    expect(guard.snapshot().failing).toBe(0);
  });

  it("counts an instance heard from once, however it was untracked and tracked again or the clock stepped back", () => {
    const { guard, ids } = guardOf(["a", "b"], 10);
    // a-0 is untracked and tracked again (moved to another replica and back) within one millisecond.
    guard.record("a-0", true, 100);
    guard.untrack("a-0");
    guard.track("a-0", "a");
    guard.record("a-0", true, 100);
    // The wall clock steps back a second, then results come in.
    for (const id of ids.slice(1)) guard.record(id, true, 50);
    // All 20 were heard from within the window: 13 failures are 65 %, more than 60 %; 12 are not.
    expect(recordAll(guard, ids.slice(0, 12), false, 200)).toEqual([]);
    expect(guard.record(ids[12] as string, false, 200)).toBe("entered");
  });
});
