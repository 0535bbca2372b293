import { describe, expect, it } from "vitest";
import { newInstanceId } from "../../src/registry/instance-id.js";

describe("newInstanceId", () => {
  it("makes lowercase version 4 UUIDs", () => {
    for (let i = 0; i < 1000; i++) {
      expect(newInstanceId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it("never repeats, across many refills of its random pool", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 20_000; i++) ids.add(newInstanceId());
    expect(ids.size).toBe(20_000);
  });

  it("uses every hex digit in every free position (the bytes are random, not fixed)", () => {
    const seen = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 4000; i++) [...newInstanceId()].forEach((c, j) => seen[j]?.add(c));
    const sizes = seen.map((s) => s.size);
    for (const j of [0, 7, 9, 15, 20, 35]) expect(sizes[j]).toBe(16);
    expect(sizes[14]).toBe(1); // the version digit
    expect(sizes[19]).toBe(4); // the variant digit: 8, 9, a or b
  });
});
