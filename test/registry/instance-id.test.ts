import { describe, expect, it } from "vitest";
import { newInstanceId } from "../../src/registry/instance-id.js";

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix milliseconds a version 7 UUID starts with. */
function millisOf(id: string): number {
  return parseInt(id.replaceAll("-", "").slice(0, 12), 16);
}

describe("newInstanceId", () => {
  it("makes lowercase version 7 UUIDs carrying the current time", () => {
    const before = Date.now();
    for (let i = 0; i < 1000; i++) expect(newInstanceId()).toMatch(V7);
    const id = newInstanceId();
    expect(millisOf(id)).toBeGreaterThanOrEqual(before);
    expect(millisOf(id)).toBeLessThanOrEqual(Date.now());
    expect(millisOf(newInstanceId(0xfedcba987654))).toBe(0xfedcba987654);
  });

  it("sorts ids of later milliseconds after earlier ones", () => {
    const ids = [1_000, 1_001, 65_536, 2 ** 40, Date.now()].map((ms) => newInstanceId(ms));
    expect([...ids].sort()).toEqual(ids);
  });

  it("never repeats, within one millisecond and across many refills of its random pool", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20_000; i++) ids.add(newInstanceId(1_700_000_000_000));
    expect(ids.size).toBe(20_000);
  });

  it("draws every hex digit in every random position", () => {
    const seen = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 4000; i++) [...newInstanceId(1_700_000_000_000)].forEach((c, j) => seen[j]?.add(c));
    const sizes = seen.map((s) => s.size);
    for (const j of [15, 16, 17, 20, 25, 35]) expect(sizes[j]).toBe(16);
    expect(sizes[0]).toBe(1); // the (fixed) time
    expect(sizes[14]).toBe(1); // the version digit
    expect(sizes[19]).toBe(4); // the variant digit: 8, 9, a or b
  });
});
