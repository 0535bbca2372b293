import { describe, expect, it } from "vitest";
import { GetByTypeResponse } from "../../gen/registry/v1/registry.js";
import type { Instance } from "../../src/registry/types.js";
import { TypeAnswerCache } from "../../src/server/type-answer-cache.js";

const instance = (id: string, port: number): Instance => ({
  id,
  serviceType: "api",
  host: "10.0.0.1",
  port,
  metadata: { zone: "a" },
  healthCheckPath: "/health",
  health: "healthy", draining: false, drainingSince: 0,
  registeredAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_000,
  revision: port,
});

describe("TypeAnswerCache", () => {
  it("encodes exactly what GetByTypeResponse.encode would, and re-encodes when an instance object changes", () => {
    const cache = new TypeAnswerCache();
    const a = instance("a", 1);
    const b = instance("b", 2);
    const first = GetByTypeResponse.decode(cache.encode("healthy/api", [a, b], 2));
    expect(first.instances.map((i) => i.id)).toEqual(["a", "b"]);
    expect(first.revision).toBe(2);
    // Same objects, newer revision: the cached list, the new revision.
    expect(GetByTypeResponse.decode(cache.encode("healthy/api", [a, b], 7)).revision).toBe(7);
    // A changed instance is a new object: the answer follows it.
    const b2 = { ...b, port: 3 };
    expect(GetByTypeResponse.decode(cache.encode("healthy/api", [a, b2], 8)).instances.map((i) => i.port)).toEqual([1, 3]);
    expect(GetByTypeResponse.decode(cache.encode("healthy/api", [a], 9)).instances).toHaveLength(1);
  });

  it("stays within its byte bound and never caches empty answers", () => {
    const cache = new TypeAnswerCache(2_000);
    for (let i = 0; i < 1000; i++) cache.encode(`healthy/made-up-${i}`, [], 1);
    expect((cache as unknown as { entries: Map<string, unknown> }).entries.size).toBe(0);
    for (let i = 0; i < 100; i++) cache.encode(`healthy/t${i}`, [instance(`i${i}`, i + 1)], 1);
    expect((cache as unknown as { bytes: number }).bytes).toBeLessThanOrEqual(2_000);
  });
});
