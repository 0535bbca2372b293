import { describe, expect, it } from "vitest";
import { EventHistory } from "../../src/registry/event-history.js";
import type { Change } from "../../src/registry/types.js";
import { registered } from "./watch-source.js";

function revisions(changes: readonly Change[] | undefined): number[] | undefined {
  return changes?.map((c) => c.revision);
}

function filled(capacity: number, revs: number[], floor = 0): EventHistory {
  const history = new EventHistory(capacity, { changes: [], floor });
  for (const r of revs) history.append(registered(r, "a"));
  return history;
}

describe("EventHistory", () => {
  it("refuses a capacity below one or not whole", () => {
    expect(() => new EventHistory(0, { changes: [], floor: 0 })).toThrow(RangeError);
    expect(() => new EventHistory(2.5, { changes: [], floor: 0 })).toThrow(RangeError);
    expect(new EventHistory(1, { changes: [], floor: 0 }).capacity).toBe(1);
  });

  it("starts from the loaded changes and floor", () => {
    const history = new EventHistory(10, { changes: [registered(8, "a"), registered(9, "b")], floor: 7 });
    expect(history.floor).toBe(7);
    expect(revisions(history.after(7, 10))).toEqual([8, 9]);
    expect(history.covers(6)).toBe(false);
  });

  it("loaded changes beyond its capacity move the floor up", () => {
    const history = new EventHistory(2, { changes: [1, 2, 3, 4].map((r) => registered(r, "a")), floor: 0 });
    expect(history.floor).toBe(2);
    expect(revisions(history.after(2, 10))).toEqual([3, 4]);
  });

  it("holds at most its capacity, the floor following the newest eviction", () => {
    const history = filled(3, [1, 2, 3]);
    expect(history.floor).toBe(0);
    history.append(registered(4, "a"));
    expect(history.floor).toBe(1);
    history.append(registered(5, "a"));
    expect(history.floor).toBe(2);
    expect(revisions(history.after(2, 100))).toEqual([3, 4, 5]);
  });

  it("covers a revision at or above its floor, not below", () => {
    const history = filled(3, [1, 2, 3, 4, 5]);
    expect(history.covers(1)).toBe(false);
    expect(history.covers(2)).toBe(true);
    expect(history.covers(5)).toBe(true);
    expect(history.after(1, 10)).toBeUndefined();
  });

  it("answers the changes strictly after a revision, oldest first, up to the limit", () => {
    const history = filled(10, [1, 2, 3, 4, 5]);
    expect(revisions(history.after(0, 10))).toEqual([1, 2, 3, 4, 5]);
    expect(revisions(history.after(2, 2))).toEqual([3, 4]);
    expect(revisions(history.after(4, 10))).toEqual([5]);
    expect(history.after(5, 10)).toEqual([]); // up to date
    expect(history.after(9, 10)).toEqual([]); // past the newest: nothing held after it
    expect(history.after(0, 0)).toEqual([]);
  });

  it("finds revisions that are not contiguous (a shared store counts other keys too)", () => {
    const history = filled(10, [10, 20, 30], 5);
    expect(revisions(history.after(5, 10))).toEqual([10, 20, 30]);
    expect(revisions(history.after(15, 10))).toEqual([20, 30]);
    expect(revisions(history.after(20, 10))).toEqual([30]);
    expect(revisions(history.after(29, 1))).toEqual([30]);
    expect(history.after(4, 10)).toBeUndefined();
  });

  it("keeps its order across the ring's wrap-around", () => {
    const history = filled(4, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(history.floor).toBe(7);
    expect(revisions(history.after(7, 10))).toEqual([8, 9, 10, 11]);
    expect(revisions(history.after(9, 10))).toEqual([10, 11]);
  });

  it("with capacity one, holds only the newest change", () => {
    const history = filled(1, [3, 4]);
    expect(history.floor).toBe(3);
    expect(revisions(history.after(3, 5))).toEqual([4]);
    expect(history.after(2, 5)).toBeUndefined();
  });
});
