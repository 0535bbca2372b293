import { describe, expect, it } from "vitest";
import { WrittenEventsTally } from "../../src/server/written-events-tally.js";

/** Lets the microtasks queued so far run. */
const microtasks = (): Promise<void> => new Promise((resolve) => queueMicrotask(resolve));

describe("WrittenEventsTally", () => {
  it("hands on each run of one type as one count, the last one in a microtask", async () => {
    const calls: [string, number][] = [];
    const tally = new WrittenEventsTally((type, n) => calls.push([type, n]));
    for (let i = 0; i < 1000; i++) tally.add("registered");
    expect(calls).toEqual([]);
    await microtasks();
    expect(calls).toEqual([["registered", 1000]]);
    for (const type of ["snapshot", "snapshot", "synced", "snapshot"]) tally.add(type);
    await microtasks();
    expect(calls.slice(1)).toEqual([["snapshot", 2], ["synced", 1], ["snapshot", 1]]);
    await microtasks();
    expect(calls).toHaveLength(4); // nothing open, nothing more
  });

  it("keeps counting after a callback that throws", async () => {
    const calls: [string, number][] = [];
    let fail = true;
    const tally = new WrittenEventsTally((type, n) => {
      if (fail) throw new Error("metrics broke");
      calls.push([type, n]);
    });
    tally.add("removed");
    expect(() => tally.add("health")).not.toThrow(); // hands "removed" on, which throws inside
    await microtasks();
    fail = false;
    tally.add("bookmark");
    await microtasks();
    expect(calls).toEqual([["bookmark", 1]]);
  });
});
